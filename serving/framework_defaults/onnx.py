"""ONNX models: exactly one ``*.onnx`` file in the model directory, served by an onnxruntime
``InferenceSession`` on the CPU. A model with one input gets the request's array (cast to
``float32`` when the input is a float tensor); a model with several inputs gets a JSON object
keyed by input name. The answer is the first output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sagedock.toolkit.errors import UserError

from ..handler import FrameworkDefaults

SUFFIX = ".onnx"


def model_file(model_dir: Path) -> Path | None:
    """The one ``*.onnx`` file in *model_dir*, else ``None`` (none, or several)."""
    found = [p for p in model_dir.iterdir() if p.is_file() and p.suffix == SUFFIX]
    return found[0] if len(found) == 1 else None


def detect(model_dir: Path) -> bool:
    return model_file(model_dir) is not None


def model_fn(model_dir: str | Path) -> Any:
    import onnxruntime

    path = model_file(Path(model_dir))
    if path is None:
        raise UserError(f"no single {SUFFIX} file in {model_dir}")
    return onnxruntime.InferenceSession(
        str(path), sess_options=onnxruntime.SessionOptions(), providers=["CPUExecutionProvider"]
    )


def predict_fn(data: Any, model: Any) -> Any:
    import numpy as np

    inputs = model.get_inputs()
    if len(inputs) != 1:
        feeds = {i.name: np.asarray(data[i.name]) for i in inputs}
    else:
        array = np.asarray(data)
        if "float" in inputs[0].type and array.dtype != np.float32:
            array = array.astype(np.float32)
        feeds = {inputs[0].name: array}
    return model.run(None, feeds)[0]


DEFAULTS = FrameworkDefaults("onnx", detect, {"model_fn": model_fn, "predict_fn": predict_fn})
