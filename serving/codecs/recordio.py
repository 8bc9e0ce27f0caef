"""``application/x-recordio-protobuf``: SageMaker's Record protobuf in RecordIO framing.

Decoding gives the feature matrix of :func:`sagedock.toolkit.formats.protobuf.to_arrays`: a
dense ``float32`` ndarray, or a ``scipy.sparse.csr_matrix`` when the records are sparse (labels
in the request are ignored). Encoding writes predictions the way SageMaker's algorithms answer:
one record per prediction, the value as a Float32Tensor under ``label["score"]`` (a 1-D
array gives scalar
scores, a 2-D array a vector per row); a list of dicts (or a dict of equal-length columns)
gives one record per row with one label entry per key (e.g. ``score`` and
``predicted_label``); a list of :class:`~sagedock.toolkit.formats.protobuf.Record` is written
as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from sagedock.toolkit.formats import protobuf
from sagedock.toolkit.formats.protobuf import Record, Tensor
from sagedock.toolkit.formats.recordio import RecordIOError

from ..errors import BadRequest
from ..negotiation import MediaType
from .base import Codec

#: The label key for array predictions (what Linear Learner and XGBoost responses use).
SCORE_KEY = "score"


def _tensor(value: Any) -> Tensor:
    array = np.asarray(value)
    if array.dtype.hasobject or array.dtype.kind not in "fiub":
        raise ValueError(f"a {type(value).__name__} prediction is not numeric")
    # Float32Tensor whatever the dtype: clients read label[key].float32_tensor, as SageMaker's
    # algorithms write it.
    with np.errstate(over="ignore"):
        return Tensor("float32", np.atleast_1d(array).reshape(-1).astype(np.float32))


def _records(value: Any) -> list[Record]:
    if isinstance(value, Sequence) and value and all(isinstance(r, Record) for r in value):
        return list(value)
    if isinstance(value, Mapping):
        columns = {str(k): list(np.asarray(v).reshape(len(v), -1)) for k, v in value.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError("columns of a dict prediction have different lengths")
        n = lengths.pop() if lengths else 0
        value = [{k: col[i] for k, col in columns.items()} for i in range(n)]
    if isinstance(value, Sequence) and value and all(isinstance(r, Mapping) for r in value):
        return [Record(label={str(k): _tensor(v) for k, v in row.items()}) for row in value]
    array = np.asarray(value)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim > 2:
        raise ValueError(f"a {array.ndim}-D prediction cannot be written as records")
    return [Record(label={SCORE_KEY: _tensor(row)}) for row in array]


class RecordIOProtobufCodec(Codec):
    """``application/x-recordio-protobuf``."""

    content_type: ClassVar[str] = protobuf.CONTENT_TYPE

    def decode(self, body: bytes, media: MediaType) -> Any:
        try:
            features, _labels = protobuf.to_arrays(body)
        except (RecordIOError, protobuf.RecordFormatError) as exc:
            raise BadRequest(f"invalid {media.mime} body: {exc.message}") from None
        return features

    def encode(self, value: Any, media: MediaType) -> bytes:
        return bytes(protobuf.records_to_bytes(_records(value)))

    def can_encode(self, value: Any) -> bool:
        if isinstance(value, bytes | bytearray | memoryview | str):
            return False
        if isinstance(value, Mapping):  # columns: equally long numeric arrays
            try:
                arrays = [np.asarray(v) for v in value.values()]
            except (TypeError, ValueError):  # ragged values: not columns
                return False
            return bool(arrays) and all(
                a.dtype.kind in "fiub" and 1 <= a.ndim <= 2 and len(a) == len(arrays[0])
                for a in arrays
            )
        if isinstance(value, Sequence) and value and isinstance(value[0], Record | Mapping):
            return True
        return _numeric(value, max_ndim=2)


def _numeric(value: Any, max_ndim: int = 2) -> bool:
    if type(value).__module__.startswith("scipy.sparse"):
        return False
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        return False
    return array.dtype.kind in "fiub" and array.ndim <= max_ndim
