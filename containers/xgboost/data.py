"""Channels -> XGBoost matrices.

A channel is read once into :class:`~sagedock.containers.data.batch.Batch` blocks (float32,
dense or CSR) by the format readers, then handed to XGBoost through an ``xgboost.DataIter``:

- for the ``hist`` tree method (XGBoost 3's default) a ``QuantileDMatrix`` is built: XGBoost
  keeps only its quantised index (about one byte per value), and the blocks are freed once it
  exists; ``xgboost.train`` would otherwise build that same index from a ``DMatrix`` inside
  its first round, on top of the ``DMatrix``'s own 8 bytes per value;
- for everything else (``exact``, ``approx``, ``gblinear``, explicit updaters) a ``DMatrix``.

The validation matrix of a ``QuantileDMatrix`` shares the training matrix's bins (``ref``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from sagedock.containers.data import read_files, read_stream
from sagedock.containers.data.batch import Batch, dense_to_csr, widen
from sagedock.containers.data.content_types import DataFormat
from sagedock.containers.data.files import list_data_files
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
    """The rows of one channel on this host, as read."""

    name: str
    batches: tuple[Batch, ...]

    @property
    def num_rows(self) -> int:
        return sum(b.num_rows for b in self.batches)

    @property
    def num_cols(self) -> int:
        return max((b.num_cols for b in self.batches), default=0)

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.batches)

    def labels(self) -> np.ndarray:
        return np.concatenate([b.label for b in self.batches if b.label is not None])


def _collect(name: str, batches: Any) -> ChannelData | None:
    kept = tuple(b for b in batches if b.num_rows)
    if not kept:
        return None
    return ChannelData(name, kept)


def load_files(
    name: str, path: Path, fmt: DataFormat, *, csv_weights: bool = False
) -> ChannelData | None:
    """Read a File-mode channel directory (``None`` when it holds no rows)."""
    files = list_data_files(path)
    if not files:
        return None
    logger.info("channel %s: %d file(s), %s", name, len(files), fmt)
    return _collect(name, read_files(fmt, files, csv_weights=csv_weights))


def load_stream(
    name: str, stream: BinaryIO, fmt: DataFormat, *, csv_weights: bool = False
) -> ChannelData | None:
    """Read a Pipe-mode stream to its end (``None`` when it holds no rows)."""
    return _collect(name, read_stream(fmt, stream, name=name, csv_weights=csv_weights))


def check_labels(data: ChannelData) -> None:
    """Training needs a label on every row."""
    if any(b.label is None for b in data.batches):
        raise UserError(f"{NO_LABELS_MESSAGE} (channel {data.name!r} has rows without a label)")


def wants_quantile(params: Mapping[str, Any]) -> bool:
    """Whether training with *params* can use a ``QuantileDMatrix`` (the ``hist`` method)."""
    if params.get("booster") == "gblinear" or "updater" in params:
        return False
    if params.get("process_type") == "update":
        return False
    return params.get("tree_method", "auto") in ("auto", "hist")


def uniform_batches(batches: Sequence[Batch], num_cols: int) -> list[Batch]:
    """Batches XGBoost accepts in one iterator: one width, one kind (dense or CSR), weights on
    all or none."""
    sparse = any(b.is_sparse for b in batches)
    if not sparse and any(b.num_cols != num_cols for b in batches):
        sparse = True  # dense blocks of different widths: pad them as CSR rows
    weighted = any(b.weight is not None for b in batches)
    out = []
    for b in batches:
        features: Any = b.features
        if sparse:
            features = widen(features if b.is_sparse else dense_to_csr(features), num_cols)
        weight = b.weight
        if weighted and weight is None:
            weight = np.ones(b.num_rows, dtype=np.float32)
        out.append(Batch(features=features, label=b.label, weight=weight, qid=b.qid))
    return out


def build_matrix(
    batches: Sequence[Batch],
    *,
    num_cols: int,
    quantile: bool,
    ref: xgboost.DMatrix | None = None,
    max_bin: int | None = None,
    nthread: int | None = None,
) -> xgboost.DMatrix:
    """A ``QuantileDMatrix`` (*quantile*) or ``DMatrix`` of *batches*, *num_cols* wide."""
    import xgboost

    blocks = uniform_batches(batches, num_cols)

    class _Blocks(xgboost.DataIter):
        def __init__(self) -> None:
            super().__init__(release_data=True)
            self._next = 0

        def next(self, input_data: Any) -> bool:
            if self._next == len(blocks):
                return False
            block = blocks[self._next]
            self._next += 1
            input_data(data=block.features, label=block.label, weight=block.weight, qid=block.qid)
            return True

        def reset(self) -> None:
            self._next = 0

    kwargs: dict[str, Any] = {"missing": np.nan}
    if nthread is not None:
        kwargs["nthread"] = nthread
    if quantile:
        if max_bin is not None:
            kwargs["max_bin"] = max_bin
        return xgboost.QuantileDMatrix(_Blocks(), ref=ref, **kwargs)
    return xgboost.DMatrix(_Blocks(), **kwargs)


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
