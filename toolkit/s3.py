"""Amazon S3 access for sagedock: ``s3://`` URIs to and from local files.

boto3 is an optional dependency (the ``s3`` extra) and is imported only when a function here
is called. Every function takes an optional *environ* mapping (default ``os.environ``, read at
call time) from which credentials, region and the endpoint come, so a local platform or a test
can point one call at a different S3 (``AWS_ENDPOINT_URL_S3``, then ``AWS_ENDPOINT_URL``)
without touching the process environment.

Errors: a malformed URI, a missing object or bucket, or refused credentials raise
:class:`~sagedock.toolkit.errors.UserError` naming the URI; a connection that fails raises
:class:`~sagedock.toolkit.errors.PlatformError`.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import PlatformError, SagedockError, UserError

__all__ = [
    "client",
    "delete_object",
    "download_file",
    "download_prefix",
    "is_s3_uri",
    "join_uri",
    "list_objects",
    "list_objects_with_sizes",
    "parse_s3_uri",
    "upload_dir",
    "upload_file",
]

# Bucket names: 3-63 chars of lower-case letters, digits, dots and hyphens (we also accept
# the legacy upper-case/underscore names S3 still serves, rather than refuse a working bucket).
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")


def is_s3_uri(uri: str) -> bool:
    """Whether *uri* uses the ``s3://`` scheme (case-insensitive)."""
    return uri[:5].lower() == "s3://"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``; the key may be empty.

    :raises UserError: naming *uri* when it is not an ``s3://bucket[/key]`` URI.
    """
    if not isinstance(uri, str) or not is_s3_uri(uri):
        raise UserError(f"not an S3 URI: {uri!r} (expected s3://bucket/key)")
    rest = uri[5:]
    bucket, _, key = rest.partition("/")
    if not _BUCKET_RE.match(bucket):
        raise UserError(f"malformed S3 URI {uri!r}: {bucket!r} is not a valid bucket name")
    return bucket, key


def join_uri(prefix: str, *parts: str) -> str:
    """``join_uri("s3://b/out", "job", "model.tar.gz")`` -> ``"s3://b/out/job/model.tar.gz"``."""
    out = prefix.rstrip("/")
    for part in parts:
        out += "/" + part.strip("/")
    return out


def _boto3() -> Any:
    try:
        import boto3
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise UserError(
            "s3:// URIs need boto3, which is not installed: pip install 'sagedock[s3]'"
        ) from None
    return boto3


def client(environ: Mapping[str, str] | None = None) -> Any:
    """A boto3 S3 client configured from *environ* (default ``os.environ``).

    Credentials come from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
    ``AWS_SESSION_TOKEN`` or ``AWS_PROFILE`` when present, else boto3's usual chain; the
    region from ``AWS_REGION`` / ``AWS_DEFAULT_REGION``; the endpoint from
    ``AWS_ENDPOINT_URL_S3`` (then ``AWS_ENDPOINT_URL``), which is how local S3 servers are used.
    """
    boto3 = _boto3()
    from botocore.config import Config

    env = os.environ if environ is None else environ
    session_kwargs: dict[str, str] = {}
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        session_kwargs["aws_access_key_id"] = env["AWS_ACCESS_KEY_ID"]
        session_kwargs["aws_secret_access_key"] = env["AWS_SECRET_ACCESS_KEY"]
        if env.get("AWS_SESSION_TOKEN"):
            session_kwargs["aws_session_token"] = env["AWS_SESSION_TOKEN"]
    elif env.get("AWS_PROFILE"):
        session_kwargs["profile_name"] = env["AWS_PROFILE"]
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        session_kwargs["region_name"] = region
    session = boto3.session.Session(**session_kwargs)
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    config = Config(retries={"max_attempts": 5, "mode": "standard"})
    return session.client("s3", endpoint_url=endpoint, config=config)


@contextlib.contextmanager
def _errors(uri: str, action: str) -> Iterator[None]:
    """Turn botocore failures into our error tree, naming *uri*."""
    from botocore import exceptions as bexc

    try:
        yield
    except SagedockError:
        raise
    except bexc.ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = error.get("Message") or str(exc)
        if code in {"404", "NoSuchKey", "NotFound"}:
            raise UserError(f"cannot {action} {uri}: no such object") from exc
        if code == "NoSuchBucket":
            raise UserError(f"cannot {action} {uri}: the bucket does not exist") from exc
        if code in {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
            raise UserError(f"cannot {action} {uri}: access denied ({code})") from exc
        raise PlatformError(f"cannot {action} {uri}: {code} {message}") from exc
    except bexc.NoCredentialsError as exc:
        raise UserError(
            f"cannot {action} {uri}: no AWS credentials found (set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
        ) from exc
    except (bexc.EndpointConnectionError, bexc.ConnectionError) as exc:
        raise PlatformError(f"cannot {action} {uri}: {exc}") from exc
    except bexc.BotoCoreError as exc:
        raise PlatformError(f"cannot {action} {uri}: {exc}") from exc


def _temp_sibling(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")


def _download_to(s3: Any, bucket: str, key: str, dest: Path, uri: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(dest)
    try:
        with _errors(uri, "download"):
            s3.download_file(bucket, key, str(tmp))
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def download_file(uri: str, dest: Path, *, environ: Mapping[str, str] | None = None) -> Path:
    """Download the object *uri* to the file *dest* (parents created); returns *dest*.

    The file appears complete or not at all (written under a temporary name, then renamed).
    """
    bucket, key = parse_s3_uri(uri)
    if not key or key.endswith("/"):
        raise UserError(f"cannot download {uri}: it names a prefix, not an object")
    _download_to(client(environ), bucket, key, Path(dest), uri)
    return Path(dest)


def upload_file(path: Path, uri: str, *, environ: Mapping[str, str] | None = None) -> str:
    """Upload the local file *path* to the object *uri*; returns *uri*.

    S3 makes an object visible only once its upload completes, so readers never see a part.
    """
    bucket, key = parse_s3_uri(uri)
    if not key or key.endswith("/"):
        raise UserError(f"cannot upload to {uri}: it names a prefix, not an object key")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"cannot upload {path}: not a file")
    with _errors(uri, "upload to"):
        client(environ).upload_file(str(path), bucket, key)
    return uri


def delete_object(uri: str, *, environ: Mapping[str, str] | None = None) -> None:
    """Delete the object *uri* (S3 answers a missing object with success too)."""
    bucket, key = parse_s3_uri(uri)
    if not key or key.endswith("/"):
        raise UserError(f"cannot delete {uri}: it names a prefix, not an object key")
    with _errors(uri, "delete"):
        client(environ).delete_object(Bucket=bucket, Key=key)


def _iter_keys(s3: Any, bucket: str, prefix: str, uri: str) -> Iterator[tuple[str, int]]:
    with _errors(uri, "list"):
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []) or []:
                key = item["Key"]
                if not key.endswith("/"):  # "folder" placeholder objects hold no data
                    yield key, int(item.get("Size", 0))


def list_objects(uri_prefix: str, *, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every object whose key starts with the prefix of *uri_prefix*, as sorted ``s3://`` URIs.

    Zero-byte "folder" markers (keys ending in ``/``) are left out.
    """
    bucket, prefix = parse_s3_uri(uri_prefix)
    keys = sorted(key for key, _ in _iter_keys(client(environ), bucket, prefix, uri_prefix))
    return [f"s3://{bucket}/{key}" for key in keys]


def list_objects_with_sizes(
    uri_prefix: str, *, environ: Mapping[str, str] | None = None
) -> list[tuple[str, int]]:
    """Like :func:`list_objects`, with each object's size in bytes."""
    bucket, prefix = parse_s3_uri(uri_prefix)
    items = sorted(_iter_keys(client(environ), bucket, prefix, uri_prefix))
    return [(f"s3://{bucket}/{key}", size) for key, size in items]


def relative_key(key: str, prefix: str) -> str:
    """Where an object listed under *prefix* goes below the download directory.

    ``data/train/`` + ``data/train/a/b.csv`` -> ``a/b.csv``; ``data/train`` +
    ``data/train/a.csv`` -> ``a.csv``; a prefix that is itself the key -> its base name; a
    prefix that ends mid-name (``data/tr`` + ``data/train/a.csv``) keeps the path from the
    last ``/`` of the prefix (``train/a.csv``), so different objects never collide.
    """
    if key == prefix:
        return PurePosixPath(key).name
    if prefix == "" or prefix.endswith("/"):
        return key[len(prefix) :]
    if key.startswith(prefix + "/"):
        return key[len(prefix) + 1 :]
    cut = prefix.rfind("/") + 1
    return key[cut:]


def _safe_relative(rel: str, uri: str) -> PurePosixPath:
    path = PurePosixPath(rel)
    if not rel or path.is_absolute() or any(part in {"..", ""} for part in rel.split("/")):
        raise UserError(f"refusing to download {uri}: its key does not map to a safe local path")
    return path


def download_prefix(
    uri_prefix: str, dest_dir: Path, *, environ: Mapping[str, str] | None = None
) -> list[Path]:
    """Download every object under *uri_prefix* into *dest_dir*, keeping the key layout below
    the prefix (see :func:`relative_key`); returns the local files, sorted.

    :raises UserError: when nothing matches the prefix, or a key would land outside *dest_dir*.
    """
    bucket, prefix = parse_s3_uri(uri_prefix)
    s3 = client(environ)
    dest_dir = Path(dest_dir)
    keys = sorted(_iter_keys(s3, bucket, prefix, uri_prefix))
    if not keys:
        raise UserError(f"no objects found under {uri_prefix}")
    out: list[Path] = []
    for key, _size in keys:
        uri = f"s3://{bucket}/{key}"
        target = dest_dir.joinpath(*_safe_relative(relative_key(key, prefix), uri).parts)
        _download_to(s3, bucket, key, target, uri)
        out.append(target)
    return sorted(out)


def upload_dir(
    local_dir: Path, uri_prefix: str, *, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Upload every regular file under *local_dir* to ``<uri_prefix>/<relative path>``;
    returns the object URIs, sorted. An empty directory uploads nothing."""
    parse_s3_uri(uri_prefix)
    local_dir = Path(local_dir)
    s3 = client(environ)
    uris: list[str] = []
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(local_dir).as_posix()
        uri = join_uri(uri_prefix, rel)
        bucket, key = parse_s3_uri(uri)
        with _errors(uri, "upload to"):
            s3.upload_file(str(path), bucket, key)
        uris.append(uri)
    return uris
