"""Serving hooks of the built-in Linear Learner: SageMaker's request and response formats.

- :func:`model_fn`: ``model_algo-1`` of the model directory (:mod:`.model`);
- :func:`input_fn`: ``text/csv`` (rows of features, no label), ``application/json``
  (``{"instances": [{"features": [...]}, {"data": {"features": {"values": [...]}}}, ...]}``,
  sparse rows as ``{"keys", "shape", "values"}``), ``application/jsonlines`` (one instance per
  line) and ``application/x-recordio-protobuf`` (dense or sparse ``features["values"]``);
  another type is 415, a body that does not parse is 400 naming the line, instance or record,
  and a row whose feature count is not the model's is 400 naming both counts;
- :func:`predict_fn`: the scores and predicted labels (:class:`.model.Scorer`);
- :func:`output_fn`: ``application/json`` (``{"predictions": [{"score": ..,
  "predicted_label": ..}]}``, the default), ``application/jsonlines`` (one object per line) or
  ``application/x-recordio-protobuf`` (``label["score"]`` and ``label["predicted_label"]``,
  float32). ``text/csv`` is refused with 406, as SageMaker's algorithm refuses it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sagedock.containers.data.content_types import split_content_type
from sagedock.serving.errors import BadRequest, NotAcceptable, UnsupportedMediaType
from sagedock.serving.handler import NO_CONTENT, NoContent
from sagedock.toolkit.errors import UserError

from .model import Scorer, find_artifact, read_model

JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"
CSV = "text/csv"

default_content_type = JSON
default_accept = JSON
ACCEPTED_CONTENT_TYPES = (CSV, JSON, JSONLINES, RECORDIO)
SUPPORTED_ACCEPTS = (JSON, JSONLINES, RECORDIO)


@dataclass(frozen=True)
class Prediction:
    scores: np.ndarray  # (rows, 1) or (rows, classes)
    labels: np.ndarray | None
    multiclass: bool


def model_fn(model_dir: str | Path) -> Scorer:
    path = find_artifact(Path(model_dir))
    try:
        return Scorer.of(read_model(path))
    except UserError as exc:
        from sagedock.serving.errors import ModelError

        raise ModelError(exc.message) from None


def _media(value: Any) -> str:
    header = getattr(value, "header", None) or str(value)
    return split_content_type(header)[0]


def input_fn(body: bytes | str, content_type: Any) -> Any:
    """The request's rows as a float32 matrix (dense, or CSR for sparse instances)."""
    if len(body) == 0:
        return NO_CONTENT
    try:
        media = _media(content_type)
    except UserError as exc:
        raise UnsupportedMediaType(exc.message) from None
    if media not in ACCEPTED_CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"{content_type} is not an accepted ContentType: {', '.join(ACCEPTED_CONTENT_TYPES)}"
        )
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    try:
        if media == CSV:
            from sagedock.containers.data.csv import parse_csv_payload

            return parse_csv_payload(data)
        if media == RECORDIO:
            from sagedock.containers.data.recordio_protobuf import parse_recordio_protobuf

            return parse_recordio_protobuf(data).features
        return _instances_matrix(_json_instances(data, media))
    except UserError as exc:
        raise BadRequest(f"Unable to parse the {media} request: {exc.message}") from None


def _loads(text: bytes, where: str) -> Any:
    from sagedock.serving.codecs import _jsonlib

    try:
        return _jsonlib.loads(text)
    except UnicodeDecodeError as exc:
        raise UserError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from None
    except _jsonlib.JSONLimitError as exc:
        raise UserError(f"{where}: {exc}") from None


def _json_instances(data: bytes, media: str) -> list[tuple[str, Any]]:
    if media == JSON:
        document = _loads(data, "the body")
        if not isinstance(document, dict) or not isinstance(document.get("instances"), list):
            raise UserError('expected an object {"instances": [...]}')
        return [(f"instance {i}", item) for i, item in enumerate(document["instances"])]
    found: list[tuple[str, Any]] = []
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        value = _loads(line, f"line {number}")
        items = value["instances"] if isinstance(value, dict) and "instances" in value else [value]
        if not isinstance(items, list):
            raise UserError(f'line {number}: "instances" is not a list')
        found += [(f"line {number}", item) for item in items]
    return found


def _numbers(value: Any, where: str, what: str) -> np.ndarray:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise UserError(f"{where}: {what} is not a list of numbers")
    try:
        array = np.asarray(value, dtype=np.float64)
    except OverflowError:
        raise UserError(f"{where}: {what} holds a number too large for a float") from None
    if not np.isfinite(array).all():
        raise UserError(f"{where}: {what} holds a value that is not a finite number")
    return array.astype(np.float32)


def _row(item: Any, where: str) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """(values, keys or None, declared width or None) of one instance."""
    if not isinstance(item, dict):
        raise UserError(f"{where}: an instance is an object with features")
    if "features" in item:
        return _numbers(item["features"], where, '"features"'), None, None
    data = item.get("data")
    features = data.get("features") if isinstance(data, dict) else None
    if not isinstance(features, dict) or "values" not in features:
        raise UserError(
            f'{where}: expected {{"features": [...]}} or {{"data": {{"features": '
            '{"values": [...]}}}'
        )
    values = _numbers(features["values"], where, '"values"')
    if "keys" not in features:
        return values, None, None
    keys = features["keys"]
    shape = features.get("shape")
    if not isinstance(keys, list) or not all(
        isinstance(k, int) and not isinstance(k, bool) for k in keys
    ):
        raise UserError(f'{where}: "keys" is not a list of integers')
    if (
        not isinstance(shape, list)
        or len(shape) != 1
        or not isinstance(shape[0], int)
        or isinstance(shape[0], bool)
        or shape[0] < 0
    ):
        raise UserError(f'{where}: a sparse instance needs "shape": [feature count]')
    if len(keys) != len(values):
        raise UserError(f'{where}: {len(keys)} "keys" but {len(values)} "values"')
    if any(k < 0 or k >= shape[0] for k in keys):
        raise UserError(f'{where}: a key is outside "shape" [{shape[0]}]')
    return values, np.asarray(keys, dtype=np.int64), int(shape[0])


def _instances_matrix(items: Sequence[tuple[str, Any]]) -> Any:
    if not items:
        raise UserError("no instances")
    rows = [_row(item, where) for where, item in items]
    widths = {len(values) if width is None else width for values, _, width in rows}
    if len(widths) > 1:
        raise UserError(f"the instances have different feature counts: {sorted(widths)}")
    (width,) = widths
    if all(keys is None for _, keys, _ in rows):
        return np.vstack([values for values, _, _ in rows]).reshape(len(rows), width)
    import scipy.sparse

    indptr = np.cumsum([0] + [len(values) for values, _, _ in rows])
    indices = np.concatenate(
        [keys if keys is not None else np.arange(len(values)) for values, keys, _ in rows]
    )
    data = np.concatenate([values for values, _, _ in rows])
    return scipy.sparse.csr_matrix((data, indices, indptr), shape=(len(rows), width))


def predict_fn(data: Any, model: Scorer) -> Prediction:
    if data.ndim != 2:
        data = np.asarray(data, dtype=np.float32).reshape(1, -1)
    found = int(data.shape[1])
    if found != model.feature_dim:
        raise BadRequest(
            f"The request has {found} features per row, but the model was trained on "
            f"{model.feature_dim} (feature_dim)"
        )
    scores = model.scores(data)
    multiclass = model.model.predictor_type == "multiclass_classifier"
    return Prediction(scores, model.labels(scores), multiclass)


def _objects(prediction: Prediction) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row, scores in enumerate(prediction.scores):
        entry: dict[str, Any] = {
            "score": [float(s) for s in scores] if prediction.multiclass else float(scores[0])
        }
        if prediction.labels is not None:
            entry["predicted_label"] = int(prediction.labels[row])
        out.append(entry)
    return out


def _records(prediction: Prediction) -> bytes:
    from sagedock.toolkit.formats.protobuf import Record, Tensor, records_to_bytes

    records = []
    for row, scores in enumerate(prediction.scores):
        label = {"score": Tensor("float32", np.asarray(scores, dtype=np.float32))}
        if prediction.labels is not None:
            label["predicted_label"] = Tensor(
                "float32", np.asarray([prediction.labels[row]], dtype=np.float32)
            )
        records.append(Record(label=label))
    return records_to_bytes(records)


def output_fn(prediction: Prediction, accept: Any, context: Any = None) -> tuple[bytes, str]:
    # The handler passes its choice among the Accept header's types (a str), not the header.
    media = split_content_type(str(accept))[0] if accept else default_accept
    if media in ("*/*", "application/*"):
        media = default_accept
    if media == JSON:
        return json.dumps({"predictions": _objects(prediction)}).encode(), JSON
    if media == JSONLINES:
        lines = "".join(json.dumps(entry) + "\n" for entry in _objects(prediction))
        return lines.encode(), JSONLINES
    if media == RECORDIO:
        return _records(prediction), RECORDIO
    raise NotAcceptable(
        f"Accept type {accept} is not supported by Linear Learner: use one of "
        f"{', '.join(SUPPORTED_ACCEPTS)} (text/csv output is not supported)"
    )


__all__ = [
    "NoContent",
    "Prediction",
    "default_accept",
    "default_content_type",
    "input_fn",
    "model_fn",
    "output_fn",
    "predict_fn",
]
