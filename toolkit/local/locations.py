"""Where data lives: a local path, a ``file://`` URI or an ``s3://`` URI.

Wherever SageMaker takes an S3 URI, ``sagedock local`` also takes ``file://`` URIs and plain
paths. :func:`normalize` turns all three into one of two canonical forms: an ``s3://`` URI, or
an absolute local path. The rest of this module reads, lists and publishes data at such a
location, publishing atomically (a temporary name, then a rename; for S3 an upload, which S3
makes visible only once complete).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sagedock.toolkit import s3
from sagedock.toolkit.errors import UserError

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_s3(location: str) -> bool:
    return s3.is_s3_uri(location)


def normalize(value: str, *, cwd: Path | None = None) -> str:
    """``s3://...`` (validated), ``file:///abs``, ``file://rel`` or a path -> ``s3://...`` or
    an absolute local path (relative paths are taken from *cwd*, default the working dir).

    :raises UserError: for an empty value, a malformed S3 URI or another scheme.
    """
    if not isinstance(value, str) or not value.strip():
        raise UserError("expected an s3:// URI, a file:// URI or a path, got an empty value")
    value = value.strip()
    if is_s3(value):
        s3.parse_s3_uri(value)
        return "s3://" + value[5:]
    if value.lower().startswith("file://"):
        value = value[7:]
        if value.startswith("localhost/"):
            value = value[len("localhost") :]
        if not value:
            raise UserError("file:// URI without a path")
    elif _SCHEME.match(value):
        scheme = value.split("://", 1)[0]
        raise UserError(
            f"unsupported URI scheme {scheme!r} in {value!r}: use s3://, file:// or a path"
        )
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    return str(Path(os.path.normpath(path)))


def join(location: str, *parts: str) -> str:
    """A child of *location* (URI join for S3, path join otherwise)."""
    if is_s3(location):
        return s3.join_uri(location, *parts)
    return str(Path(location).joinpath(*parts))


@dataclass(frozen=True)
class DataObject:
    """One file of a data source: where it is, and where it goes below a channel directory."""

    location: str
    relative: str
    size: int | None = None


def list_objects(location: str, *, environ: Mapping[str, str] | None = None) -> list[DataObject]:
    """Every file at *location*: the file itself, every regular file below a directory, or every
    S3 object under the prefix; sorted by relative path.

    :raises UserError: when nothing exists there.
    """
    if is_s3(location):
        _bucket, prefix = s3.parse_s3_uri(location)
        out = []
        for uri, size in s3.list_objects_with_sizes(location, environ=environ):
            key = s3.parse_s3_uri(uri)[1]
            out.append(DataObject(uri, s3.relative_key(key, prefix), size))
        if not out:
            raise UserError(f"no objects found under {location}")
        return sorted(out, key=lambda o: o.relative)
    path = Path(location)
    if path.is_file():
        return [DataObject(str(path), path.name, path.stat().st_size)]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path))
        return [DataObject(str(p), p.relative_to(path).as_posix(), p.stat().st_size) for p in files]
    raise UserError(f"no such file or directory: {location}")


def _hidden(path: Path, root: Path) -> bool:
    # Skip our own temporary files and editor/OS droppings such as .DS_Store; users' data files
    # do not start with a dot.
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def fetch(location: str, dest: Path, *, environ: Mapping[str, str] | None = None) -> Path:
    """Copy the single file at *location* to *dest* (atomically); returns *dest*."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if is_s3(location):
        return s3.download_file(location, dest, environ=environ)
    src = Path(location)
    if not src.is_file():
        raise UserError(f"no such file: {location}")
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        shutil.copyfile(src, tmp)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def read_bytes(location: str, *, environ: Mapping[str, str] | None = None) -> bytes:
    """The content of the single file at *location*."""
    if is_s3(location):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="sagedock-") as tmp:
            return s3.download_file(location, Path(tmp) / "obj", environ=environ).read_bytes()
    try:
        return Path(location).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {location}: {exc.strerror or exc}") from exc


def publish_file(local: Path, location: str, *, environ: Mapping[str, str] | None = None) -> str:
    """Put the file *local* at *location* so that readers see all of it or nothing; returns
    *location*. A local destination gets a temporary sibling, then a rename."""
    if is_s3(location):
        return s3.upload_file(local, location, environ=environ)
    dest = Path(location)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        shutil.copyfile(local, tmp)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return location


def remove(
    location: str, *, environ: Mapping[str, str] | None = None, prune_below: str | None = None
) -> None:
    """Delete the file at *location* (nothing to do when it is gone already). For a local
    file, the parent directories this leaves empty are removed too, climbing no higher than
    *prune_below* (itself kept), and not at all without it."""
    if is_s3(location):
        s3.delete_object(location, environ=environ)
        return
    path = Path(location)
    path.unlink(missing_ok=True)
    if prune_below is None:
        return
    stop = Path(prune_below)
    for parent in path.parents:
        if parent == stop or stop not in parent.parents:
            break
        try:
            parent.rmdir()
        except OSError:  # not empty: the rest of the tree is someone else's
            break


def publish_tree(
    local_dir: Path, location: str, *, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Publish every file below *local_dir* under *location*, file by file; returns the
    destinations."""
    out = []
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(local_dir).as_posix()
        out.append(publish_file(path, join(location, rel), environ=environ))
    return out


def exists(location: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """Whether a file (or, for S3, an object or prefix) exists at *location*."""
    if is_s3(location):
        try:
            return bool(s3.list_objects(location, environ=environ))
        except UserError:
            return False
    return Path(location).exists()
