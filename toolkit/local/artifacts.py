"""``model.tar.gz`` and ``output.tar.gz``: the directories of every host merged into one
archive, written under a temporary name and then renamed (or uploaded, for S3)."""

from __future__ import annotations

import filecmp
import shutil
import tarfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import locations


@dataclass(frozen=True)
class MergedFile:
    relative: str
    path: Path
    host: str


def merge_plan(sources: Sequence[tuple[str, Path]]) -> tuple[list[MergedFile], list[str]]:
    """Which file supplies each relative path when the directories of several hosts are merged
    (the first host that has a path wins), and the paths where hosts disagree."""
    chosen: dict[str, MergedFile] = {}
    clashes: list[str] = []
    for host, root in sources:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_dir() and not path.is_symlink():
                continue
            rel = path.relative_to(root).as_posix()
            if rel in chosen:
                first = chosen[rel]
                same = (
                    path.is_file()
                    and first.path.is_file()
                    and filecmp.cmp(first.path, path, shallow=False)
                )
                if not same:
                    clashes.append(f"{rel} (kept {first.host}'s, dropped {host}'s)")
                continue
            chosen[rel] = MergedFile(rel, path, host)
    return [chosen[k] for k in sorted(chosen)], clashes


def write_tarball(files: Sequence[MergedFile], dest: Path) -> Path:
    """A gzipped tar of *files* at their relative paths, created atomically at *dest*."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for f in files:
                tar.add(f.path, arcname=f.relative, recursive=False)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def copy_tree(files: Sequence[MergedFile], dest_dir: Path) -> None:
    for f in files:
        target = dest_dir.joinpath(*f.relative.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        if f.path.is_symlink():
            target.unlink(missing_ok=True)
            target.symlink_to(f.path.readlink())
        else:
            shutil.copyfile(f.path, target)


def publish_merged(
    sources: Sequence[tuple[str, Path]],
    destination: str,
    scratch: Path,
    *,
    compressed: bool = True,
    environ: Mapping[str, str] | None = None,
) -> tuple[str, list[str]]:
    """Merge the *sources* directories and publish them at *destination*: a ``.tar.gz`` when
    *compressed*, else the files below the *destination* prefix. Returns the destination and
    the merge clashes (to be logged)."""
    files, clashes = merge_plan(sources)
    if compressed:
        archive = write_tarball(files, scratch / Path(destination).name)
        try:
            locations.publish_file(archive, destination, environ=environ)
        finally:
            archive.unlink(missing_ok=True)
    else:
        staged = scratch / f"tree-{uuid.uuid4().hex[:8]}"
        copy_tree(files, staged)
        try:
            locations.publish_tree(staged, destination, environ=environ)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    return destination, clashes
