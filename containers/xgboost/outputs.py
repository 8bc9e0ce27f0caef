"""What an XGBoost endpoint answers: SageMaker's response formats, encoded with the serving codecs.

Default responses (``SAGEMAKER_INFERENCE_OUTPUT`` unset):

- ``text/csv``: one prediction per line with a trailing newline (a ``multi:softprob`` row is
  one comma-separated line), values as Python's ``repr`` of the double;
- ``application/json``: ``{"predictions": [{"score": v}, ...]}`` (``score`` is a list for
  ``multi:softprob``);
- ``application/jsonlines``: one ``{"score": v}`` per line;
- ``application/x-recordio-protobuf``: one record per row, ``label["score"]``;
- batch transform (``SAGEMAKER_BATCH``): one ``str(prediction)`` per line with a trailing
  newline, whatever the Accept (a softprob row prints as a Python list).

Selectable outputs (``SAGEMAKER_INFERENCE_OUTPUT=predicted_label,probabilities``, as Autopilot
sets it) give each row the named keys; see :func:`selectable_rows`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from functools import cache
from types import MappingProxyType
from typing import Any

import numpy as np

from sagedock.serving.errors import ModelError, NotAcceptable

logger = logging.getLogger(__name__)

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"
SUPPORTED_ACCEPTS: tuple[str, ...] = (CSV, JSON, JSONLINES, RECORDIO_PROTOBUF)

INFERENCE_OUTPUT_ENV = "SAGEMAKER_INFERENCE_OUTPUT"

PREDICTED_LABEL = "predicted_label"
LABELS = "labels"
PROBABILITY = "probability"
PROBABILITIES = "probabilities"
RAW_SCORE = "raw_score"
RAW_SCORES = "raw_scores"
PREDICTED_SCORE = "predicted_score"

_CLASSIFIER_KEYS = (PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES, RAW_SCORE, RAW_SCORES)
_LABEL_KEYS = (PREDICTED_LABEL, LABELS, RAW_SCORE, RAW_SCORES)

#: objective -> the selectable keys it can answer.
SELECTABLE_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "reg:squarederror": (PREDICTED_SCORE,),
        "reg:logistic": (PREDICTED_SCORE,),
        "reg:gamma": (PREDICTED_SCORE,),
        "reg:absoluteerror": (PREDICTED_SCORE,),
        "reg:tweedie": (PREDICTED_SCORE,),
        "binary:logistic": _CLASSIFIER_KEYS,
        "binary:logitraw": _LABEL_KEYS,
        "binary:hinge": _LABEL_KEYS,
        "multi:softmax": _LABEL_KEYS,
        "multi:softprob": _CLASSIFIER_KEYS,
    }
)


def unsupported_accept(accept: str) -> NotAcceptable:
    return NotAcceptable(
        f"Accept type {accept} is not supported. Please use supported accept types: "
        f"{list(SUPPORTED_ACCEPTS)}"
    )


def selected_keys(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The keys of ``SAGEMAKER_INFERENCE_OUTPUT`` (spaces removed, lower case), or ``()``."""
    env = os.environ if environ is None else environ
    text = env.get(INFERENCE_OUTPUT_ENV, "").replace(" ", "").lower()
    return tuple(k for k in text.split(",") if k)


# -- selectable outputs ----------------------------------------------------------------------


def _value(key: str, pred: Any, objective: str, num_class: int) -> Any:
    if key == LABELS:
        return [0, 1] if objective.startswith("binary:") else list(range(num_class))
    if objective == "multi:softprob":
        probs = [float(p) for p in pred]
        best = int(np.argmax(pred))
        return {
            PREDICTED_LABEL: best,
            PROBABILITY: max(probs),
            PROBABILITIES: probs,
            RAW_SCORE: max(probs),
            RAW_SCORES: probs,
        }[key]
    raw = float(pred)
    if key == PREDICTED_LABEL:
        if objective == "binary:logistic":
            return int(raw > 0.5)
        if objective == "binary:logitraw":
            return int(raw > 0)
        return raw  # binary:hinge and multi:softmax predict the class itself
    if key == PROBABILITY:
        return raw
    if key == PROBABILITIES:
        return [1.0 - raw, raw]
    if key == RAW_SCORES:
        return [1.0 - raw, raw]  # SageMaker's definition, also for margins and classes
    return raw  # raw_score, predicted_score


def selectable_rows(
    preds: np.ndarray, objective: str, num_class: int, keys: Sequence[str]
) -> list[dict[str, Any]]:
    """One ``{key: value}`` per prediction, as SageMaker's selectable inference answers.

    A key the objective cannot answer is logged and its value is NaN.

    :raises ModelError: the objective has no selectable outputs (500, as in SageMaker).
    """
    allowed = SELECTABLE_KEYS.get(objective)
    if allowed is None:
        raise ModelError(
            f"Objective `{objective}` unsupported for selectable inference predictions."
        )
    for key in keys:
        if key not in allowed:
            logger.warning(
                "%s=%s: %s is not available for objective %s (it can give %s); answering NaN",
                INFERENCE_OUTPUT_ENV,
                ",".join(keys),
                key,
                objective,
                ", ".join(allowed),
            )
    rows = []
    for pred in preds:
        rows.append(
            {
                key: _value(key, pred, objective, num_class) if key in allowed else math.nan
                for key in keys
            }
        )
    return rows


# -- encoding --------------------------------------------------------------------------------


@cache
def _codecs() -> Any:
    from sagedock.serving.codecs import default_registry

    return default_registry()


def _encode(mime: str, value: Any) -> bytes:
    from sagedock.serving.negotiation import parse_media_type

    codec = _codecs().encoder_for(mime)
    return bytes(codec.encode(value, parse_media_type(mime)))


def _records(rows: Sequence[Mapping[str, Any]]) -> bytes:
    from sagedock.toolkit.formats.protobuf import Record, Tensor, records_to_bytes

    records = []
    for row in rows:
        label = {
            key: Tensor("float32", np.atleast_1d(np.asarray(value, dtype=np.float32)))
            for key, value in row.items()
        }
        records.append(Record(label=label))
    return bytes(records_to_bytes(records))


def _csv_field(value: Any) -> str:
    if isinstance(value, list):
        return '"' + str(value) + '"'
    return str(value)


def encode_selectable(rows: Sequence[Mapping[str, Any]], accept: str, *, batch: bool) -> bytes:
    """Selectable-output *rows* in the *accept* format.

    CSV: the values in key order, lists quoted (``1,"[0.4, 0.6]"``), rows joined by newlines,
    a final newline only in batch transform, as SageMaker writes it.
    """
    if accept == CSV:
        text = "\n".join(",".join(_csv_field(v) for v in row.values()) for row in rows)
        return (text + "\n" if batch else text).encode()
    if accept == JSON:
        return _encode(JSON, {"predictions": list(rows)})
    if accept == JSONLINES:
        return _encode(JSONLINES, list(rows))
    if accept == RECORDIO_PROTOBUF:
        return _records(rows)
    raise unsupported_accept(accept)


def encode_batch(preds: np.ndarray) -> bytes:
    """Batch transform: ``str`` of each prediction (a Python list for a row), one per line."""
    return ("\n".join(str(p) for p in preds.tolist()) + "\n").encode()


def encode_predictions(preds: np.ndarray, accept: str) -> bytes:
    """The default (non-selectable) response for *accept*."""
    values = np.asarray(preds, dtype=np.float64)
    if accept == CSV:
        return _encode(CSV, values)
    scores = values.tolist()
    if accept == JSON:
        return _encode(JSON, {"predictions": [{"score": s} for s in scores]})
    if accept == JSONLINES:
        return _encode(JSONLINES, [{"score": s} for s in scores])
    if accept == RECORDIO_PROTOBUF:
        return _records([{"score": s} for s in scores])
    raise unsupported_accept(accept)
