"""Framework defaults: for a model directory that holds exactly one framework's model and no
inference code, a ``model_fn`` and ``predict_fn`` that serve it (a BYOS user who wrote only
``train.py``).

One module per framework, each giving one :class:`~sagedock.serving.handler.FrameworkDefaults`
(a ``detect(model_dir)`` that looks only at file names and archive listings, plus ``model_fn``
and ``predict_fn`` that import the framework when a model is loaded):

- ``onnx``: exactly one ``*.onnx`` file -> an onnxruntime ``InferenceSession``;
- ``torchscript``: exactly one ``*.pt`` / ``*.pth`` TorchScript archive -> ``torch.jit.load``;
- ``tensorflow``: a SavedModel (``saved_model.pb`` in the model directory or in a version
  folder such as ``1/``, the layout SageMaker's TensorFlow containers serve);
- ``torch_pickle``: a ``torch.save`` file that is not TorchScript: a state dict is loaded
  (``weights_only=True``, strictly) into the module the user module's ``build_model()``
  returns, and refused with a message saying what to add when there is no such function; a
  whole pickled module is served;
- ``mxnet``: a Gluon/Module export (``NAME-symbol.json`` + ``NAME-EPOCH.params``).

Every framework default reaches the registry the same way: through the
``sagedock.serving.defaults`` entry-point group (this package's is
``frameworks = "sagedock.serving.framework_defaults:framework_defaults"``; the built-in XGBoost
registers its loader for XGBoost model directories from ``sagedock.containers.xgboost``).
The registry uses a default only when exactly one framework recognises the directory.
"""

from __future__ import annotations

from ..handler import FrameworkDefaults
from . import mxnet, onnx, tensorflow, torch_pickle, torchscript


def framework_defaults() -> list[FrameworkDefaults]:
    """The defaults of this package, in lookup order."""
    return [
        onnx.DEFAULTS,
        torchscript.DEFAULTS,
        tensorflow.DEFAULTS,
        torch_pickle.DEFAULTS,
        mxnet.DEFAULTS,
    ]


__all__ = ["framework_defaults"]
