"""Built-in framework defaults: a ``model_fn`` and ``predict_fn`` for model directories whose
content leaves no doubt about what they hold.

- ``onnx``: exactly one ``*.onnx`` file -> an onnxruntime ``InferenceSession``; ``predict_fn``
  feeds the data to the single input and answers the first output.
- ``torchscript``: exactly one ``*.pt`` / ``*.pth`` file that is a TorchScript archive (not a
  pickled state dict, which needs the user's class) -> ``torch.jit.load`` on CPU;
  ``predict_fn`` runs it under ``torch.no_grad()`` and answers a numpy array.
- ``xgboost``: ``xgboost-model`` (SageMaker's name) or exactly one ``*.ubj`` file -> a Booster;
  ``predict_fn`` is ``inplace_predict`` on dense data, a ``DMatrix`` for sparse data.

Frameworks are imported only when a model of theirs is loaded.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from .handler import FrameworkDefaults


def _only(model_dir: Path, *suffixes: str) -> Path | None:
    found = [p for p in model_dir.iterdir() if p.is_file() and p.suffix in suffixes]
    return found[0] if len(found) == 1 else None


# -- onnx -------------------------------------------------------------------------------------
def _onnx_detect(model_dir: Path) -> bool:
    return _only(model_dir, ".onnx") is not None


def _onnx_model_fn(model_dir: str | Path) -> Any:
    import onnxruntime

    path = _only(Path(model_dir), ".onnx")
    assert path is not None
    options = onnxruntime.SessionOptions()
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def _onnx_predict_fn(data: Any, model: Any) -> Any:
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


# -- torchscript ------------------------------------------------------------------------------
def _torchscript_file(model_dir: Path) -> Path | None:
    path = _only(model_dir, ".pt", ".pth")
    if path is None or not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    # TorchScript archives carry the compiled code; torch.save pickles do not.
    if any("/code/" in name for name in names) and any(n.endswith("constants.pkl") for n in names):
        return path
    return None


def _torchscript_detect(model_dir: Path) -> bool:
    return _torchscript_file(model_dir) is not None


def _torchscript_model_fn(model_dir: str | Path) -> Any:
    import torch

    path = _torchscript_file(Path(model_dir))
    assert path is not None
    model = torch.jit.load(str(path), map_location="cpu")
    model.eval()
    return model


def _torchscript_predict_fn(data: Any, model: Any) -> Any:
    import numpy as np
    import torch

    tensor = torch.as_tensor(np.asarray(data, dtype=np.float32))
    with torch.no_grad():
        output = model(tensor)
    return output.numpy() if isinstance(output, torch.Tensor) else output


# -- xgboost ----------------------------------------------------------------------------------
def _xgboost_file(model_dir: Path) -> Path | None:
    named = model_dir / "xgboost-model"
    if named.is_file():
        return named
    return _only(model_dir, ".ubj")


def _xgboost_detect(model_dir: Path) -> bool:
    return _xgboost_file(model_dir) is not None


def _xgboost_model_fn(model_dir: str | Path) -> Any:
    import xgboost

    path = _xgboost_file(Path(model_dir))
    assert path is not None
    booster = xgboost.Booster()
    booster.load_model(str(path))
    return booster


def _xgboost_predict_fn(data: Any, model: Any) -> Any:
    import numpy as np

    if hasattr(data, "tocsr"):
        import xgboost

        return model.predict(xgboost.DMatrix(data.tocsr()))
    return model.inplace_predict(np.asarray(data, dtype=np.float32))


def builtin_defaults() -> list[FrameworkDefaults]:
    """The framework defaults sagedock ships, in lookup order."""
    return [
        FrameworkDefaults(
            "onnx", _onnx_detect, {"model_fn": _onnx_model_fn, "predict_fn": _onnx_predict_fn}
        ),
        FrameworkDefaults(
            "torchscript",
            _torchscript_detect,
            {"model_fn": _torchscript_model_fn, "predict_fn": _torchscript_predict_fn},
        ),
        FrameworkDefaults(
            "xgboost",
            _xgboost_detect,
            {"model_fn": _xgboost_model_fn, "predict_fn": _xgboost_predict_fn},
        ),
    ]
