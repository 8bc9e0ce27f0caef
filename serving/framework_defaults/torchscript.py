"""TorchScript models: exactly one ``*.pt`` / ``*.pth`` file that is a TorchScript archive (a
``torch.save`` pickle is left to :mod:`.torch_pickle`), loaded with ``torch.jit.load`` on the
CPU and run under ``torch.no_grad()``; the answer is a numpy array.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import model_files
from ..handler import FrameworkDefaults

SUFFIXES = (".pt", ".pth")


def torch_files(model_dir: Path) -> list[Path]:
    """The ``*.pt`` / ``*.pth`` files of *model_dir*."""
    return model_files.candidates(model_dir, lambda p: p.suffix in SUFFIXES)


def archive_names(model_dir: Path) -> tuple[Path, list[str]] | None:
    """The one ``*.pt`` / ``*.pth`` file in *model_dir* (``model.pt`` / ``model.pth`` among
    several) and its zip listing, if it is a zip archive (what ``torch.save`` and
    ``torch.jit.save`` both write)."""
    path = model_files.pick_one(torch_files(model_dir))
    if path is None or not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        return path, archive.namelist()


def is_torchscript(names: Sequence[str]) -> bool:
    """True for a TorchScript archive listing: it carries the compiled code, a pickle does not."""
    return any("/code/" in name for name in names) and any(
        name.endswith("constants.pkl") for name in names
    )


def model_file(model_dir: Path) -> Path | None:
    """The TorchScript archive in *model_dir*, else ``None``."""
    found = archive_names(model_dir)
    return found[0] if found is not None and is_torchscript(found[1]) else None


def detect(model_dir: Path) -> bool:
    return model_file(model_dir) is not None


def model_fn(model_dir: str | Path) -> Any:
    import torch

    model_dir = Path(model_dir)
    path = model_file(model_dir)
    if path is None:
        raise model_files.not_found(
            model_dir,
            f"a TorchScript archive ({' or '.join('model' + s for s in SUFFIXES)})",
            among=torch_files(model_dir),
        )
    model = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    model.eval()
    return model


def predict_fn(data: Any, model: Any) -> Any:
    import numpy as np
    import torch

    tensor = torch.as_tensor(np.asarray(data, dtype=np.float32))
    with torch.no_grad():
        output = model(tensor)
    return output.numpy() if isinstance(output, torch.Tensor) else output


DEFAULTS = FrameworkDefaults(
    "torchscript", detect, {"model_fn": model_fn, "predict_fn": predict_fn}
)
