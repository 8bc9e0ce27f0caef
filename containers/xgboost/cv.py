"""Cross-validation for ``_kfold`` (Autopilot): folds, averaged metrics, ``predictions.csv``.

Folds follow scikit-learn's ``RepeatedStratifiedKFold`` (classification: every fold holds each
class in proportion) and ``RepeatedKFold`` (otherwise), each repetition shuffled with its own
seed. ``predictions.csv`` has one row per input row (train then validation, in order): the
true label, then the mean predicted probability of the predicted class and the most frequent
predicted class over the repetitions (classification), or the mean prediction (otherwise).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PREDICTIONS_FILE = "predictions.csv"


def folds(
    n_rows: int,
    k: int,
    *,
    repeats: int = 1,
    labels: np.ndarray | None = None,
    seed: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(train_rows, validation_rows)`` for ``k`` folds, ``repeats`` times; stratified by
    *labels* when given."""
    for repeat in range(repeats):
        rng = np.random.default_rng(seed + repeat)
        fold_of = np.empty(n_rows, dtype=np.int64)
        if labels is None:
            order = rng.permutation(n_rows)
            fold_of[order] = np.arange(n_rows) % k
        else:
            offset = 0
            for cls in np.unique(labels):
                members = rng.permutation(np.flatnonzero(labels == cls))
                # Continue the round-robin across classes so folds stay the same size.
                fold_of[members] = (np.arange(len(members)) + offset) % k
                offset += len(members)
        for fold in range(k):
            yield np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)


def format_cv_metrics(num_round: int, results: Sequence[Mapping[str, Mapping[str, Any]]]) -> str:
    """``[num_round]\\ttrain-<m>:<mean>\\tvalidation-<m>:<mean>...``: the last-round value of
    each metric averaged over the folds, metric by metric."""
    line = f"[{num_round}]"
    first = results[0]
    for metric in first.get("train", {}):
        for data in ("train", "validation"):
            values = [r[data][metric][-1] for r in results if data in r and metric in r[data]]
            if values:
                line += f"\t{data}-{metric}:{float(np.mean(values)):.5f}"
    return line


class PredictionRecorder:
    """Out-of-fold predictions, one column per repetition, written as ``predictions.csv``."""

    def __init__(self, y_true: np.ndarray, repeats: int, classification: bool) -> None:
        self.y_true = np.asarray(y_true, dtype=np.float64)
        self.classification = classification
        self.pred = np.zeros((len(y_true), repeats))
        self.prob = np.zeros((len(y_true), repeats)) if classification else None
        self.count = np.zeros(len(y_true), dtype=np.int64)

    def record(self, rows: np.ndarray, predictions: np.ndarray) -> None:
        column = self.count[rows]
        if self.classification:
            if predictions.ndim > 1:
                classes = np.argmax(predictions, axis=1)
                prob = predictions[np.arange(len(classes)), classes]
            else:
                classes = (predictions > 0.5).astype(np.int64)
                prob = predictions
            self.pred[rows, column] = classes
            assert self.prob is not None
            self.prob[rows, column] = prob
        else:
            self.pred[rows, column] = predictions
        self.count[rows] += 1

    def table(self) -> np.ndarray:
        columns = [self.y_true]
        if self.classification:
            assert self.prob is not None
            columns.append(self.prob.mean(axis=1))
            columns.append(_mode(self.pred))
        else:
            columns.append(self.pred.mean(axis=1))
        return np.column_stack(columns)

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / PREDICTIONS_FILE
        np.savetxt(path, self.table(), delimiter=",", fmt="%f")
        return path


def _mode(values: np.ndarray) -> np.ndarray:
    """The most frequent value of each row (the smallest on ties, as ``scipy.stats.mode``)."""
    out = np.empty(values.shape[0])
    for i, row in enumerate(values):
        uniq, counts = np.unique(row, return_counts=True)
        out[i] = uniq[np.argmax(counts)]
    return out
