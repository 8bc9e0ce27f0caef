"""Channels -> XGBoost matrices.

A channel is read once into :class:`~sagedock.containers.data.batch.Batch` blocks (float32,
dense or CSR) by the format readers, then:

- for the ``hist`` tree method (XGBoost 3's default) the blocks are spilled to a scratch file
  as they are read and fed back one at a time through an ``xgboost.DataIter`` into a
  ``QuantileDMatrix``: XGBoost keeps only its quantised index (1-2 bytes per value), and
  memory never holds the float32 data as a whole (``xgboost.train`` would otherwise build the
  same index from a ``DMatrix`` in its first round, on top of the ``DMatrix``'s 8 bytes per
  value);
- for everything else (``exact``, ``approx``, ``gblinear``, explicit updaters) an in-memory
  ``DMatrix`` of all blocks.

The validation matrix of a ``QuantileDMatrix`` shares the training matrix's bins (``ref``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from sagedock.containers.data import read_files, read_stream
from sagedock.containers.data.batch import (
    Batch,
    concat,
    csr_to_dense,
    dense_to_csr,
    split_rows,
    widen,
)
from sagedock.containers.data.content_types import DataFormat
from sagedock.containers.data.files import list_data_files
from sagedock.containers.data.spill import BatchInfo, SpilledBatches
from sagedock.toolkit.errors import UserError

if TYPE_CHECKING:
    import xgboost

logger = logging.getLogger(__name__)

NO_LABELS_MESSAGE = (
    "Got input data without labels. Please check the input data set. If training job is "
    "running on multiple instances, please switch to using single instance if number of "
    "records in the data set is less than number of workers (16 * number of instance) in the "
    "cluster."
)


@dataclass(frozen=True)
class ChannelData:
    """The rows of one channel on this host, as read (in memory, or spilled to local disk)."""

    name: str
    batches: Sequence[Batch]

    @property
    def infos(self) -> list[BatchInfo]:
        return batch_infos(self.batches)

    @property
    def num_rows(self) -> int:
        return sum(i.num_rows for i in self.infos)

    @property
    def num_cols(self) -> int:
        return max((i.num_cols for i in self.infos), default=0)

    def labels(self) -> np.ndarray:
        return np.concatenate([b.label for b in self.batches if b.label is not None])

    def close(self) -> None:
        """Remove spilled batches from disk (nothing to do for batches in memory)."""
        if isinstance(self.batches, SpilledBatches):
            self.batches.close()


def batch_infos(batches: Sequence[Batch]) -> list[BatchInfo]:
    """What the matrix builder needs to know about each batch, without reading spilled ones."""
    if isinstance(batches, SpilledBatches):
        return [batches.info(i) for i in range(len(batches))]
    return [BatchInfo.of(b) for b in batches]


def _collect(name: str, batches: Iterable[Batch], spill_dir: Path | None) -> ChannelData | None:
    kept: Sequence[Batch]
    rows = (b for b in batches if b.num_rows)
    if spill_dir is not None:
        spill_dir.mkdir(parents=True, exist_ok=True)
        # Spilled batches come back one at a time: keep each small, whatever the reader made
        # (a parquet row group can be the whole file).
        pieces = (piece for b in rows for piece in split_rows(b, SPILL_BATCH_BYTES))
        kept = SpilledBatches.write(pieces, spill_dir)
    else:
        kept = tuple(rows)
    _release_arrow_memory()
    if not kept:
        if isinstance(kept, SpilledBatches):
            kept.close()
        return None
    return ChannelData(name, kept)


#: Largest batch written to (and read back from) the scratch file.
SPILL_BATCH_BYTES = 32 << 20
#: A sparse channel at least this dense is handed to XGBoost as dense arrays (NaN = missing):
#: smaller than CSR (4 bytes per cell instead of 8 per entry) and much faster to sketch.
DENSE_ENOUGH = 0.5


def _release_arrow_memory() -> None:
    # pyarrow's allocator keeps freed blocks for reuse; the parsing is over, give them back
    # before XGBoost builds its matrix.
    import sys

    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()


def load_files(
    name: str,
    path: Path,
    fmt: DataFormat,
    *,
    csv_weights: bool = False,
    spill_dir: Path | None = None,
) -> ChannelData | None:
    """Read a File-mode channel directory (``None`` when it holds no rows); with *spill_dir*
    the batches go to a scratch file there instead of staying in memory."""
    files = list_data_files(path)
    if not files:
        return None
    logger.info("channel %s: %d file(s), %s", name, len(files), fmt)
    return _collect(name, read_files(fmt, files, csv_weights=csv_weights), spill_dir)


def load_stream(
    name: str,
    stream: BinaryIO,
    fmt: DataFormat,
    *,
    csv_weights: bool = False,
    spill_dir: Path | None = None,
    scratch_dir: Path | None = None,
) -> ChannelData | None:
    """Read a Pipe-mode stream to its end (``None`` when it holds no rows); *scratch_dir* is
    where a parquet stream's files are copied to be read (see ``read_stream``)."""
    batches = read_stream(fmt, stream, name=name, csv_weights=csv_weights, scratch_dir=scratch_dir)
    return _collect(name, batches, spill_dir)


def check_labels(data: ChannelData) -> None:
    """Training needs a label on every row."""
    if not all(info.has_label for info in data.infos):
        raise UserError(f"{NO_LABELS_MESSAGE} (channel {data.name!r} has rows without a label)")


def wants_quantile(params: Mapping[str, Any]) -> bool:
    """Whether training with *params* can use a ``QuantileDMatrix`` (the ``hist`` method)."""
    if params.get("booster") == "gblinear" or "updater" in params:
        return False
    if params.get("process_type") == "update":
        return False
    return params.get("tree_method", "auto") in ("auto", "hist")


@dataclass(frozen=True)
class _Layout:
    """One width, one kind (dense or CSR), weights on all batches or none: what XGBoost's
    data iterator needs from every batch."""

    num_cols: int
    sparse: bool
    weighted: bool

    @classmethod
    def of(cls, infos: Sequence[BatchInfo], num_cols: int) -> _Layout:
        cells = sum(i.num_rows for i in infos) * num_cols
        density = sum(i.nnz for i in infos) / cells if cells else 1.0
        sparse = density < DENSE_ENOUGH and any(i.is_sparse for i in infos)
        return cls(num_cols, sparse, any(i.has_weight for i in infos))

    def apply(self, b: Batch) -> Batch:
        features: Any = b.features
        if self.sparse:
            features = widen(features if b.is_sparse else dense_to_csr(features), self.num_cols)
        elif b.is_sparse:
            features = csr_to_dense(features, self.num_cols)
        elif b.num_cols < self.num_cols:
            padding = np.full((b.num_rows, self.num_cols - b.num_cols), np.nan, np.float32)
            features = np.hstack([features, padding])
        weight = b.weight
        if self.weighted and weight is None:
            weight = np.ones(b.num_rows, dtype=np.float32)
        return Batch(features=features, label=b.label, weight=weight, qid=b.qid)


def uniform_batches(batches: Sequence[Batch], num_cols: int) -> list[Batch]:
    """*batches* (all read into memory) in one layout: see :class:`_Layout`."""
    layout = _Layout.of(batch_infos(batches), num_cols)
    return [layout.apply(b) for b in batches]


#: Dense blocks of at least this many rows on average reach XGBoost as DataFrames (see
#: :func:`build_matrix`); below it, XGBoost's per-column cost outweighs what frames save.
FRAME_MIN_ROWS = 1024


def build_matrix(
    batches: Sequence[Batch],
    *,
    num_cols: int,
    quantile: bool,
    ref: xgboost.DMatrix | None = None,
    max_bin: int | None = None,
    nthread: int | None = None,
) -> xgboost.DMatrix:
    """A ``QuantileDMatrix`` (*quantile*) or an in-memory ``DMatrix`` of *batches*.

    The ``QuantileDMatrix`` is fed batch by batch through an ``xgboost.DataIter`` (a spilled
    sequence is read back one batch at a time, for each of XGBoost's passes); the ``DMatrix``
    is built from all batches joined (XGBoost's ``DMatrix`` of a data iterator would be an
    external-memory matrix, which ``exact`` and ``gblinear`` cannot train on).
    """
    import xgboost

    kwargs: dict[str, Any] = {"missing": np.nan}
    if nthread is not None:
        kwargs["nthread"] = nthread
    if not quantile:
        joined = concat(uniform_batches(batches, num_cols))
        return xgboost.DMatrix(
            joined.features, label=joined.label, weight=joined.weight, qid=joined.qid, **kwargs
        )
    infos = batch_infos(batches)
    layout = _Layout.of(infos, num_cols)
    # Dense blocks go to XGBoost as DataFrame views (no copy): XGBoost reads a DataFrame
    # column by column, which makes the QuantileDMatrix about 20% faster to build (fewer CPU
    # seconds in its sketch and index passes) than from the same 2-D array. But it spends
    # ~60 us of Python per column of every block it is given, so blocks of few rows go as
    # arrays: two rows of 500,000 columns took 100 s of CPU as frames, 1 s as arrays.
    rows = sum(info.num_rows for info in infos)
    few_rows = rows < FRAME_MIN_ROWS * max(len(infos), 1)
    frame = None if layout.sparse or few_rows else _frame_maker()

    class _Blocks(xgboost.DataIter):
        def __init__(self) -> None:
            super().__init__(release_data=True)
            self._next = 0

        def next(self, input_data: Any) -> bool:
            if self._next == len(batches):
                return False
            block = layout.apply(batches[self._next])
            self._next += 1
            features = block.features if frame is None else frame(block.features, copy=False)
            input_data(data=features, label=block.label, weight=block.weight, qid=block.qid)
            return True

        def reset(self) -> None:
            self._next = 0

    if max_bin is not None:
        kwargs["max_bin"] = max_bin
    matrix = xgboost.QuantileDMatrix(_Blocks(), ref=ref, **kwargs)
    if frame is not None:
        # The frames named the columns "0", "1", ...; a model trained on them would carry those
        # names and refuse unnamed data at prediction. The matrix is the same without them.
        matrix.feature_names = None
        matrix.feature_types = None
    return matrix


def _frame_maker() -> Any:
    """``pandas.DataFrame`` when pandas is installed (XGBoost installs it alongside), else
    ``None``."""
    try:
        import pandas
    except ImportError:  # pragma: no cover - pandas comes with the xgboost extra
        return None
    return pandas.DataFrame


def take_rows(batch: Batch, rows: np.ndarray) -> Batch:
    """The *rows* of a (concatenated) batch, for cross-validation folds."""

    def pick(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[rows]

    return Batch(
        features=batch.features[rows],
        label=pick(batch.label),
        weight=pick(batch.weight),
        qid=pick(batch.qid),
    )
