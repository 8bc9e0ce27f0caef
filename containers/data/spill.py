"""Batches parked on local disk, read back one at a time.

A consumer that needs several passes over the data (XGBoost's ``QuantileDMatrix`` reads its
input four or five times) would otherwise keep every batch in memory for as long as it builds.
:class:`SpilledBatches` writes each batch's arrays to one scratch file as they arrive and hands
them back on demand, so memory holds one batch at a time; re-reading comes from the page cache
while there is memory to spare, and from disk when there is not. The file is raw arrays
(``tofile``), no pickling; it is removed by :meth:`SpilledBatches.close`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, overload

import numpy as np

from .batch import Batch


@dataclass(frozen=True)
class _Array:
    offset: int
    dtype: str
    shape: tuple[int, ...]
    fortran: bool

    @property
    def count(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class BatchInfo:
    """What is known about a spilled batch without reading it."""

    num_rows: int
    num_cols: int
    is_sparse: bool
    has_label: bool
    has_weight: bool
    has_qid: bool
    nnz: int = 0
    """Stored values (every cell of a dense batch)."""

    @classmethod
    def of(cls, batch: Batch) -> BatchInfo:
        features: Any = batch.features
        nnz = int(features.nnz) if batch.is_sparse else batch.num_rows * batch.num_cols
        return cls(
            batch.num_rows,
            batch.num_cols,
            batch.is_sparse,
            batch.label is not None,
            batch.weight is not None,
            batch.qid is not None,
            nnz,
        )


@dataclass(frozen=True)
class _Entry:
    info: BatchInfo
    arrays: dict[str, _Array]


def _write(handle: BinaryIO, array: np.ndarray) -> _Array:
    offset = handle.tell()
    fortran = array.ndim == 2 and not array.flags.c_contiguous and array.flags.f_contiguous
    data = array.T if fortran else np.ascontiguousarray(array)
    data.tofile(handle)
    return _Array(offset, array.dtype.str, tuple(array.shape), fortran)


class SpilledBatches(Sequence[Batch]):
    """A sequence of batches stored in a scratch file (see the module docstring)."""

    def __init__(self, directory: Path | None = None) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="sagedock-batches-", dir=directory))
        self._path = self._dir / "batches.bin"
        self._handle: BinaryIO | None = self._path.open("wb")
        self._entries: list[_Entry] = []

    @classmethod
    def write(cls, batches: Iterable[Batch], directory: Path | None = None) -> SpilledBatches:
        """Spill every batch of *batches* (consumed one at a time)."""
        spilled = cls(directory)
        try:
            for batch in batches:
                spilled.append(batch)
        except BaseException:
            spilled.close()
            raise
        spilled.finish()
        return spilled

    def append(self, batch: Batch) -> None:
        assert self._handle is not None, "SpilledBatches is finished"
        arrays: dict[str, _Array] = {}
        features: Any = batch.features
        if batch.is_sparse:
            arrays["data"] = _write(self._handle, np.asarray(features.data))
            arrays["indices"] = _write(self._handle, np.asarray(features.indices))
            arrays["indptr"] = _write(self._handle, np.asarray(features.indptr))
        else:
            arrays["features"] = _write(self._handle, features)
        for name in ("label", "weight", "qid"):
            value = getattr(batch, name)
            if value is not None:
                arrays[name] = _write(self._handle, value)
        self._entries.append(_Entry(BatchInfo.of(batch), arrays))

    def finish(self) -> None:
        """No more batches: flush the file for reading."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def close(self) -> None:
        """Remove the scratch file."""
        self.finish()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> SpilledBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def info(self, index: int) -> BatchInfo:
        return self._entries[index].info

    def __len__(self) -> int:
        return len(self._entries)

    def _read(self, spec: _Array) -> np.ndarray:
        if spec.count == 0:
            return np.empty(spec.shape, dtype=np.dtype(spec.dtype))
        # A read-only mapping of the file: no copy, and the pages leave this process's memory
        # as soon as the consumer drops the array.
        flat: np.ndarray = np.memmap(
            self._path,
            dtype=np.dtype(spec.dtype),
            mode="r",
            offset=spec.offset,
            shape=(spec.count,),
        )
        if spec.fortran:
            return flat.reshape(spec.shape[::-1]).T
        return flat.reshape(spec.shape)

    @overload
    def __getitem__(self, index: int) -> Batch: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Batch]: ...

    def __getitem__(self, index: int | slice) -> Batch | Sequence[Batch]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        entry = self._entries[index]
        arrays = entry.arrays
        if entry.info.is_sparse:
            import scipy.sparse

            features: Any = scipy.sparse.csr_matrix(
                (
                    self._read(arrays["data"]),
                    self._read(arrays["indices"]),
                    self._read(arrays["indptr"]),
                ),
                shape=(entry.info.num_rows, entry.info.num_cols),
            )
        else:
            features = self._read(arrays["features"])

        def optional(name: str) -> np.ndarray | None:
            return self._read(arrays[name]) if name in arrays else None

        return Batch(features, optional("label"), optional("weight"), optional("qid"))

    def __iter__(self) -> Iterator[Batch]:
        for i in range(len(self)):
            yield self[i]
