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

import copy
import logging
import os
import posixpath
import shutil
import stat
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


#: The stdlib's extraction filters came with Python 3.11.4; Debian bookworm's python3 (3.11.2,
#: in our images) lacks them, so the checks below never rely on them.
_HAS_DATA_FILTER = hasattr(tarfile, "data_filter")


def _prefixes(path: str) -> list[str]:
    """``a``, ``a/b`` for ``a/b/c``: the folders a member's path goes through."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def check_links_in_paths(members: list[tarfile.TarInfo]) -> None:
    """Refuse a member written through a symlink of the same archive, or a hard link to a
    path that goes through one: each looks harmless alone, but lands wherever the link points.

    :raises UserError: naming the member and the symlink.
    """
    symlinks: set[str] = set()
    for member in members:
        name = posixpath.normpath(member.name)
        paths = _prefixes(name)
        if member.islnk():
            paths += [*_prefixes(posixpath.normpath(member.linkname)), member.linkname]
        through = next((path for path in paths if path in symlinks), None)
        if through is not None:
            raise UserError(
                f"unsafe archive member {member.name!r}: goes through the symlink {through!r}"
            )
        if member.issym():
            symlinks.add(name)


def _without_privileges(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """What the stdlib's ``data`` filter does to modes and owners: no setuid/setgid/sticky
    bits, no group/other write, owned by whoever extracts (not the archive's user ids)."""
    member = copy.copy(member)  # (TarInfo.replace came with the filters)
    member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
    if member.isreg() or member.isdir():
        member.mode &= ~(stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH)
        member.mode |= stat.S_IRUSR | stat.S_IWUSR | (stat.S_IXUSR if member.isdir() else 0)
    return member


def _check_links_resolve_inside(root: Path) -> None:
    """Every symlink extracted under *root* resolves inside it (chains of links included)."""
    top = root.resolve()
    for path in root.rglob("*"):
        if path.is_symlink():
            resolved = Path(os.path.realpath(path))
            if resolved != top and top not in resolved.parents:
                name = path.relative_to(root).as_posix()
                raise UserError(
                    f"unsafe archive member {name!r}: symlink to {str(path.readlink())!r} resolves "
                    "outside the target"
                )


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract the tar archive *archive* (any compression) into *dest*, all or nothing.

    Members are checked before anything is written (:func:`check_member`,
    :func:`check_links_in_paths`), extracted into a staging folder beside *dest* (through the
    stdlib's ``data`` filter where the Python has it), and moved into *dest* only once every
    symlink is known to resolve inside.

    :raises UserError: the file is not a tar archive, or a member is unsafe; *dest* is then
        left as it was.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                check_member(member)
            check_links_in_paths(members)
            dest.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
            try:
                if _HAS_DATA_FILTER:
                    tar.extractall(staging, members=members, filter="data")
                else:
                    tar.extractall(staging, members=[_without_privileges(m) for m in members])
                _check_links_resolve_inside(staging)
                for entry in staging.iterdir():
                    target = dest / entry.name
                    if target.is_dir() and not target.is_symlink() and entry.is_dir():
                        shutil.copytree(entry, target, symlinks=True, dirs_exist_ok=True)
                    else:
                        entry.replace(target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except tarfile.TarError as exc:
        # the data filter's refusals (FilterError) are TarErrors that name their member
        refused = getattr(exc, "tarinfo", None)
        if refused is not None:
            raise UserError(f"unsafe archive member {refused.name!r} in {archive}: {exc}") from None
        raise UserError(f"{archive} is not a readable tar archive: {exc}") from None
