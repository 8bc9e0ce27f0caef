"""Evaluation metrics: the names SageMaker's XGBoost knows, their direction, their log regexes,
and the metrics the container computes itself (accuracy, f1, r2, ...).

Every metric ``m`` appears in the training log as ``validation-m:<value>`` and is published as
``validation:m`` with the regex ``.*\\[[0-9]+\\].*#011validation-m:(\\S+)`` (CloudWatch shows TAB
as ``#011``). Container metrics are computed from XGBoost's predictions with the semantics of
SageMaker XGBoost 1.7: a binary class is ``probability > 0.5`` (``margin > 0``), a multiclass
class is the arg-max; averages are scikit-learn's. They are unweighted, as in 1.7.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sagedock.containers.metric_definitions import MetricDefinition

MAXIMIZE_METRICS: tuple[str, ...] = (
    "accuracy",
    "auc",
    "aucpr",
    "balanced_accuracy",
    "f1",
    "f1_binary",
    "f1_macro",
    "map",
    "ndcg",
    "precision",
    "r2",
    "recall",
    "precision_macro",
    "precision_micro",
    "recall_macro",
    "recall_micro",
)

MINIMIZE_METRICS: tuple[str, ...] = (
    "aft-nloglik",
    "cox-nloglik",
    "error",
    "gamma-deviance",
    "gamma-nloglik",
    "interval-regression-accuracy",
    "logloss",
    "mae",
    "mape",
    "merror",
    "mlogloss",
    "mphe",
    "mse",
    "poisson-nloglik",
    "rmse",
    "rmsle",
    "tweedie-nloglik",
)

#: Every metric name ``eval_metric`` accepts without an ``@`` suffix.
METRIC_NAMES: tuple[str, ...] = MAXIMIZE_METRICS + MINIMIZE_METRICS


def metric_definitions() -> list[MetricDefinition]:
    """``validation:<m>`` for every metric, with SageMaker's regex and direction."""
    return [
        MetricDefinition(
            name=f"validation:{m}",
            regex=rf".*\[[0-9]+\].*#011validation-{m}:(\S+)",
            direction="Maximize" if m in MAXIMIZE_METRICS else "Minimize",
        )
        for m in METRIC_NAMES
    ]


#: Names accepted by ``_tuning_objective_metric``.
TUNING_METRIC_NAMES: tuple[str, ...] = tuple(d.name for d in metric_definitions())


def is_maximized(metric: str) -> bool:
    """Whether a larger *metric* is better (``auc``, ``ndcg@5``, ``map@3-``...)."""
    base = metric.split("@", 1)[0]
    return base in MAXIMIZE_METRICS


# -- container-computed metrics --------------------------------------------------------------

# Objectives whose predictions are probabilities (or 0/1 labels): class 1 is ``p > 0.5``.
_PROBABILITY_OBJECTIVES = frozenset({"binary:logistic", "reg:logistic", "binary:hinge"})


def class_labels(preds: np.ndarray, objective: str | None) -> np.ndarray:
    """Predicted classes from XGBoost's (transformed) predictions, 1.7 semantics.

    ``multi:softprob`` (2-D) -> arg-max; ``multi:softmax`` -> the predicted class itself;
    probabilities -> ``p > 0.5``; margins (``binary:logitraw``, regression) -> ``m > 0``.
    """
    if preds.ndim == 2:
        return np.asarray(np.argmax(preds, axis=1))
    if objective == "multi:softmax":
        return preds.astype(np.int64)
    threshold = 0.5 if objective in _PROBABILITY_OBJECTIVES else 0.0
    return (preds > threshold).astype(np.int64)


def _confusion(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    classes, inverse = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    k = len(classes)
    t, p = inverse[: len(y_true)], inverse[len(y_true) :]
    matrix = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    return classes, matrix


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # scikit-learn's zero_division default: 0 where the denominator is 0.
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


class MetricInputError(ValueError):
    """The labels do not fit the metric (``f1_binary`` on multiclass labels...)."""


def _binary_positive(classes: np.ndarray) -> int:
    if len(classes) > 2:
        raise MetricInputError(
            "Target is multiclass but average='binary'. Please choose another average setting, "
            "one of [None, 'micro', 'macro', 'weighted']."
        )
    where = np.flatnonzero(classes == 1)
    if where.size == 0:
        raise MetricInputError(
            f"pos_label=1 is not a valid label. It should be one of {classes.tolist()}"
        )
    return int(where[0])


def _per_class(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, ...]:
    classes, c = _confusion(y_true, y_pred)
    tp = np.diag(c).astype(np.float64)
    predicted = c.sum(axis=0).astype(np.float64)
    actual = c.sum(axis=1).astype(np.float64)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, actual)
    f1 = _ratio(2 * tp, predicted + actual)
    return classes, tp, predicted, actual, precision, recall, f1


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred))


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    _, c = _confusion(y_true, y_pred)
    actual = c.sum(axis=1)
    present = actual > 0
    return float(np.mean(np.diag(c)[present] / actual[present]))


def _averaged(kind: str, average: str) -> Callable[[np.ndarray, np.ndarray], float]:
    def metric(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        classes, tp, predicted, actual, precision, recall, f1 = _per_class(y_true, y_pred)
        per_class = {"precision": precision, "recall": recall, "f1": f1}[kind]
        if average == "binary":
            return float(per_class[_binary_positive(classes)])
        if average == "macro":
            return float(per_class.mean())
        # micro: pooled counts (for single-label data precision = recall = f1 = accuracy)
        total_tp = tp.sum()
        if kind == "precision":
            return float(_ratio(np.array([total_tp]), np.array([predicted.sum()]))[0])
        if kind == "recall":
            return float(_ratio(np.array([total_tp]), np.array([actual.sum()]))[0])
        return float(
            _ratio(np.array([2 * total_tp]), np.array([predicted.sum() + actual.sum()]))[0]
        )

    return metric


def mse(y_true: np.ndarray, preds: np.ndarray) -> float:
    return float(np.mean((y_true - preds) ** 2))


def r2(y_true: np.ndarray, preds: np.ndarray) -> float:
    residual = float(np.sum((y_true - preds) ** 2))
    total = float(np.sum((y_true - np.mean(y_true)) ** 2))
    if total == 0.0:
        return 1.0 if residual == 0.0 else 0.0
    return 1.0 - residual / total


@dataclass(frozen=True)
class ContainerMetric:
    """A metric the container computes: on predicted classes or on the predictions."""

    name: str
    function: Callable[[np.ndarray, np.ndarray], float]
    on_classes: bool


CONTAINER_METRICS: dict[str, ContainerMetric] = {
    m.name: m
    for m in (
        ContainerMetric("accuracy", accuracy, True),
        ContainerMetric("balanced_accuracy", balanced_accuracy, True),
        ContainerMetric("f1", _averaged("f1", "macro"), True),
        ContainerMetric("f1_binary", _averaged("f1", "binary"), True),
        ContainerMetric("f1_macro", _averaged("f1", "macro"), True),
        ContainerMetric("precision", _averaged("precision", "binary"), True),
        ContainerMetric("precision_macro", _averaged("precision", "macro"), True),
        ContainerMetric("precision_micro", _averaged("precision", "micro"), True),
        ContainerMetric("recall", _averaged("recall", "binary"), True),
        ContainerMetric("recall_macro", _averaged("recall", "macro"), True),
        ContainerMetric("recall_micro", _averaged("recall", "micro"), True),
        ContainerMetric("mse", mse, False),
        ContainerMetric("r2", r2, False),
    )
}


def split_metrics(metrics: Sequence[str]) -> tuple[list[str], list[str]]:
    """(metrics XGBoost computes, metrics the container computes), order kept."""
    native = [m for m in metrics if m not in CONTAINER_METRICS]
    ours = [m for m in metrics if m in CONTAINER_METRICS]
    return native, ours


def evaluate(
    names: Sequence[str], preds: np.ndarray, labels: np.ndarray, objective: str | None
) -> list[tuple[str, float]]:
    """``[(name, value)]`` of the container metrics *names* for *preds* against *labels*."""
    results: list[tuple[str, float]] = []
    if preds.size == 0:
        return [(name, 0.0) for name in names]
    classes: np.ndarray | None = None
    for name in names:
        metric = CONTAINER_METRICS[name]
        if metric.on_classes:
            if classes is None:
                classes = class_labels(preds, objective)
            results.append((name, metric.function(labels.astype(np.int64), classes)))
        else:
            results.append((name, metric.function(labels, preds)))
    return results
