"""The unit every reader yields: a block of rows as numpy / scipy arrays.

Readers stream a channel as a sequence of :class:`Batch` objects (tens of thousands of rows
each), so an algorithm can hand them to its framework batch by batch (an ``xgboost.DataIter``,
a torch ``IterableDataset``) without ever holding the data as Python objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse


@dataclass(frozen=True)
class Batch:
    """Rows of one channel.

    :param features: ``float32`` 2-D; a dense ndarray (``NaN`` = missing) or a
        ``scipy.sparse.csr_matrix`` (absent entries = missing).
    :param label: ``float32`` 1-D, one per row; ``None`` when the data has no labels.
    :param weight: ``float32`` 1-D instance weights, or ``None``.
    :param qid: ranking group ids (libsvm ``qid:``), or ``None``.
    """

    features: np.ndarray | scipy.sparse.csr_matrix
    label: np.ndarray | None = None
    weight: np.ndarray | None = None
    qid: np.ndarray | None = None

    @property
    def num_rows(self) -> int:
        return int(self.features.shape[0])

    @property
    def num_cols(self) -> int:
        return int(self.features.shape[1])

    @property
    def is_sparse(self) -> bool:
        return not isinstance(self.features, np.ndarray)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays of this batch."""
        total = 0
        if isinstance(self.features, np.ndarray):
            total += self.features.nbytes
        else:
            f = self.features
            total += f.data.nbytes + f.indices.nbytes + f.indptr.nbytes
        for extra in (self.label, self.weight, self.qid):
            if extra is not None:
                total += extra.nbytes
        return total


def total_rows(batches: Sequence[Batch]) -> int:
    return sum(b.num_rows for b in batches)


def max_cols(batches: Sequence[Batch]) -> int:
    return max((b.num_cols for b in batches), default=0)


def dense_to_csr(features: np.ndarray) -> Any:
    """A dense float matrix as CSR keeping every non-``NaN`` value, zeros included.

    ``scipy.sparse.csr_matrix(dense)`` drops zeros, which a sparse consumer would then read as
    *missing*; this keeps the dense meaning (only ``NaN`` is missing).
    """
    import scipy.sparse

    present = ~np.isnan(features)
    indptr = np.zeros(features.shape[0] + 1, dtype=np.int64)
    np.cumsum(present.sum(axis=1), out=indptr[1:])
    rows, cols = np.nonzero(present)
    del rows
    return scipy.sparse.csr_matrix(
        (features[present].astype(np.float32, copy=False), cols.astype(np.int32), indptr),
        shape=features.shape,
    )


def csr_to_dense(matrix: Any, width: int | None = None) -> np.ndarray:
    """A CSR matrix as a dense float32 matrix with ``NaN`` where no entry is stored (stored
    zeros stay zeros), *width* columns wide."""
    rows, cols = matrix.shape
    width = cols if width is None else width
    out = np.full((rows, width), np.nan, dtype=np.float32)
    counts = np.diff(matrix.indptr)
    row_of = np.repeat(np.arange(rows), counts)
    out[row_of, matrix.indices] = matrix.data
    return out


def split_rows(batch: Batch, max_bytes: int) -> list[Batch]:
    """*batch* cut into consecutive row ranges of about *max_bytes* each (views, no copies)."""
    if batch.nbytes <= max_bytes or batch.num_rows <= 1:
        return [batch]
    pieces = -(-batch.nbytes // max_bytes)
    step = -(-batch.num_rows // pieces)

    def rows(values: np.ndarray | None, start: int) -> np.ndarray | None:
        return None if values is None else values[start : start + step]

    return [
        Batch(
            batch.features[start : start + step],
            *(rows(v, start) for v in (batch.label, batch.weight, batch.qid)),
        )
        for start in range(0, batch.num_rows, step)
    ]


def concat(batches: Sequence[Batch]) -> Batch:
    """All *batches* as one (dense when every batch is dense, else CSR of the widest width)."""

    if not batches:
        raise ValueError("concat() needs at least one batch")
    width = max_cols(batches)
    if all(not b.is_sparse for b in batches):
        features: Any = np.concatenate([b.features for b in batches], axis=0)
    else:
        parts = [b.features if b.is_sparse else dense_to_csr(b.features) for b in batches]
        features = stack_csr(parts, width)

    def _join(name: str, fill: float | None) -> np.ndarray | None:
        values = [getattr(b, name) for b in batches]
        if all(v is None for v in values):
            return None
        if fill is None and any(v is None for v in values):
            return None
        return np.concatenate(
            [
                v if v is not None else np.full(b.num_rows, fill, dtype=np.float32)
                for v, b in zip(values, batches, strict=True)
            ]
        )

    return Batch(
        features=features,
        label=_join("label", None),
        weight=_join("weight", 1.0),
        qid=_join("qid", None),
    )


def csr_index_dtype(nnz: int) -> type[np.signedinteger[Any]]:
    """int32 while it can address *nnz* entries (scipy keeps indices and indptr in one
    dtype: an int64 indptr would double the size of the indices)."""
    return np.int32 if nnz < 2**31 else np.int64


def stack_csr(parts: Sequence[Any], width: int) -> Any:
    """CSR matrices one under the other, *width* columns wide, with one copy of the data
    (``scipy.sparse.vstack`` goes through COO triples, about three times the memory)."""
    import scipy.sparse

    nnz = sum(int(p.nnz) for p in parts)
    index = csr_index_dtype(max(nnz, width))
    data = np.concatenate([p.data[p.indptr[0] : p.indptr[-1]] for p in parts]).astype(
        np.float32, copy=False
    )
    indices = np.concatenate([p.indices[p.indptr[0] : p.indptr[-1]] for p in parts]).astype(
        index, copy=False
    )
    pointers = [np.zeros(1, dtype=index)]
    offset = 0
    for p in parts:
        pointers.append((p.indptr[1:] - p.indptr[0] + offset).astype(index, copy=False))
        offset += int(p.indptr[-1] - p.indptr[0])
    rows = sum(p.shape[0] for p in parts)
    return scipy.sparse.csr_matrix(
        (data, indices, np.concatenate(pointers)), shape=(rows, width), copy=False
    )


def widen(matrix: Any, width: int) -> Any:
    """A CSR matrix with *width* columns (extra columns empty); no copy of the data."""
    import scipy.sparse

    if matrix.shape[1] == width:
        return matrix
    return scipy.sparse.csr_matrix(
        (matrix.data, matrix.indices, matrix.indptr), shape=(matrix.shape[0], width), copy=False
    )
