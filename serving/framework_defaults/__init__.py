"""Framework defaults for the framework images, beside :mod:`sagedock.serving.frameworks`.

One module per framework, each giving one :class:`~sagedock.serving.handler.FrameworkDefaults`
(a ``detect(model_dir)`` that looks only at file names and archive listings, plus ``model_fn``
and ``predict_fn`` that import the framework when a model is loaded):

- ``tensorflow``: a SavedModel (``saved_model.pb`` in the model directory or in a version
  folder such as ``1/``, the layout SageMaker's TensorFlow containers serve);
- ``torch_pickle``: a ``torch.save`` file that is not TorchScript: a whole pickled module is
  served; a bare state dict is refused with a message saying what to write instead;
- ``mxnet``: a Gluon/Module export (``NAME-symbol.json`` + ``NAME-EPOCH.params``).

They reach the serving defaults registry through the ``sagedock.serving.defaults`` entry point
``frameworks = "sagedock.serving.framework_defaults:framework_defaults"``.
"""

from __future__ import annotations

from ..handler import FrameworkDefaults
from . import mxnet, tensorflow, torch_pickle


def framework_defaults() -> list[FrameworkDefaults]:
    """The defaults of this package, in lookup order."""
    return [tensorflow.DEFAULTS, torch_pickle.DEFAULTS, mxnet.DEFAULTS]


__all__ = ["framework_defaults"]
