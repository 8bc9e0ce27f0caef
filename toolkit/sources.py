"""The user's code: fetched from ``sagemaker_submit_directory`` into the code dir, safely.

A submit directory is a local directory, a ``file://`` URI, a local tarball or an ``s3://``
tarball (what the SageMaker SDK uploads as ``sourcedir.tar.gz``). As with AWS's toolkit, code
already in the code dir wins: an image that bakes its code into ``/opt/ml/code`` is not
overwritten.

Every archive we unpack (``sourcedir.tar.gz``, ``model.tar.gz``, multi-model archives) goes
through :func:`safe_extract`, which does not rely on the stdlib's extraction filters (Debian
bookworm's Python 3.11.2, in our images, has none; where they exist they are consulted as a
second opinion). It reads the archive once, member by member, and writes each into a private
staging folder beside the target with its own checks, made against the folder *as it is when
the member is written*:

- names: no absolute paths, no ``..``, no component over 255 bytes, no NUL; no devices,
  FIFOs or sparse files;
- a member's folder is resolved symlink by symlink and must never leave the staging folder,
  nor may a symlink's target or a hard link's source; hard links must name a file extracted
  before them;
- nothing is written through an existing entry: a later member replaces an earlier file or
  symlink (files are created with ``O_EXCL | O_NOFOLLOW``), a folder is never replaced;
- modes lose setuid/setgid/sticky and group/other write; owners are whoever extracts;
- symlinks are checked once more when all is written, then the staging folder is moved into
  place, so a refused archive leaves nothing behind.

A damaged archive (a bad header, a cut stream, a gzip CRC mismatch: the stream is read to its
end) is a UserError naming it, and so is one that expands past the limits, read from the
environment at each extraction:

- ``SAGEDOCK_MAX_ARCHIVE_BYTES`` (default 68719476736, 64 GiB): the bytes its files may hold
  together, uncompressed (data after the last member counts too);
- ``SAGEDOCK_MAX_ARCHIVE_MEMBERS`` (default 1000000): files, folders and links together.
"""

from __future__ import annotations

import contextlib
import logging
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from urllib.parse import unquote, urlparse

from .errors import PlatformError, UserError

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


# -- safe extraction ------------------------------------------------------------------------

#: Environment variables bounding what one archive may expand to, and their defaults.
MAX_ARCHIVE_BYTES_VAR = "SAGEDOCK_MAX_ARCHIVE_BYTES"
MAX_ARCHIVE_MEMBERS_VAR = "SAGEDOCK_MAX_ARCHIVE_MEMBERS"
DEFAULT_MAX_ARCHIVE_BYTES = 64 * 1024**3
DEFAULT_MAX_ARCHIVE_MEMBERS = 1_000_000

#: The stdlib's extraction filters came with Python 3.11.4; Debian bookworm's python3 (3.11.2,
#: in our images) lacks them, so our own checks below never rely on them.
_HAS_DATA_FILTER = hasattr(tarfile, "data_filter")

_NAME_MAX = 255  # bytes in one path component (Linux file systems)
_PATH_MAX = 4095  # bytes in a whole path, less the terminating NUL
_MAX_HOPS = 40  # symlinks followed in one lookup, as the kernel allows
_MAX_EXTENDED_HEADER = 1024 * 1024  # a pax / GNU long-name header is read into memory whole
_CHUNK = 1024 * 1024
_EXTENDED_TYPES = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)
# tarfile's "two zero blocks" end of the archive: the one header error that is a normal end.
_END_OF_ARCHIVE: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ArchiveLimits:
    """How much one archive may expand to: bytes of its files together, and members."""

    max_bytes: int = DEFAULT_MAX_ARCHIVE_BYTES
    max_members: int = DEFAULT_MAX_ARCHIVE_MEMBERS

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ArchiveLimits:
        """The limits ``SAGEDOCK_MAX_ARCHIVE_BYTES`` / ``_MEMBERS`` set, else the defaults.

        :raises UserError: a variable is set to something other than a positive integer.
        """
        return cls(
            _positive(environ, MAX_ARCHIVE_BYTES_VAR, DEFAULT_MAX_ARCHIVE_BYTES),
            _positive(environ, MAX_ARCHIVE_MEMBERS_VAR, DEFAULT_MAX_ARCHIVE_MEMBERS),
        )


def _positive(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"{name} must be a positive integer, got {text!r}")
    return value


class _Unsafe(Exception):
    """A member refused; the text completes "unsafe archive member NAME in ARCHIVE: ..."."""


class _Escape(Exception):
    """A path that leaves the staging folder (or cannot be followed) while being resolved."""


class _Damaged(Exception):
    """The archive's bytes are not a whole, well-formed tar stream."""


class _StrictTarInfo(tarfile.TarInfo):
    """Headers as tarfile reads them, with two changes: a damaged header after the first is
    an error (tarfile ends the archive there, quietly dropping the rest, truncation
    included), and an extended header over 1 MiB is refused before it is read into memory."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        info = super().frombuf(buf, encoding, errors)
        if info.type in _EXTENDED_TYPES and info.size > _MAX_EXTENDED_HEADER:
            raise _Damaged(f"an extended header of {info.size} bytes (at most 1 MiB is read)")
        return info

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> Self:
        try:
            return super().fromtarfile(tarfile_)
        except _END_OF_ARCHIVE:
            raise
        except tarfile.HeaderError as exc:
            if tarfile_.offset == 0:
                raise  # tarfile.open is still trying which compression this is
            raise _Damaged(
                f"{exc} at byte {tarfile_.offset}, before the end-of-archive marker"
            ) from None


def _parts(name: str) -> list[str]:
    """``['a', 'b']`` for ``a/./b/``: the components a member's name walks."""
    return [part for part in name.split("/") if part not in ("", ".")]


def _name_problem(name: str) -> str | None:
    if "\0" in name:
        return "a NUL character in the name"
    try:
        encoded = os.fsencode(name)
    except UnicodeEncodeError:
        return "a name that is not valid text"
    if len(encoded) > _PATH_MAX:
        return f"a name longer than {_PATH_MAX} bytes"
    if any(len(part) > _NAME_MAX for part in encoded.split(b"/")):
        return f"a name with a component longer than {_NAME_MAX} bytes"
    return None


def _link_problem(member: tarfile.TarInfo) -> str | None:
    kind = "symlink" if member.issym() else "hard link"
    link = member.linkname
    if not link:
        return f"{kind} with an empty target"
    problem = _name_problem(link)
    if problem is not None:
        return f"{kind} with {problem}"
    # A symlink is relative to its folder, a hard link to the archive's root.
    base = posixpath.dirname(member.name) if member.issym() else ""
    target = posixpath.normpath(posixpath.join(base, link))
    if posixpath.isabs(link) or target == ".." or target.startswith("../"):
        return f"{kind} to {link!r} leaves the target"
    return None


def member_problem(member: tarfile.TarInfo) -> str | None:
    """What is wrong with *member* on its own (its name, its type, its link target read as
    text), or None. Tricks that need the members before it are caught while extracting."""
    name = member.name
    if name.startswith("/") or posixpath.isabs(name) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "path leaves the target ('..')"
    problem = _name_problem(name)
    if problem is not None:
        return problem
    if member.isdev():
        return "device file or FIFO"
    if member.issparse():
        return "sparse file (not supported)"
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        return "unsupported member type"
    if member.issym() or member.islnk():
        problem = _link_problem(member)
        if problem is not None:
            return problem
    if not _parts(name) and not member.isdir():
        return "empty name"
    return None


def _resolve(root: Path, parts: Sequence[str]) -> list[str]:
    """Where the relative path *parts* leads under the real folder *root*, as the components
    of a path below it that holds no symlink: every symlink met is followed the way the
    kernel would follow it, what does not exist yet is taken as named (we are about to
    create it as a folder or file).

    :raises _Escape: the walk climbs above *root* at any step (not only at its end: after
        ``x -> .``, ``x/x/../..`` is '.' on paper and two levels up on disk), or meets an
        absolute symlink or more than 40 of them.
    """
    done: list[str] = []
    todo = list(reversed(parts))
    hops = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not done:
                raise _Escape("leaves the target")
            done.pop()
            continue
        path = root.joinpath(*done, part)
        if not path.is_symlink():  # (False for what does not exist)
            done.append(part)
            continue
        hops += 1
        if hops > _MAX_HOPS:
            raise _Escape("goes through too many symlinks (a loop?)")
        target = str(path.readlink())
        if target.startswith("/"):
            raise _Escape(f"goes through the absolute symlink {'/'.join([*done, part])!r}")
        todo.extend(reversed(target.split("/")))
    return done


def _file_mode(mode: int) -> int:
    """What the stdlib's ``data`` filter keeps of a file's mode: no setuid/setgid/sticky,
    no group/other write, always owner read/write, executable for others only if for us."""
    mode &= 0o777 & ~(stat.S_IWGRP | stat.S_IWOTH)
    mode |= stat.S_IRUSR | stat.S_IWUSR
    if not mode & stat.S_IXUSR:
        mode &= ~(stat.S_IXGRP | stat.S_IXOTH)
    return mode


def _dir_mode(mode: int) -> int:
    return (mode & 0o777 & ~(stat.S_IWGRP | stat.S_IWOTH)) | stat.S_IRWXU


class _Extraction:
    """One archive written member by member into the private folder *staging*.

    Every write is checked against what is on disk at that moment: a member's folder is
    resolved symlink by symlink and must stay inside (:func:`_resolve`), an existing entry
    at its name is removed first and files are created with ``O_CREAT | O_EXCL |
    O_NOFOLLOW`` (so nothing is ever written through a symlink), a symlink's target and a
    hard link's source are resolved the same way. Only this process writes into *staging*
    (``mkdtemp``, mode 0700), so what was checked is what gets written.
    """

    def __init__(self, archive: Path, staging: Path, limits: ArchiveLimits) -> None:
        self.archive = archive
        self.root = staging.resolve()
        self.limits = limits
        self.members = 0
        self.bytes = 0
        #: (member name, its real folder, its base name) of every symlink created
        self.symlinks: list[tuple[str, list[str], str]] = []
        #: real folder → mode, applied at the end (a read-only folder would block its files)
        self.dir_modes: dict[tuple[str, ...], int] = {}
        #: member folder → real folder; cleared whenever a symlink appears or goes
        self._folders: dict[tuple[str, ...], list[str]] = {}

    def run(self) -> None:
        with self._reading("is not a readable tar archive"):
            tar = self._open()
        with tar:
            while (member := self._next(tar)) is not None:
                self._take(tar, member)
            self._drain(tar)
        self._check_symlinks()
        for folder in sorted(self.dir_modes, key=len, reverse=True):
            self.root.joinpath(*folder).chmod(self.dir_modes[folder])

    def _open(self) -> tarfile.TarFile:
        return tarfile.open(self.archive, "r:*", tarinfo=_StrictTarInfo)

    # -- reading ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _reading(self, what: str = "is truncated or damaged") -> Iterator[None]:
        """Errors of the archive's bytes (bad headers, a cut gzip stream, a CRC mismatch)
        become a UserError naming the archive."""
        try:
            yield
        except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError) as exc:
            raise UserError(f"{self.archive} {what}: {exc or type(exc).__name__}") from None
        except _Damaged as exc:
            raise UserError(f"{self.archive} is truncated or damaged: {exc}") from None

    def _next(self, tar: tarfile.TarFile) -> tarfile.TarInfo | None:
        with self._reading():
            member = tar.next()
        kept = getattr(tar, "members", None)  # (undocumented) tarfile keeps every member read,
        if isinstance(kept, list):  # which for a million members is a lot of memory
            kept.clear()
        if member is None:
            return None
        self.members += 1
        if self.members > self.limits.max_members:
            raise UserError(
                f"{self.archive} holds more than {self.limits.max_members} members "
                f"(the limit {MAX_ARCHIVE_MEMBERS_VAR} sets)"
            )
        return member

    def _count_bytes(self, size: int) -> None:
        self.bytes += size
        if self.bytes > self.limits.max_bytes:
            raise UserError(
                f"{self.archive} expands to more than {self.limits.max_bytes} bytes "
                f"(the limit {MAX_ARCHIVE_BYTES_VAR} sets)"
            )

    def _drain(self, tar: tarfile.TarFile) -> None:
        """Read the stream to its end: tarfile stops at the end-of-archive marker, but a
        gzip stream's CRC and length are checked only once its last byte is read."""
        with self._reading():
            while chunk := tar.fileobj.read(_CHUNK):
                self._count_bytes(len(chunk))

    # -- writing ----------------------------------------------------------------------------
    def _take(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        try:
            problem = member_problem(member)
            if problem is not None:
                raise _Unsafe(problem)
            if member.isdir():
                self._make_dir(member)
            elif member.issym():
                self._make_symlink(member)
            elif member.islnk():
                self._make_hard_link(member)
            else:
                self._write_file(tar, member)
        except _Unsafe as exc:
            raise UserError(
                f"unsafe archive member {member.name!r} in {self.archive}: {exc}"
            ) from None
        except OSError as exc:
            raise PlatformError(
                f"cannot extract {member.name!r} from {self.archive}: {exc}"
            ) from None

    def _second_opinion(self, member: tarfile.TarInfo) -> None:
        """The stdlib's ``data`` filter, where the Python has one, asked once our own checks
        of *member* passed, just before it is written; ours must be enough alone."""
        if not _HAS_DATA_FILTER:
            return
        try:
            tarfile.data_filter(member, str(self.root))
        except tarfile.FilterError as exc:
            raise _Unsafe(str(exc)) from None

    def _folder(self, parts: list[str]) -> list[str]:
        """The real folder that is to hold the member named *parts*, created where missing."""
        key = tuple(parts[:-1])
        real = self._folders.get(key)
        if real is None:
            try:
                real = _resolve(self.root, key)
            except _Escape as exc:
                raise _Unsafe(f"its folder {'/'.join(key)!r} {exc}") from None
            self._make_dirs(real)
            self._folders[key] = real
        return real

    def _make_dirs(self, real: list[str]) -> None:
        path = self.root
        for part in real:
            path = path / part
            try:
                path.mkdir(0o700)
            except FileExistsError:
                if not stat.S_ISDIR(path.lstat().st_mode):
                    raise _Unsafe(f"goes through {part!r}, which is not a folder") from None

    def _clear(self, path: Path) -> None:
        """Make room at *path* for a new entry: a later member replaces an earlier one (as
        with tar itself), but never by writing through it."""
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return
        if stat.S_ISDIR(mode):
            raise _Unsafe("a folder of that name is already there")
        path.unlink()
        self._folders.clear()

    def _place(self, parts: list[str]) -> tuple[list[str], Path]:
        folder = self._folder(parts)
        path = self.root.joinpath(*folder, parts[-1])
        self._clear(path)
        return folder, path

    def _make_dir(self, member: tarfile.TarInfo) -> None:
        parts = _parts(member.name)
        if not parts:
            return  # the archive's own root, './'
        try:
            real = _resolve(self.root, parts)
        except _Escape as exc:
            raise _Unsafe(f"path {exc}") from None
        self._second_opinion(member)
        self._make_dirs(real)
        self.dir_modes[tuple(real)] = _dir_mode(member.mode)

    def _make_symlink(self, member: tarfile.TarInfo) -> None:
        parts = _parts(member.name)
        folder = self._folder(parts)
        link = member.linkname
        try:
            _resolve(self.root, [*folder, *link.split("/")])
        except _Escape as exc:
            raise _Unsafe(f"symlink to {link!r} {exc}") from None
        self._second_opinion(member)
        _, path = self._place(parts)
        path.symlink_to(link)
        self._folders.clear()
        self.symlinks.append((member.name, folder, parts[-1]))

    def _make_hard_link(self, member: tarfile.TarInfo) -> None:
        link = member.linkname
        try:
            source = _resolve(self.root, _parts(link))
        except _Escape as exc:
            raise _Unsafe(f"hard link to {link!r} {exc}") from None
        source_path = self.root.joinpath(*source)
        try:
            is_file = stat.S_ISREG(source_path.lstat().st_mode)
        except OSError:
            is_file = False
        if not is_file:
            raise _Unsafe(f"hard link to {link!r}, which is not a file extracted before it")
        parts = _parts(member.name)
        if [*self._folder(parts), parts[-1]] == source:
            return  # a link to itself: already in place
        self._second_opinion(member)
        _, path = self._place(parts)
        os.link(source_path, path, follow_symlinks=False)

    def _write_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self._count_bytes(member.size)
        self._folder(_parts(member.name))
        self._second_opinion(member)
        _, path = self._place(_parts(member.name))
        with self._reading():
            source = tar.extractfile(member)
        if source is None:
            raise _Unsafe("unsupported member type")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(path, flags, 0o600), "wb") as out:
            left = member.size
            while left:
                with self._reading():
                    chunk = source.read(min(left, _CHUNK))
                if not chunk:
                    raise UserError(
                        f"{self.archive} is truncated or damaged: {member.name!r} ends after "
                        f"{member.size - left} of its {member.size} bytes"
                    )
                out.write(chunk)
                left -= len(chunk)
            out.flush()
            os.fchmod(out.fileno(), _file_mode(member.mode))
            with contextlib.suppress(OverflowError, ValueError, OSError):
                os.utime(out.fileno(), (member.mtime, member.mtime))

    def _check_symlinks(self) -> None:
        """Every symlink still resolves inside now that all is written: one that was checked
        when it pointed at something missing may have been turned outward by a later link."""
        for name, folder, base in self.symlinks:
            path = self.root.joinpath(*folder, base)
            if not path.is_symlink():
                continue  # replaced by a later member
            link = str(path.readlink())
            try:
                _resolve(self.root, [*folder, *link.split("/")])
            except _Escape as exc:
                raise UserError(
                    f"unsafe archive member {name!r} in {self.archive}: symlink to {link!r} "
                    f"{exc} once the whole archive is extracted"
                ) from None


def _publish(staging: Path, dest: Path) -> None:
    """Move what *staging* holds into *dest*: in one rename where *dest* is absent or empty
    (so a reader never sees half of it), else entry by entry over what is there."""
    staging.chmod(0o755)
    try:
        staging.rename(dest)
        return
    except OSError:
        if not dest.is_dir():
            raise
    for entry in staging.iterdir():
        target = dest / entry.name
        if target.is_dir() and not target.is_symlink() and entry.is_dir():
            shutil.copytree(entry, target, symlinks=True, dirs_exist_ok=True)
        else:
            entry.replace(target)


def safe_extract(archive: Path, dest: Path, *, limits: ArchiveLimits | None = None) -> None:
    """Extract the tar archive *archive* (plain, gzip, bzip2 or xz) into *dest*, all or
    nothing.

    Members are written one by one into a private staging folder beside *dest*, each checked
    against the folder as it is at that moment (see :class:`_Extraction`), then moved into
    *dest* once the whole archive has been read, its compressed stream's checksum included.
    *limits* default to :meth:`ArchiveLimits.from_environ` of this process's environment.

    :raises UserError: the file is not a tar archive, is truncated or damaged, exceeds the
        limits, or holds an unsafe member (the message names the archive, and the member);
        *dest* is then left as it was (and not created).
    :raises PlatformError: the file system refused a write (a full disk).
    """
    limits = limits if limits is not None else ArchiveLimits.from_environ(os.environ)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        _Extraction(archive, staging, limits).run()
        _publish(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
