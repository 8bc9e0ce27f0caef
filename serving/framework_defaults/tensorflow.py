"""TensorFlow SavedModel defaults: ``tf.saved_model.load`` and its ``serving_default``.

Recognised layouts (SageMaker's TensorFlow serving containers use the versioned ones):
``model_dir/saved_model.pb``, ``model_dir/<version>/saved_model.pb`` (the highest numeric
version wins, as TensorFlow Serving does) and ``model_dir/<name>/<version>/saved_model.pb``
when ``<name>`` is the only such folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagedock.toolkit.errors import UserError

from .. import model_files
from ..handler import FrameworkDefaults

SAVED_MODEL = "saved_model.pb"


def _versions(folder: Path) -> list[Path]:
    return sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_dir() and p.name.isdigit() and (p / SAVED_MODEL).is_file()
        ),
        key=lambda p: int(p.name),
    )


def saved_model_dir(model_dir: Path) -> Path | None:
    """The SavedModel folder *model_dir* holds, or ``None`` when there is none or several."""
    if (model_dir / SAVED_MODEL).is_file():
        return model_dir
    versions = _versions(model_dir)
    if versions:
        return versions[-1]
    named = [p for p in model_dir.iterdir() if p.is_dir() and p.name != "code" and _versions(p)]
    if len(named) == 1:
        return _versions(named[0])[-1]
    return None


def detect(model_dir: Path) -> bool:
    return saved_model_dir(model_dir) is not None


@dataclass(frozen=True)
class SavedModel:
    """A loaded SavedModel and the signature requests go through (``None``: call the object)."""

    loaded: Any
    signature: Any
    path: Path


def model_fn(model_dir: str | Path) -> SavedModel:
    import tensorflow as tf

    path = saved_model_dir(Path(model_dir))
    if path is None:
        raise model_files.not_found(Path(model_dir), f"a TensorFlow SavedModel ({SAVED_MODEL})")
    loaded = tf.saved_model.load(str(path))
    signatures = getattr(loaded, "signatures", {}) or {}
    signature = signatures.get("serving_default")
    if signature is None and len(signatures) == 1:
        signature = next(iter(signatures.values()))
    if signature is None and not callable(loaded):
        raise UserError(
            f"the SavedModel at {path} has no serving_default signature and is not callable: "
            "export it with a signature (model.export(...) or tf.saved_model.save(..., "
            "signatures=...)), or write predict_fn in code/inference.py"
        )
    return SavedModel(loaded=loaded, signature=signature, path=path)


def predict_fn(data: Any, model: SavedModel) -> Any:
    import numpy as np
    import tensorflow as tf

    if model.signature is None:
        out = model.loaded(tf.constant(np.asarray(data, dtype=np.float32)))
        return out.numpy() if hasattr(out, "numpy") else out
    specs: Mapping[str, Any] = model.signature.structured_input_signature[1]
    if isinstance(data, Mapping):
        missing = sorted(set(specs) - set(data))
        if missing:
            raise UserError(
                f"the request lacks the model inputs {missing} (inputs: {sorted(specs)})"
            )
        feeds = {
            name: tf.constant(np.asarray(data[name]), dtype=spec.dtype)
            for name, spec in specs.items()
        }
    elif len(specs) == 1:
        name, spec = next(iter(specs.items()))
        feeds = {name: tf.constant(np.asarray(data), dtype=spec.dtype)}
    else:
        raise UserError(
            f"the model takes several inputs {sorted(specs)}: send a JSON object keyed by them"
        )
    outputs = model.signature(**feeds)
    arrays = {name: value.numpy() for name, value in outputs.items()}
    return next(iter(arrays.values())) if len(arrays) == 1 else arrays


DEFAULTS = FrameworkDefaults("tensorflow", detect, {"model_fn": model_fn, "predict_fn": predict_fn})
