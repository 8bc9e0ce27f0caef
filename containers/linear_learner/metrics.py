"""Linear Learner's metrics: the values, the log lines SageMaker's algorithm prints, and the
regexes (MetricDefinitions) that read them back.

Log lines, as the algorithm prints them (the regexes below match these and nothing else):

- ``#quality_metric: host=algo-1, epoch=3, train <objective> <loss>=0.59`` per epoch (train
  and validation), and without ``epoch=`` for the final model;
- ``#quality_metric: host=algo-1, validation binary_classification_accuracy <score>=0.99`` for
  the final model's scores; losses are ``<loss>``, the rest ``<score>``;
- ``#metrics {...}`` (a JSON object with a ``model`` dimension per model), ``#progress_metric:
  host=algo-1, completed 6 % of epochs``, ``#throughput_metric: host=algo-1, train
  throughput=22743.7 records/second``.

The objective's name follows the loss (``binary_classification_cross_entropy_objective`` for
``logistic``, ``square_loss_objective`` for ``squared_loss``, ...): the regexes take any
``\\S+_objective``. ``dcg`` is the mean discounted gain of the true class in each row's
ranking of class scores (``1 / log2(1 + rank)``), our reading of a metric SageMaker does not
define further.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from sagedock.containers.metric_definitions import MetricDefinition

#: The objective line's name for each loss.
OBJECTIVE_OF_LOSS: Mapping[str, str] = {
    "logistic": "binary_classification_cross_entropy_objective",
    "hinge_loss": "binary_classification_hinge_loss_objective",
    "softmax_loss": "multiclass_cross_entropy_objective",
    "squared_loss": "square_loss_objective",
    "absolute_loss": "absolute_loss_objective",
    "eps_insensitive_squared_loss": "eps_insensitive_squared_loss_objective",
    "eps_insensitive_absolute_loss": "eps_insensitive_absolute_loss_objective",
    "quantile_loss": "quantile_loss_objective",
    "huber_loss": "huber_loss_objective",
}

#: Metrics logged as ``<loss>`` (smaller is better); every other one is a ``<score>``.
LOSS_METRICS = frozenset({"mse", "absolute_loss", "rmse", "multiclass_log_loss"})
TOP_K = 3


def objective_name(loss: str) -> str:
    return OBJECTIVE_OF_LOSS.get(loss, f"{loss}_objective")


def fbeta_name(beta: float) -> str:
    return f"binary_f_{beta:.3f}"


def quality_line(
    host: str, dataset: str, name: str, value: float, *, epoch: int | None = None
) -> str:
    """One ``#quality_metric`` line; *epoch* ``None`` for the final model's."""
    kind = "<loss>" if name.endswith("_objective") or name in LOSS_METRICS else "<score>"
    at = "" if epoch is None else f" epoch={epoch},"
    return f"#quality_metric: host={host},{at} {dataset} {name} {kind}={float(value)!r}"


def metrics_json(
    name: str, value: float, *, host: str, epoch: int, model: int, operation: str = "training"
) -> str:
    """A ``#metrics`` line with SageMaker's dimensions (``model`` tells the models apart)."""
    now = time.time()
    document = {
        "StartTime": now,
        "EndTime": now,
        "Dimensions": {
            "Algorithm": "Linear Learner",
            "Host": host,
            "Operation": operation,
            "epoch": epoch,
            "model": model,
        },
        "Metrics": {name: {"sum": value, "count": 1, "min": value, "max": value}},
    }
    return "#metrics " + json.dumps(document)


def progress_line(host: str, epochs_done: int, epochs: int) -> str:
    percent = 100 * epochs_done // max(epochs, 1)
    return f"#progress_metric: host={host}, completed {percent} % of epochs"


def throughput_line(host: str, records_per_second: float) -> str:
    rate = float(records_per_second)
    return f"#throughput_metric: host={host}, train throughput={rate!r} records/second"


# -- values --------------------------------------------------------------------------------------
def _safe_ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def roc_auc(label: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum statistic (ties count half)."""
    positives = label == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return 0.0
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = score[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_scores(
    label: np.ndarray, score: np.ndarray, predicted: np.ndarray, beta: float = 1.0
) -> dict[str, float]:
    """The binary classifier's final scores, named as the log names them."""
    tp = float(((predicted == 1) & (label == 1)).sum())
    fp = float(((predicted == 1) & (label == 0)).sum())
    fn = float(((predicted == 0) & (label == 1)).sum())
    precision = _safe_ratio(tp, tp + fp)
    recall = _safe_ratio(tp, tp + fn)
    b2 = beta * beta
    fbeta = _safe_ratio((1 + b2) * precision * recall, b2 * precision + recall)
    return {
        "binary_classification_accuracy": float((predicted == label).mean()),
        fbeta_name(beta): fbeta,
        "precision": precision,
        "recall": recall,
        "roc_auc_score": roc_auc(label, score),
    }


def multiclass_scores(
    label: np.ndarray, probabilities: np.ndarray, beta: float = 1.0
) -> dict[str, float]:
    """The multiclass classifier's final scores (*probabilities*: rows x classes)."""
    classes = probabilities.shape[1]
    y = label.astype(np.int64)
    predicted = probabilities.argmax(axis=1)
    recalls, precisions, fscores = [], [], []
    b2 = beta * beta
    for k in range(classes):
        tp = float(((predicted == k) & (y == k)).sum())
        p = _safe_ratio(tp, float((predicted == k).sum()))
        r = _safe_ratio(tp, float((y == k).sum()))
        precisions.append(p)
        recalls.append(r)
        fscores.append(_safe_ratio((1 + b2) * p * r, b2 * p + r))
    present = [k for k in range(classes) if (y == k).any()]
    true_score = probabilities[np.arange(len(y)), y]
    rank = 1 + (probabilities > true_score[:, None]).sum(axis=1)  # 1 = ranked first
    top_k = min(TOP_K, classes)
    clipped = np.clip(true_score, 1e-15, 1.0)
    return {
        "multiclass_accuracy": float((predicted == y).mean()),
        f"multiclass_top_k_accuracy_{TOP_K}": float((rank <= top_k).mean()),
        "dcg": float((1.0 / np.log2(1.0 + rank)).mean()),
        "macro_recall": float(np.mean(recalls)),
        "macro_precision": float(np.mean(precisions)),
        f"macro_f_{beta:.3f}": float(np.mean(fscores)),
        "multiclass_balanced_accuracy": float(np.mean([recalls[k] for k in present])),
        "multiclass_log_loss": float(-np.log(clipped).mean()),
    }


def regression_scores(label: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """The regressor's final scores."""
    error = prediction.astype(np.float64) - label
    mse = float((error**2).mean())
    spread = float(((label - label.mean()) ** 2).sum())
    return {
        "mse": mse,
        "absolute_loss": float(np.abs(error).mean()),
        "rmse": float(np.sqrt(mse)),
        "r2": 1.0 - float((error**2).sum()) / spread if spread else 0.0,
    }


# -- MetricDefinitions ---------------------------------------------------------------------------
_QUALITY = r"#quality_metric: host=\S+, "

_FINAL: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # (metric, log name pattern, kind, datasets)
    (
        "binary_classification_accuracy",
        "binary_classification_accuracy",
        "score",
        ("train", "validation", "test"),
    ),
    ("binary_f_beta", r"binary_f_\S+", "score", ("train", "validation", "test")),
    ("precision", "precision", "score", ("train", "validation", "test")),
    ("recall", "recall", "score", ("train", "validation", "test")),
    ("roc_auc_score", "roc_auc_score", "score", ("validation", "test")),
    ("mse", "mse", "loss", ("train", "validation", "test")),
    ("absolute_loss", "absolute_loss", "loss", ("train", "validation", "test")),
    ("rmse", "rmse", "loss", ("validation", "test")),
    ("multiclass_accuracy", "multiclass_accuracy", "score", ("validation", "test")),
    (
        "multiclass_top_k_accuracy",
        r"multiclass_top_k_accuracy_\S+",
        "score",
        ("validation", "test"),
    ),
    ("dcg", "dcg", "score", ("validation", "test")),
    ("macro_recall", "macro_recall", "score", ("validation", "test")),
    ("macro_precision", "macro_precision", "score", ("validation", "test")),
    ("macro_f_beta", r"macro_f_\S+", "score", ("validation", "test")),
)
_MINIMIZED = frozenset({"mse", "absolute_loss", "rmse", "objective_loss"})


def metric_definitions() -> list[MetricDefinition]:
    """Every metric the algorithm publishes, with the regex that reads it from the log."""
    found: list[MetricDefinition] = []
    for dataset in ("train", "validation"):
        per_epoch = rf"{_QUALITY}epoch=\S+, {dataset} \S+_objective <loss>=(\S+)"
        final = rf"{_QUALITY}{dataset} \S+_objective <loss>=(\S+)"
        found.append(MetricDefinition(f"{dataset}:objective_loss", per_epoch, "Minimize"))
        found.append(MetricDefinition(f"{dataset}:objective_loss:final", final, "Minimize"))
    found.append(
        MetricDefinition(
            "test:objective_loss", rf"{_QUALITY}test \S+_objective <loss>=(\S+)", "Minimize"
        )
    )
    for metric, pattern, kind, datasets in _FINAL:
        direction = "Minimize" if metric in _MINIMIZED else "Maximize"
        for dataset in datasets:
            regex = rf"{_QUALITY}{dataset} {pattern} <{kind}>=(\S+)"
            found.append(MetricDefinition(f"{dataset}:{metric}", regex, direction))
    found.append(
        MetricDefinition(
            "train:progress", r"#progress_metric: host=\S+, completed (\S+) %", "Maximize"
        )
    )
    found.append(
        MetricDefinition(
            "train:throughput",
            r"#throughput_metric: host=\S+, train throughput=(\S+) records/second",
            "Maximize",
        )
    )
    return found


def final_score_lines(host: str, dataset: str, scores: Mapping[str, Any]) -> list[str]:
    """The final model's ``#quality_metric`` lines for *dataset*, in the order given."""
    return [quality_line(host, dataset, name, float(value)) for name, value in scores.items()]
