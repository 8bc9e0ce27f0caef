"""Fetching the user's code, and refusing archives that would write outside the code dir."""

from __future__ import annotations

import io
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


def test_safe_extract_writes_regular_files_and_inner_links(tmp_path: Path) -> None:
    archive = _archive(
        tmp_path / "ok.tar.gz",
        _file("train.py", b"print(1)"),
        _file("pkg/mod.py"),
        _link("pkg/alias.py", "mod.py"),
    )
    safe_extract(archive, tmp_path / "code")
    assert (tmp_path / "code/train.py").read_bytes() == b"print(1)"
    assert (tmp_path / "code/pkg/alias.py").read_bytes() == b"x"


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
    ],
)
def test_unsafe_members_are_refused_by_name_and_nothing_is_written(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None], reason: str
) -> None:
    archive = _archive(tmp_path / "bad.tar.gz", _file("train.py"), member)
    dest = tmp_path / "code"
    with pytest.raises(UserError, match=f"unsafe archive member {member[0].name!r}: {reason}"):
        safe_extract(archive, dest)
    assert not dest.exists() or not any(dest.iterdir())


def test_a_link_trick_only_visible_at_extraction_is_refused_too(tmp_path: Path) -> None:
    # Each name looks harmless on its own; through the first link, the second escapes.
    archive = _archive(
        tmp_path / "trick.tar.gz", _link("d/l", ".."), _link("d/l/x", "../../outside")
    )
    dest = tmp_path / "code"
    with pytest.raises(UserError, match="unsafe archive member"):
        safe_extract(archive, dest)
    assert not (tmp_path / "outside").exists()
    assert not dest.exists() or not any(dest.iterdir())


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
    dest = tmp_path / "work" / "code"
    with pytest.raises(UserError, match="unsafe archive member 'b"):
        safe_extract(archive, dest)
    assert not (tmp_path / "evil").exists()
    assert not dest.exists() or not any(dest.iterdir())


def test_a_hard_link_through_an_inner_symlink_is_refused(tmp_path: Path) -> None:
    archive = _archive(
        tmp_path / "hard.tar.gz", _link("l", "."), _link("h", "l/passwd", tarfile.LNKTYPE)
    )
    with pytest.raises(UserError, match="'h': goes through the symlink 'l'"):
        safe_extract(archive, tmp_path / "code")


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
    with pytest.raises(UserError, match="not a readable tar archive"):
        safe_extract(bogus, tmp_path / "code")


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
