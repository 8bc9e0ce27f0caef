"""Finding the model file in a model directory that holds more than the model.

SageMaker unpacks ``model.tar.gz`` into an empty ``/opt/ml/model``, but SDK local mode
extracts it *in place* and mounts the whole output folder, so the directory also holds
``model.tar.gz``, ``output.tar.gz`` and whatever else the job wrote. Every default
``model_fn`` picks its file the same way: a known model file name first, then the candidates
that are not archives (an archive is never a model), and when it cannot choose, a
:class:`~sagedock.serving.errors.ModelError` that lists what it saw and names what it wants.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from .errors import ModelError

#: Names that are archives of a job's outputs, never a model to load.
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz", ".gz")
#: How many names an error message lists before it says "and N more".
_LISTED = 20


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def visible_files(model_dir: Path) -> list[Path]:
    """The regular, non-hidden files directly in *model_dir*, sorted by name."""
    if not model_dir.is_dir():
        return []
    return sorted(p for p in model_dir.iterdir() if p.is_file() and not p.name.startswith("."))


def candidates(model_dir: Path, accept: Callable[[Path], bool] | None = None) -> list[Path]:
    """The visible files of *model_dir* that are not archives (and that *accept* takes)."""
    return [
        p for p in visible_files(model_dir) if not is_archive(p) and (accept is None or accept(p))
    ]


def pick_one(found: Sequence[Path], preferred: Iterable[str] = ("model",)) -> Path | None:
    """The one file of *found*; among several, the one whose name (or stem) comes first in
    *preferred*; ``None`` when there is none or no way to choose."""
    if len(found) == 1:
        return found[0]
    for name in preferred:
        for path in found:
            if path.name == name or path.stem == name:
                return path
    return None


def listing(model_dir: Path) -> str:
    """What *model_dir* holds, for an error message (folders end in ``/``)."""
    if not model_dir.is_dir():
        return "it does not exist"
    entries = sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in model_dir.iterdir()
        if not p.name.startswith(".")
    )
    if not entries:
        return "it is empty"
    shown = ", ".join(entries[:_LISTED])
    more = f" and {len(entries) - _LISTED} more" if len(entries) > _LISTED else ""
    return f"it holds {shown}{more}"


def not_found(model_dir: Path, wanted: str, *, among: Sequence[Path] = ()) -> ModelError:
    """The error for a model directory in which *wanted* cannot be found, or (with *among*)
    not told apart from its neighbours."""
    if len(among) > 1:
        names = ", ".join(p.name for p in among)
        return ModelError(
            f"cannot choose the model in {model_dir} among {names}: expected {wanted}; "
            f"{listing(model_dir)}"
        )
    return ModelError(f"no model in {model_dir}: expected {wanted}; {listing(model_dir)}")
