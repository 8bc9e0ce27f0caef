"""RecordIO-protobuf (``application/x-recordio-protobuf``): SageMaker's ``aialgs.data.Record``.

Features come from ``features["values"]`` (dense, or sparse with ``keys`` and ``shape``; a
record with only a ``shape`` is an all-missing row), labels from ``label["values"]``; Int32,
Float32 and Float64 tensors; multipart RecordIO records are joined. Decoding is
:mod:`sagedock.toolkit.formats.protobuf` (vectorised for runs of same-layout records), read in
pieces of :data:`DEFAULT_BATCH_BYTES` so a large file or a Pipe-mode stream is never held
whole. A malformed record gives a UserError naming the file, the record and its byte offset.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from sagedock.toolkit.errors import UserError

from .batch import Batch

#: Bytes of records decoded per batch.
DEFAULT_BATCH_BYTES = 32 << 20
#: The most features a training file's records may declare (a sparse shape is the row's width,
#: whatever its keys): as many as LIBSVM indices allow (0 to 2**31 - 1). XGBoost counts
#: features in 32 bits; a declared 2**40 columns crashed it (std::bad_alloc or a segfault).
MAX_FEATURES = 2**31


def _label_vector(labels: np.ndarray | None, name: str) -> np.ndarray | None:
    if labels is None:
        return None
    labels = np.asarray(labels, dtype=np.float32)
    if labels.ndim == 2:
        if labels.shape[1] != 1:
            raise UserError(
                f"{name}: records carry labels of {labels.shape[1]} values; "
                "a single label value per record is expected"
            )
        labels = labels[:, 0]
    return labels


def _batches(stream: BinaryIO, name: str, batch_bytes: int) -> Iterator[Batch]:
    from sagedock.toolkit.formats import protobuf

    try:
        for features, labels in protobuf.iter_batches(stream, batch_bytes=batch_bytes):
            if features.shape[0] == 0:
                continue
            if features.shape[1] > MAX_FEATURES:
                raise UserError(
                    f"records declare {features.shape[1]} features (the shape of their sparse "
                    f"features['values'] tensors), more than the {MAX_FEATURES} (2**31) "
                    "features training reads, as for LIBSVM indices"
                )
            if isinstance(features, np.ndarray):
                features = np.asarray(features, dtype=np.float32)
            else:
                features = features.tocsr().astype(np.float32, copy=False)
            yield Batch(features=features, label=_label_vector(labels, name))
    except UserError as exc:
        raise UserError(f"{name}: {exc.message}") from None


def read_recordio_protobuf_files(
    files: Sequence[Path], *, batch_bytes: int = DEFAULT_BATCH_BYTES
) -> Iterator[Batch]:
    """Batches of the recordio-protobuf *files*, in order (sparse batches are as wide as their
    own widest record; consumers widen them to a common width)."""
    for path in files:
        with path.open("rb") as stream:
            yield from _batches(stream, path.name, batch_bytes)


def read_recordio_protobuf_stream(
    stream: BinaryIO, *, name: str = "pipe", batch_bytes: int = DEFAULT_BATCH_BYTES
) -> Iterator[Batch]:
    """Batches of a recordio-protobuf byte *stream* (a Pipe-mode FIFO)."""
    yield from _batches(stream, name, batch_bytes)


def parse_recordio_protobuf(data: bytes, *, name: str = "request") -> Batch:
    """A recordio-protobuf payload in memory as one batch (labels kept, if any)."""
    from sagedock.toolkit.formats import protobuf

    try:
        features, labels = protobuf.to_arrays(bytes(data))
    except UserError as exc:
        raise UserError(f"{name}: {exc.message}") from None
    features_any: Any = (
        np.asarray(features, dtype=np.float32)
        if isinstance(features, np.ndarray)
        else features.tocsr().astype(np.float32, copy=False)
    )
    return Batch(features=features_any, label=_label_vector(labels, name))
