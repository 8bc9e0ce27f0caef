"""ONNX models: exactly one ``*.onnx`` file in the model directory, served by an onnxruntime
``InferenceSession`` on the CPU. A model with one input gets the request's array (cast to
``float32`` when the input is a float tensor); a model with several inputs gets a JSON object
keyed by input name. The answer is the first output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import model_files
from ..handler import FrameworkDefaults

SUFFIX = ".onnx"


def onnx_files(model_dir: Path) -> list[Path]:
    return model_files.candidates(model_dir, lambda p: p.suffix == SUFFIX)


def model_file(model_dir: Path) -> Path | None:
    """The one ``*.onnx`` file in *model_dir* (``model.onnx`` among several), else ``None``."""
    return model_files.pick_one(onnx_files(model_dir))


def detect(model_dir: Path) -> bool:
    return model_file(model_dir) is not None


def model_fn(model_dir: str | Path) -> Any:
    import onnxruntime

    model_dir = Path(model_dir)
    path = model_file(model_dir)
    if path is None:
        raise model_files.not_found(
            model_dir, f"one {SUFFIX} file (model{SUFFIX})", among=onnx_files(model_dir)
        )
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
