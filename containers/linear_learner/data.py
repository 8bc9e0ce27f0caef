"""Linear Learner's channels -> checked mini-batches, streamed.

Linear Learner reads two formats, through the shared readers of :mod:`sagedock.containers.data`
(the ones XGBoost uses): ``text/csv`` (label first, no header; ``label_size=1`` allowed) and
``application/x-recordio-protobuf`` (Float32 features, dense or sparse ``keys``/``shape``; the
label a scalar). Everything else - the bare ``csv`` shorthand too - is refused the way
SageMaker refuses it (``No iterator has been registered for ContentType ('csv', '1.0')``).

A channel is read again for every epoch (File mode: its files; Pipe mode: the FIFO of that
epoch), and the readers' blocks are cut into mini-batches of a fixed size as they stream past,
so memory holds a block and a mini-batch, never the channel. Each block is checked on the way:
a label on every row and one the predictor type allows, finite features, the feature count
the model was built for; a refusal names the channel and the row.

Absent entries of a sparse record are zeros (a linear model has no "missing"), as SageMaker's
Linear Learner reads them; a NaN or infinity anywhere is refused rather than trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeAlias

import numpy as np

from sagedock.containers.data import read_files, read_stream
from sagedock.containers.data.batch import Batch
from sagedock.containers.data.content_types import (
    CSV,
    RECORDIO_PROTOBUF,
    DataFormat,
    split_content_type,
)
from sagedock.toolkit.errors import UserError

PredictorType: TypeAlias = Literal["binary_classifier", "multiclass_classifier", "regressor"]

#: The content type SageMaker's Linear Learner assumes for a channel that names none.
DEFAULT_CONTENT_TYPE = "application/x-recordio-protobuf"
#: What the algorithm's channels accept (the image's SupportedContentTypes).
ACCEPTED_CONTENT_TYPES: tuple[str, ...] = ("text/csv", "application/x-recordio-protobuf")

_FORMAT_OF: dict[str, DataFormat] = {
    "text/csv": CSV,
    "application/x-recordio-protobuf": RECORDIO_PROTOBUF,
}


def data_format(content_type: str | None) -> DataFormat:
    """The format a channel's ``ContentType`` names, or SageMaker's refusal as a UserError."""
    if content_type is None or not content_type.strip():
        content_type = DEFAULT_CONTENT_TYPE
    media, params = split_content_type(content_type)
    fmt = _FORMAT_OF.get(media)
    if fmt is None:
        # SageMaker answers with the (type, version) pair its iterator registry is keyed by.
        raise UserError(
            f"No iterator has been registered for ContentType ({media!r}, '1.0'); "
            f"Linear Learner reads {' or '.join(ACCEPTED_CONTENT_TYPES)}"
        )
    if fmt == CSV and params.get("label_size", "1") != "1":
        raise UserError(
            f"{content_type} is not an accepted ContentType: "
            "Linear Learner reads one label column (label_size=1)"
        )
    return fmt


@dataclass(frozen=True)
class ChannelSource:
    """Where one channel's rows come from, once per epoch.

    :param name: the channel (``train``, ``validation``, ``test``), for messages.
    :param fmt: its format (:func:`data_format`).
    :param files: File mode: the data files, read in this order every epoch.
    :param open_epoch: Pipe mode: opens the stream of an epoch (``Channel.open_epoch``).
    """

    name: str
    fmt: DataFormat
    files: Sequence[Path] = ()
    open_epoch: Callable[[int], BinaryIO] | None = None

    def batches(self, epoch: int) -> Iterator[Batch]:
        """The reader's blocks of *epoch*, as they are read."""
        if self.open_epoch is None:
            yield from read_files(self.fmt, self.files)
            return
        with self.open_epoch(epoch) as stream:
            yield from read_stream(self.fmt, stream, name=f"{self.name}_{epoch}")


@dataclass(frozen=True)
class MiniBatch:
    """Rows ready for the model: ``features`` float32 (dense, or CSR with zeros absent) and
    ``label`` float32, one per row."""

    features: Any
    label: np.ndarray

    @property
    def num_rows(self) -> int:
        return int(self.label.shape[0])


@dataclass(frozen=True)
class LabelRule:
    """Which labels a predictor type trains on."""

    predictor_type: PredictorType
    num_classes: int | None = None

    def check(self, label: np.ndarray, where: Callable[[int], str]) -> None:
        bad = ~np.isfinite(label)
        if bad.any():
            raise UserError(f"{where(int(np.argmax(bad)))}: the label is not a finite number")
        if self.predictor_type == "regressor":
            return
        if self.predictor_type == "binary_classifier":
            bad = (label != 0) & (label != 1)
            allowed = "0 or 1 for binary_classifier"
        else:
            top = (self.num_classes or 0) - 1
            bad = (label < 0) | (label > top) | (label != np.floor(label))
            allowed = f"an integer from 0 to {top} for multiclass_classifier"
        if bad.any():
            row = int(np.argmax(bad))
            raise UserError(f"{where(row)}: label {float(label[row])!r} is not {allowed}")


class MiniBatcher:
    """Cuts a channel's stream of reader blocks into checked mini-batches of *size* rows (the
    last one of an epoch may be shorter).

    :param feature_dim: the feature count every row must have; ``None`` takes the first
        block's and holds every later one to it (:attr:`feature_dim` says what was found).
    """

    def __init__(
        self, channel: str, size: int, rule: LabelRule, feature_dim: int | None = None
    ) -> None:
        if size < 1:
            raise ValueError("a mini-batch holds at least one row")
        self.channel = channel
        self.size = size
        self.rule = rule
        self.feature_dim = feature_dim

    def __call__(self, batches: Iterable[Batch]) -> Iterator[MiniBatch]:
        pending: list[MiniBatch] = []
        held = 0
        offset = 0
        for batch in batches:
            block = self._checked(batch, offset)
            offset += block.num_rows
            start = 0
            while start < block.num_rows:
                take = min(self.size - held, block.num_rows - start)
                pending.append(_rows(block, start, start + take))
                held += take
                start += take
                if held == self.size:
                    yield join_batches(pending)
                    pending, held = [], 0
        if pending:
            yield join_batches(pending)

    def _checked(self, batch: Batch, offset: int) -> MiniBatch:
        def where(row: int) -> str:
            return f"channel {self.channel!r}, row {offset + row + 1}"

        if batch.label is None:
            raise UserError(
                f"{where(0)}: no label (Linear Learner trains on labelled rows: the first CSV "
                "column, or the record's label)"
            )
        width = batch.num_cols
        if self.feature_dim is None:
            self.feature_dim = width
        elif width != self.feature_dim:
            raise UserError(
                f"{where(0)}: {width} features, but feature_dim is {self.feature_dim} "
                "(set feature_dim to the data's feature count, or to auto)"
            )
        features: Any = batch.features
        values = features.data if batch.is_sparse else features
        if not np.isfinite(values).all():
            if batch.is_sparse:
                row = int(
                    np.searchsorted(features.indptr, np.argmax(~np.isfinite(values)), "right")
                )
                row -= 1
            else:
                row = int(np.argmax(~np.isfinite(features).all(axis=1)))
            raise UserError(
                f"{where(row)}: a feature is missing or not a finite number "
                "(Linear Learner needs a number in every column)"
            )
        label = np.asarray(batch.label, dtype=np.float32)
        self.rule.check(label, where)
        if not batch.is_sparse:
            features = np.asarray(features, dtype=np.float32)
        return MiniBatch(features, label)


def _rows(block: MiniBatch, start: int, stop: int) -> MiniBatch:
    if start == 0 and stop == block.num_rows:
        return block
    return MiniBatch(block.features[start:stop], block.label[start:stop])


def join_batches(pieces: list[MiniBatch]) -> MiniBatch:
    if len(pieces) == 1:
        return pieces[0]
    label = np.concatenate([p.label for p in pieces])
    if any(not isinstance(p.features, np.ndarray) for p in pieces):
        import scipy.sparse

        features: Any = scipy.sparse.vstack(
            [scipy.sparse.csr_matrix(p.features) for p in pieces], format="csr"
        )
    else:
        features = np.concatenate([p.features for p in pieces], axis=0)
    return MiniBatch(features, label)


def first_rows(batches: Iterable[MiniBatch], count: int) -> MiniBatch | None:
    """The first *count* rows of a stream of mini-batches, as one (``None`` when it is empty).

    What the feature scaler and the threshold calibration sample: the platform's data is
    expected shuffled (SageMaker asks for it), so the head of the stream is a fair sample,
    and reading stops once it has enough.
    """
    taken: list[MiniBatch] = []
    held = 0
    for batch in batches:
        take = min(count - held, batch.num_rows)
        taken.append(_rows(batch, 0, take))
        held += take
        if held >= count:
            break
    return join_batches(taken) if taken else None


def to_dense(features: Any) -> np.ndarray:
    """Mini-batch features as a dense float32 matrix (absent sparse entries are zeros)."""
    if isinstance(features, np.ndarray):
        return features
    return np.asarray(features.toarray(), dtype=np.float32)
