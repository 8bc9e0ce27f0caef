"""PyTorch files written by ``torch.save`` that are not TorchScript (those are served by
:mod:`.torchscript`).

- a whole pickled ``nn.Module`` (``torch.save(model, path)``) is loaded with its code directory
  on ``sys.path`` (its class must be importable there, not defined in the training script's
  ``__main__``) and run under ``torch.no_grad()``;
- a state dict (``torch.save(model.state_dict(), path)``) holds only tensors: without the
  model's class nothing can be served, so ``model_fn`` fails with a message that says what to
  write (``model_fn`` in ``code/inference.py``, or a TorchScript export).

Unpickling runs code from the file: the model artifact must be the user's own, as it is on
SageMaker.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagedock.toolkit.errors import UserError

from ..handler import FrameworkDefaults
from .torchscript import SUFFIXES, archive_names, is_torchscript, predict_fn


def pickle_file(model_dir: Path) -> Path | None:
    """The one ``torch.save`` archive in *model_dir* that is not TorchScript, else ``None``."""
    found = archive_names(model_dir)
    if found is None:
        return None
    path, names = found
    is_pickle = any(name.endswith("/data.pkl") for name in names)
    return path if is_pickle and not is_torchscript(names) else None


def detect(model_dir: Path) -> bool:
    return pickle_file(model_dir) is not None


def model_fn(model_dir: str | Path) -> Any:
    import torch

    model_dir = Path(model_dir)
    path = pickle_file(model_dir)
    if path is None:
        raise UserError(f"no torch.save file ({', '.join(SUFFIXES)}) in {model_dir}")
    code = model_dir / "code"
    if code.is_dir() and str(code) not in sys.path:
        sys.path.insert(0, str(code))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except (AttributeError, ModuleNotFoundError) as exc:
        raise UserError(
            f"{path.name} is a pickled model whose class cannot be imported ({exc}): put the "
            "class in a module under code/ (not in the training script), or save the model "
            "with torch.jit.script(model).save(...), which needs no code to serve"
        ) from None
    if isinstance(obj, torch.nn.Module):
        obj.eval()
        return obj
    if isinstance(obj, Mapping):
        raise UserError(
            f"{path.name} holds a state dict (parameter tensors only), and serving it needs the "
            "model's class: write model_fn in code/inference.py that builds the model and calls "
            "load_state_dict, or save the model with torch.jit.script(model).save('model.pt')"
        )
    raise UserError(f"{path.name} holds a {type(obj).__name__}, not a torch.nn.Module")


DEFAULTS = FrameworkDefaults(
    "torch-pickle", detect, {"model_fn": model_fn, "predict_fn": predict_fn}
)
