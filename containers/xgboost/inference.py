"""Serving hooks of the built-in XGBoost (``sagedock serve --algorithm xgboost``).

The serving runtime calls them in order; what they do matches SageMaker's XGBoost endpoint:

- :func:`model_fn`: every model file of the model directory (:mod:`.model`);
- :func:`input_fn`: an empty body is ``204 No Content`` (checked first, as in SageMaker);
  ``text/csv`` (no label column), ``text/libsvm`` / ``text/x-libsvm`` (labels optional) and
  ``application/x-recordio-protobuf`` (labels ignored); a request without ``Content-Type`` is
  libsvm (:data:`default_content_type`). Any other type is 415, a body that does not parse is
  400 naming the line or record;
- :func:`predict_fn`: SageMaker's feature-count check for pickled models, then XGBoost; a
  failure is 400 ``Unable to evaluate payload provided: ...``;
- :func:`output_fn`: :mod:`.outputs` (``text/csv`` by default, :data:`default_accept`); an
  unsupported Accept is 406 after the prediction, as in SageMaker.

:func:`script_mode_defaults` serves XGBoost models without the algorithm: a script-mode user
whose ``train.py`` saved boosters and who wrote no ``inference.py`` gets this loader (every
format and ensembles) through the serving defaults registry (the ``sagedock.serving.defaults``
entry point ``xgboost``), with the generic codecs around it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sagedock.containers.data.content_types import split_content_type
from sagedock.serving.errors import BadRequest, UnsupportedMediaType
from sagedock.serving.handler import NO_CONTENT, FrameworkDefaults, NoContent
from sagedock.toolkit.errors import UserError

from . import outputs
from .model import FeatureCountError, XGBoostModel, is_model_dir, load_model

logger = logging.getLogger(__name__)

#: A request without Content-Type is libsvm, as in SageMaker's XGBoost.
default_content_type = "text/libsvm"
#: The response type for a missing or ``*/*`` Accept (``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``
#: overrides it, as in SageMaker).
default_accept = outputs.CSV

_FORMATS = {
    "text/csv": "csv",
    "csv": "csv",
    "text/libsvm": "libsvm",
    "text/x-libsvm": "libsvm",
    "libsvm": "libsvm",
    "application/x-recordio-protobuf": "recordio-protobuf",
    "recordio-protobuf": "recordio-protobuf",
}
ACCEPTED_CONTENT_TYPES = (
    "text/csv",
    "text/libsvm",
    "text/x-libsvm",
    "application/x-recordio-protobuf",
)


@dataclass(frozen=True)
class ServingModel:
    """The loaded model and the response settings read once at load time."""

    model: XGBoostModel
    selected_keys: tuple[str, ...]


@dataclass(frozen=True)
class Features:
    """A parsed request: its features and the format they came in."""

    matrix: Any  # float32 ndarray or scipy CSR
    data_format: str

    @property
    def num_rows(self) -> int:
        return int(self.matrix.shape[0])


@dataclass(frozen=True)
class Prediction:
    values: np.ndarray
    objective: str
    num_class: int
    selected_keys: tuple[str, ...]


def model_fn(model_dir: str | Path) -> ServingModel:
    """The model (or ensemble) of *model_dir*, with ``SAGEMAKER_INFERENCE_OUTPUT`` read."""
    model = load_model(Path(model_dir))
    keys = outputs.selected_keys()
    if keys:
        logger.info("selectable inference outputs: %s", ", ".join(keys))
    return ServingModel(model, keys)


def _format_of(content_type: Any) -> str:
    header = getattr(content_type, "header", None) or str(content_type)
    mime, params = split_content_type(header) if ";" in header else (str(content_type), {})
    fmt = _FORMATS.get(mime.lower())
    if fmt is None:
        raise UnsupportedMediaType(
            f"{content_type} is not an accepted ContentType: {', '.join(ACCEPTED_CONTENT_TYPES)}."
        )
    if fmt == "csv" and params.get("label_size", "1") != "1":
        raise UnsupportedMediaType(
            f"{header} is not an accepted csv ContentType. Optional parameter label_size must "
            "be equal to 1"
        )
    return fmt


def input_fn(body: bytes | str, content_type: Any) -> Features | NoContent:
    """The request body as a feature matrix; :data:`NO_CONTENT` (204) for an empty body, before
    the content type is looked at, as SageMaker's XGBoost answers."""
    if len(body) == 0:
        return NO_CONTENT
    try:
        fmt = _format_of(content_type)
    except UserError as exc:  # a repeated parameter
        raise UnsupportedMediaType(exc.message) from None
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    try:
        if fmt == "csv":
            from sagedock.containers.data.csv import parse_csv_payload

            return Features(parse_csv_payload(data), fmt)
        if fmt == "libsvm":
            from sagedock.containers.data.libsvm import parse_libsvm

            return Features(parse_libsvm(data, labelled=False).features, fmt)
        from sagedock.containers.data.recordio_protobuf import parse_recordio_protobuf

        return Features(parse_recordio_protobuf(data).features, fmt)
    except UserError as exc:
        raise BadRequest(
            f"Loading {fmt} data failed, please ensure data is in {fmt} format: {exc.message}"
        ) from None


def predict_fn(data: Features, model: ServingModel) -> Prediction:
    """XGBoost's predictions for the request."""
    import xgboost

    xgb_model = model.model
    try:
        xgb_model.check_features(int(data.matrix.shape[1]), data.data_format)
        values = xgb_model.predict(data.matrix)
    except (FeatureCountError, xgboost.core.XGBoostError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadRequest(f"Unable to evaluate payload provided: {text}") from None
    return Prediction(values, xgb_model.objective, xgb_model.num_class, model.selected_keys)


def output_fn(prediction: Prediction, accept: Any, context: Any = None) -> tuple[bytes, str]:
    """The response body and its content type."""
    mime = str(accept).lower()
    batch = bool(getattr(context, "batch", False))
    if prediction.selected_keys:
        if mime not in outputs.SUPPORTED_ACCEPTS:
            raise outputs.unsupported_accept(str(accept))
        rows = outputs.selectable_rows(
            prediction.values, prediction.objective, prediction.num_class, prediction.selected_keys
        )
        return outputs.encode_selectable(rows, mime, batch=batch), mime
    if batch:
        return outputs.encode_batch(prediction.values), mime
    return outputs.encode_predictions(prediction.values, mime), mime


# -- script mode: the serving defaults for XGBoost model directories ------------------------------
def script_model_fn(model_dir: str | Path) -> XGBoostModel:
    """The model (or ensemble) of *model_dir*, loaded as the algorithm loads it."""
    return load_model(Path(model_dir))


def script_predict_fn(data: Any, model: XGBoostModel) -> np.ndarray:
    """Predictions for what the generic ``input_fn`` decoded: rows of numbers (JSON, CSV,
    NPY/NPZ) or a sparse matrix."""
    import xgboost

    if not hasattr(data, "tocsr"):
        try:
            data = np.asarray(data, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"expected rows of numbers: {exc}") from None
        if data.ndim == 1:
            data = data.reshape(1, -1)  # one row
    try:
        return model.predict(data)
    except xgboost.core.XGBoostError as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadRequest(f"Unable to evaluate payload provided: {text}") from None


def script_mode_defaults() -> FrameworkDefaults:
    """The ``xgboost`` framework defaults: for a model directory holding XGBoost models and
    nothing else (:func:`~.model.is_model_dir`)."""
    return FrameworkDefaults(
        "xgboost", is_model_dir, {"model_fn": script_model_fn, "predict_fn": script_predict_fn}
    )
