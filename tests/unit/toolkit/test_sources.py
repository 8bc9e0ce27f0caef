"""Fetching the user's code, and refusing archives that would write outside the code dir."""

from __future__ import annotations

import io
import os
import re
import tarfile
from pathlib import Path

import pytest

from sagedock.toolkit import sources
from sagedock.toolkit.errors import UserError
from sagedock.toolkit.sources import fetch_code, safe_extract


@pytest.fixture(autouse=True, params=["data filter", "own checks"])
def extraction(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test twice: with the stdlib's ``data`` filter, and without it, as on Debian
    bookworm's Python 3.11.2 (our images), where only our own checks stand."""
    if request.param == "own checks":
        monkeypatch.setattr(sources, "_HAS_DATA_FILTER", False)
    elif not sources._HAS_DATA_FILTER:
        pytest.skip("this Python's tarfile has no extraction filters")
    return str(request.param)


def _archive(path: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, text: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), text


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _plain(path: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> Path:
    """The same as :func:`_archive`, uncompressed (to damage its headers by offset)."""
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _refused(archive: Path, dest: Path, match: str) -> UserError:
    """safe_extract refuses *archive* with a message naming it, and leaves no *dest*."""
    with pytest.raises(UserError, match=match) as refused:
        safe_extract(archive, dest)
    assert str(archive) in refused.value.message
    assert not dest.exists()
    assert [p.name for p in dest.parent.iterdir() if p.name.startswith(".")] == []  # staging
    return refused.value


def test_safe_extract_writes_regular_files_and_inner_links(tmp_path: Path) -> None:
    archive = _archive(
        tmp_path / "ok.tar.gz",
        _file("train.py", b"print(1)"),
        _file("pkg/mod.py"),
        _link("pkg/alias.py", "mod.py"),
        _file("pkg/data.bin"),
        _link("pkg/same.bin", "pkg/data.bin", tarfile.LNKTYPE),
    )
    safe_extract(archive, tmp_path / "code")
    code = tmp_path / "code"
    assert (code / "train.py").read_bytes() == b"print(1)"
    assert (code / "pkg/alias.py").read_bytes() == b"x"
    assert (code / "pkg/same.bin").stat().st_ino == (code / "pkg/data.bin").stat().st_ino


def test_members_may_go_through_a_symlink_that_stays_inside(tmp_path: Path) -> None:
    archive = _archive(
        tmp_path / "alias.tar.gz",
        _link("latest", "v2"),
        _file("v2/model.bin", b"weights"),
        _file("latest/config.json", b"{}"),
        _link("here", "."),
        _link("h", "here/v2/model.bin", tarfile.LNKTYPE),
    )
    safe_extract(archive, tmp_path / "model")
    model = tmp_path / "model"
    assert (model / "v2" / "config.json").read_bytes() == b"{}"
    assert (model / "h").read_bytes() == b"weights"
    assert (model / "h").stat().st_ino == (model / "v2/model.bin").stat().st_ino


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (_file("/etc/evil"), "absolute path"),
        (_file("../evil"), r"path leaves the target \('..'\)"),
        (_file("a/../../evil"), r"path leaves the target"),
        (_link("escape", "../../etc"), "symlink to '../../etc' leaves the target"),
        (_link("abs", "/etc/passwd"), "symlink to '/etc/passwd' leaves the target"),
        (_link("hard", "../outside", tarfile.LNKTYPE), "hard link to '../outside' leaves"),
        (_link("dev", "", tarfile.CHRTYPE), "device file or FIFO"),
        (_link("fifo", "", tarfile.FIFOTYPE), "device file or FIFO"),
        (_file("a" * 300), "a name with a component longer than 255 bytes"),
        (_file("pkg/" + "b" * 300 + "/x.py"), "a name with a component longer than 255"),
        (_link("empty", ""), "symlink with an empty target"),
    ],
)
def test_unsafe_members_are_refused_by_name_and_nothing_is_written(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None], reason: str
) -> None:
    archive = _archive(tmp_path / "bad.tar.gz", _file("train.py"), member)
    dest = tmp_path / "code"
    _refused(
        archive, dest, f"unsafe archive member {re.escape(repr(member[0].name))} in .*: {reason}"
    )


def test_a_file_written_over_a_symlink_replaces_the_link_not_its_target(tmp_path: Path) -> None:
    # Issue 11: x -> ., b -> x/x/../../victim.txt, then a regular file b. Written through the
    # link, b would overwrite victim.txt two levels above the staging folder.
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    archive = _archive(
        tmp_path / "through.tar.gz",
        _link("x", "."),
        _link("b", "x/x/../../victim.txt"),
        _file("b", b"overwritten"),
    )
    (tmp_path / "work").mkdir()  # the staging folder goes beside code/: x/x/../.. is tmp_path
    _refused(archive, tmp_path / "work/code", "unsafe archive member 'b' in .*: symlink to 'x/x/")
    assert victim.read_bytes() == b"precious"


def test_a_later_file_replaces_an_earlier_inner_symlink(tmp_path: Path) -> None:
    # the same shape with a link that stays inside: the file takes the link's place
    archive = _archive(
        tmp_path / "replace.tar.gz", _file("keep", b"keep"), _link("b", "keep"), _file("b", b"new")
    )
    safe_extract(archive, tmp_path / "code")
    assert not (tmp_path / "code/b").is_symlink()
    assert (tmp_path / "code/b").read_bytes() == b"new"
    assert (tmp_path / "code/keep").read_bytes() == b"keep"


def test_a_hard_link_out_through_an_inner_symlink_is_refused(tmp_path: Path) -> None:
    # Issue 11: x -> ., then h -> x/x/../../victim.txt: normpath makes it 'victim.txt', but
    # on disk it is two levels above the staging folder.
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    archive = _archive(
        tmp_path / "hard.tar.gz",
        _link("x", "."),
        _link("h", "x/x/../../victim.txt", tarfile.LNKTYPE),
    )
    (tmp_path / "work").mkdir()  # the staging folder goes beside code/: x/x/../.. is tmp_path
    _refused(archive, tmp_path / "work/code", "unsafe archive member 'h' in .*: hard link to 'x/x/")
    assert victim.stat().st_nlink == 1
    assert victim.read_bytes() == b"precious"


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ([_link("l", "."), _link("h", "l/passwd", tarfile.LNKTYPE)], "which is not a file"),
        ([_file("d/f"), _link("h", "d", tarfile.LNKTYPE)], "'d', which is not a file"),
        ([_link("a", "b"), _link("b", "a"), _file("c")], "too many symlinks"),
    ],
)
def test_hard_links_to_no_file_and_symlink_loops_are_refused(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], reason: str
) -> None:
    _refused(_archive(tmp_path / "links.tar.gz", *members), tmp_path / "code", reason)


def test_a_link_trick_only_visible_at_extraction_is_refused_too(tmp_path: Path) -> None:
    # Each name looks harmless on its own; through the first link, the second escapes.
    archive = _archive(
        tmp_path / "trick.tar.gz", _link("d/l", ".."), _link("d/l/x", "../../outside")
    )
    _refused(archive, tmp_path / "code", "unsafe archive member 'd/l/x'")
    assert not (tmp_path / "outside").exists()


def test_a_chain_of_inner_links_that_resolves_outside_is_refused(tmp_path: Path) -> None:
    # 'x/y/../..' is '.' on paper; through the links x -> . and y -> . it is two levels up.
    # A file written through b would land two levels above the staging folder: in tmp_path.
    archive = _archive(
        tmp_path / "chain.tar.gz",
        _link("x", "."),
        _link("y", "."),
        _link("b", "x/y/../.."),
        _file("b/evil"),
    )
    (tmp_path / "work").mkdir()
    _refused(archive, tmp_path / "work" / "code", "unsafe archive member 'b'")
    assert not (tmp_path / "evil").exists()


def test_a_symlink_turned_outward_by_a_later_member_is_refused(tmp_path: Path) -> None:
    # a -> d/../x is inside while d does not exist; d -> . then makes it one level up.
    archive = _archive(
        tmp_path / "later.tar.gz", _link("a", "d/../x"), _link("d", "."), _file("ok")
    )
    _refused(archive, tmp_path / "code", "'a' in .*: symlink to 'd/../x' leaves the target once")


def test_extracted_files_lose_setuid_bits_and_group_or_other_write(tmp_path: Path) -> None:
    info, data = _file("run.sh", b"#!/bin/sh\n")
    info.mode = 0o6777
    info.uid, info.gid, info.uname, info.gname = 4242, 4242, "someone", "others"
    safe_extract(_archive(tmp_path / "modes.tar.gz", (info, data)), tmp_path / "code")
    extracted = (tmp_path / "code" / "run.sh").stat()
    assert extracted.st_mode & 0o7777 == 0o755
    assert (extracted.st_uid, extracted.st_gid) != (4242, 4242)


def test_not_a_tarball_is_a_user_error(tmp_path: Path) -> None:
    bogus = tmp_path / "sourcedir.tar.gz"
    bogus.write_bytes(b"not a tarball")
    _refused(bogus, tmp_path / "code", "not a readable tar archive")


def _good_gzip(tmp_path: Path) -> bytes:
    archive = _archive(
        tmp_path / "good.tar.gz", _file("a.bin", os.urandom(64 * 1024)), _file("b.txt", b"b")
    )
    return archive.read_bytes()


def test_a_truncated_gzip_archive_is_a_user_error_naming_it(tmp_path: Path) -> None:
    data = _good_gzip(tmp_path)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    _refused(cut, tmp_path / "code", "cut.tar.gz is truncated or damaged: Compressed file ended")


def test_a_gzip_crc_mismatch_is_found_by_reading_to_the_end(tmp_path: Path) -> None:
    data = bytearray(_good_gzip(tmp_path))
    data[-8] ^= 0xFF  # the trailer's CRC-32: only checked once the whole stream is read
    bad = tmp_path / "crc.tar.gz"
    bad.write_bytes(bytes(data))
    _refused(bad, tmp_path / "code", "crc.tar.gz is truncated or damaged: CRC check failed")


def test_a_damaged_header_after_the_first_is_an_error_not_the_end(tmp_path: Path) -> None:
    archive = _plain(tmp_path / "junk.tar", _file("a.txt", b"a"), _file("b.txt", b"b"))
    data = bytearray(archive.read_bytes())
    data[1024 : 1024 + 100] = b"junk" * 25  # the second header (the first member is 2 blocks)
    archive.write_bytes(bytes(data))
    _refused(archive, tmp_path / "code", "junk.tar is truncated or damaged: .* at byte 1024")


@pytest.mark.parametrize(
    ("keep", "reason"), [(1024, "at byte 1024"), (600, "unexpected end of data")]
)
def test_a_plain_tar_cut_between_or_inside_members_is_refused(
    tmp_path: Path, keep: int, reason: str
) -> None:
    archive = _plain(tmp_path / "cut.tar", _file("a.txt", b"a" * 200), _file("b.txt", b"b"))
    archive.write_bytes(archive.read_bytes()[:keep])
    _refused(archive, tmp_path / "code", f"cut.tar is truncated or damaged: .*{reason}")


def test_an_extended_header_over_1_mib_is_refused_before_it_is_read(tmp_path: Path) -> None:
    info, data = _file("a.txt")
    info.pax_headers = {"comment": "x" * (2 * 1024 * 1024)}
    archive = _archive(tmp_path / "pax.tar.gz", (info, data))
    _refused(archive, tmp_path / "code", "pax.tar.gz is truncated or damaged: an extended header")


def test_archive_limits_default_to_64_gib_and_a_million_members() -> None:
    assert sources.ArchiveLimits.from_environ({}) == sources.ArchiveLimits(64 * 1024**3, 10**6)
    assert sources.ArchiveLimits.from_environ(
        {"SAGEDOCK_MAX_ARCHIVE_BYTES": "1000", "SAGEDOCK_MAX_ARCHIVE_MEMBERS": "7"}
    ) == sources.ArchiveLimits(1000, 7)
    with pytest.raises(UserError, match="SAGEDOCK_MAX_ARCHIVE_BYTES must be a positive integer"):
        sources.ArchiveLimits.from_environ({"SAGEDOCK_MAX_ARCHIVE_BYTES": "10G"})


def test_an_archive_expanding_past_the_byte_limit_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGEDOCK_MAX_ARCHIVE_BYTES", str(1024 * 1024))
    # 2 MiB of zeros: a few KB compressed (the 204 KB archive became 200 MiB)
    archive = _archive(tmp_path / "bomb.tar.gz", _file("zeros", bytes(2 * 1024 * 1024)))
    assert archive.stat().st_size < 16 * 1024
    _refused(archive, tmp_path / "code", "expands to more than 1048576 bytes .*SAGEDOCK_MAX_ARCH")


def test_an_archive_with_too_many_members_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGEDOCK_MAX_ARCHIVE_MEMBERS", "100")
    archive = _archive(tmp_path / "many.tar.gz", *(_file(f"f{i}", b"") for i in range(101)))
    _refused(archive, tmp_path / "code", "holds more than 100 members .*SAGEDOCK_MAX_ARCHIVE_MEM")
    safe_extract(archive, tmp_path / "ok", limits=sources.ArchiveLimits(max_members=101))
    assert len(list((tmp_path / "ok").iterdir())) == 101


def test_fetch_copies_a_directory_or_file_uri(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text("1")
    assert fetch_code(source.as_uri(), tmp_path / "a") == tmp_path / "a"
    assert (tmp_path / "a/train.py").read_text() == "1"
    fetch_code(str(source), tmp_path / "b")
    assert (tmp_path / "b/train.py").read_text() == "1"


def test_fetch_into_a_folder_inside_the_source_copies_the_source_once(tmp_path: Path) -> None:
    # e.g. `sagedock local train --source-dir .` with the platform's state dir in the project
    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "train.py").write_text("print('hi')\n")
    (project / "pkg" / "util.py").write_text("X = 1\n")
    dest = project / ".state" / "jobs" / "j1" / "code"
    (project / ".state" / "jobs" / "j0").mkdir(parents=True)  # an earlier job's folder
    fetch_code(str(project), dest)
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    assert copied == ["pkg", "pkg/util.py", "train.py"]


def test_fetch_is_a_no_op_when_the_code_dir_holds_code(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text("new")
    dest = tmp_path / "code"
    dest.mkdir()
    (dest / "train.py").write_text("baked in")
    fetch_code(str(source), dest)
    assert (dest / "train.py").read_text() == "baked in"


def test_fetch_of_a_missing_location_names_it(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"the code location '/nope/src' .* does not exist"):
        fetch_code("/nope/src", tmp_path / "code")
