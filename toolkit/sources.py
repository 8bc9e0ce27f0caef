"""The user's code: fetched from ``sagemaker_submit_directory`` into the code dir, safely.

A submit directory is a local directory, a ``file://`` URI, a local tarball or an ``s3://``
tarball (what the SageMaker SDK uploads as ``sourcedir.tar.gz``). As with AWS's toolkit, code
already in the code dir wins: an image that bakes its code into ``/opt/ml/code`` is not
overwritten.

Tarballs are checked member by member *before* anything is written: absolute paths, ``..``,
links that leave the target and device files are refused with a UserError naming the member.
Extraction then goes to a temporary sibling directory with Python's ``data`` filter (which
also catches link tricks only visible at extraction time) and is moved into place, so a bad
archive leaves nothing half-written.
"""

from __future__ import annotations

import logging
import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

from .errors import UserError

log = logging.getLogger(__name__)


def _path_to(dest: Path) -> Callable[[str, list[str]], set[str]]:
    """A ``copytree`` filter leaving out the entry that leads to *dest*: code copied into a
    folder inside itself (a local platform whose state lives under the source dir) would
    otherwise copy its own copy, deeper and deeper."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        here = Path(directory).resolve()
        if here != dest and here not in dest.parents:
            return set()
        return {name for name in names if here / name == dest or here / name in dest.parents}

    return ignore


def fetch_code(uri: str, dest: Path, *, environ: Mapping[str, str] | None = None) -> Path:
    """Put the code named by *uri* into the directory *dest*; returns *dest*.

    No-op when *dest* already holds files or *uri* is *dest* itself. ``s3://`` URIs are read
    with :mod:`sagedock.toolkit.s3` (boto3, honouring ``AWS_ENDPOINT_URL_S3`` in *environ*).

    :raises UserError: *uri* does not exist, is not a tarball where one is needed, or holds an
        unsafe member.
    """
    is_s3 = uri.lower().startswith("s3://")
    source = None if is_s3 else _local_path(uri)
    if source is not None and dest.exists() and source.resolve() == dest.resolve():
        return dest
    if dest.is_dir() and any(dest.iterdir()):
        log.info("%s already holds code: not fetching %s", dest, uri)
        return dest
    if source is None:
        _fetch_s3(uri, dest, environ)
        return dest
    if source.is_dir():
        log.info("copying code from %s to %s", source, dest)
        shutil.copytree(
            source, dest, symlinks=True, dirs_exist_ok=True, ignore=_path_to(dest.resolve())
        )
    elif source.is_file() and tarfile.is_tarfile(source):
        log.info("extracting code from %s to %s", source, dest)
        safe_extract(source, dest)
    elif source.is_file():
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / source.name)
    else:
        raise UserError(f"the code location {uri!r} (sagemaker_submit_directory) does not exist")
    return dest


def _local_path(uri: str) -> Path:
    if uri.lower().startswith("file://"):
        parsed = urlparse(uri)
        return Path(unquote(parsed.netloc + parsed.path))
    return Path(uri)


def _fetch_s3(uri: str, dest: Path, environ: Mapping[str, str] | None) -> None:
    from . import s3

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".sourcedir-", dir=dest.parent) as tmp:
        archive = Path(tmp) / "sourcedir.tar.gz"
        log.info("downloading code from %s", uri)
        s3.download_file(uri, archive, environ=environ)
        if not tarfile.is_tarfile(archive):
            raise UserError(f"the code at {uri} is not a tar archive (expected sourcedir.tar.gz)")
        safe_extract(archive, dest)


def check_member(member: tarfile.TarInfo) -> None:
    """Refuse a tar member that could write outside the target or create a device.

    :raises UserError: naming the member and what is wrong with it.
    """
    name = member.name
    if name.startswith("/") or posixpath.isabs(name) or (len(name) > 1 and name[1] == ":"):
        raise UserError(f"unsafe archive member {name!r}: absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        raise UserError(f"unsafe archive member {name!r}: path leaves the target ('..')")
    if member.isdev():
        raise UserError(f"unsafe archive member {name!r}: device file or FIFO")
    if member.issym() or member.islnk():
        link = member.linkname
        base = posixpath.dirname(name) if member.issym() else ""
        target = posixpath.normpath(posixpath.join(base, link))
        if posixpath.isabs(link) or target == ".." or target.startswith("../"):
            kind = "symlink" if member.issym() else "hard link"
            raise UserError(f"unsafe archive member {name!r}: {kind} to {link!r} leaves the target")
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise UserError(f"unsafe archive member {name!r}: unsupported member type")


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract the tar archive *archive* (any compression) into *dest*, all or nothing.

    :raises UserError: the file is not a tar archive, or a member is unsafe (see
        :func:`check_member`); *dest* is then left as it was.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                check_member(member)
            dest.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
            try:
                tar.extractall(staging, members=members, filter="data")
                for entry in staging.iterdir():
                    target = dest / entry.name
                    if target.is_dir() and not target.is_symlink() and entry.is_dir():
                        shutil.copytree(entry, target, symlinks=True, dirs_exist_ok=True)
                    else:
                        entry.replace(target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except tarfile.FilterError as exc:
        name = exc.tarinfo.name if exc.tarinfo is not None else "?"
        raise UserError(f"unsafe archive member {name!r} in {archive}: {exc}") from None
    except tarfile.TarError as exc:
        raise UserError(f"{archive} is not a readable tar archive: {exc}") from None
