"""PyTorch files written by ``torch.save`` that are not TorchScript (those are served by
:mod:`.torchscript`).

- a state dict (``torch.save(model.state_dict(), path)``: a mapping of parameter names to
  tensors) is served when the user module (``code/inference.py``, or the module
  ``SAGEMAKER_PROGRAM`` names) defines ``build_model()`` returning the untrained
  ``nn.Module``: the default ``model_fn`` builds it, loads the state dict strictly (every key
  and shape must match) and puts it in eval mode. The handler gives ``model_fn`` the module's
  ``build_model`` (:attr:`~sagedock.serving.handler.FrameworkDefaults.uses`), which is called
  as a hook is: ``build_model()``, ``build_model(model_dir)`` (a ``str``, to read the
  architecture's settings saved beside the weights) or ``build_model(model_dir, context)`` -
  its first positional parameter, if any, gets ``model_dir``. The file is read
  with ``weights_only=True``, which unpickles only tensors and plain containers. Without
  ``build_model`` the model cannot be built, and ``model_fn`` fails saying what to add;
- a whole pickled ``nn.Module`` (``torch.save(model, path)``) is loaded with its code directory
  on ``sys.path`` (its class must be importable there, not defined in the training script's
  ``__main__``). That runs code from the file, as unpickling does: the artifact must be the
  user's own, as it is on SageMaker. A user module that defines ``build_model`` asks for the
  state-dict convention, so then nothing but a weights-only load is ever tried.

Both are run under ``torch.no_grad()`` by the TorchScript ``predict_fn``.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagedock.toolkit.errors import UserError

from .. import model_files
from ..handler import FrameworkDefaults, Hook, InferenceContext, bind_hook
from .torchscript import SUFFIXES, archive_names, is_torchscript, predict_fn, torch_files

#: The function of the user module that builds the architecture a state dict is loaded into.
FACTORY = "build_model"


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


def is_state_dict(obj: Any) -> bool:
    """True for a non-empty mapping of names to tensors, what ``Module.state_dict()`` gives."""
    import torch

    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _weights_only(path: Path) -> tuple[bool, Any]:
    """``(True, obj)`` when *path* loads with ``weights_only=True``; ``(False, None)`` when it
    holds other pickled objects (which that loader refuses without running them)."""
    import torch

    try:
        return True, torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        return False, None


def _from_state_dict(
    path: Path,
    state: Mapping[str, Any],
    model_dir: Path,
    context: InferenceContext | None,
    build_model: tuple[Hook, str] | None,
) -> Any:
    import torch

    if build_model is None:
        raise UserError(
            f"{path.name} holds a state dict (parameter tensors only), and serving it needs the "
            f"model's architecture: define {FACTORY}() in code/inference.py (or in the module "
            "SAGEMAKER_PROGRAM names) returning the untrained torch.nn.Module, and the default "
            "model_fn loads the state dict into it; or write model_fn in code/inference.py "
            "yourself, or save the model with torch.jit.script(model).save('model.pt')"
        )
    factory, where = build_model
    model = bind_hook(factory, FACTORY, where)(str(model_dir), context)
    if not isinstance(model, torch.nn.Module):
        raise UserError(
            f"{FACTORY}() in {where} returned a {type(model).__name__}; it must return the "
            "torch.nn.Module whose state dict was saved"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())  # torch's message spans lines
        raise UserError(
            f"{path.name} does not fit the model {FACTORY}() in {where} returns: {detail}"
        ) from None
    model.eval()
    return model


def model_fn(
    model_dir: str | Path,
    context: InferenceContext | None = None,
    *,
    build_model: tuple[Hook, str] | None = None,
) -> Any:
    """Load the model; *build_model* is the user module's (and where it is defined), which
    the handler gives (:data:`DEFAULTS`' ``uses``)."""
    import torch

    model_dir = Path(model_dir)
    path = pickle_file(model_dir)
    if path is None:
        raise model_files.not_found(
            model_dir,
            f"a torch.save file ({' or '.join('model' + s for s in SUFFIXES)})",
            among=torch_files(model_dir),
        )
    plain, obj = _weights_only(path)
    if plain and is_state_dict(obj):
        return _from_state_dict(path, obj, model_dir, context, build_model)
    if plain or build_model is not None:
        what = type(obj).__name__ if plain else "pickled Python objects"
        raise UserError(
            f"{path.name} holds {what}, not a state dict (a mapping of parameter names to "
            f"tensors): save model.state_dict() itself for {FACTORY}() to load"
        )
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
    raise UserError(f"{path.name} holds a {type(obj).__name__}, not a torch.nn.Module")


DEFAULTS = FrameworkDefaults(
    "torch-pickle",
    detect,
    {"model_fn": model_fn, "predict_fn": predict_fn},
    uses=(FACTORY,),
)
