"""Linear Learner's model selection and threshold calibration
(sagedock.containers.linear_learner.selection) against a brute-force search: every distinct
score of the sample tried as the threshold (a row is positive when its score is >= it), and
"no row positive", scored with plain numpy (and scikit-learn on a fixed sample)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from sagedock.containers.linear_learner.selection import (
    best_index,
    calibrate,
    default_threshold,
)

#: An infeasible threshold (the target recall / precision not reached) scores this.
INFEASIBLE = -1.0

#: (criterion as given, keyword arguments of calibrate)
CRITERIA: list[tuple[str, dict[str, float]]] = [
    ("accuracy", {}),
    ("f_beta", {"beta": 1.0}),
    ("f_beta", {"beta": 2.0}),
    ("f_beta", {"beta": 0.5}),
    ("f1", {}),
    ("precision_at_target_recall", {"target_recall": 0.8}),
    ("precision_at_target_recall", {"target_recall": 0.5}),
    ("recall_at_target_precision", {"target_precision": 0.8}),
    ("recall_at_target_precision", {"target_precision": 0.6}),
]


def metric(
    predicted: np.ndarray, label: np.ndarray, criterion: str, options: dict[str, float]
) -> float:
    """The criterion of one set of 0/1 predictions, from the confusion counts."""
    tp = float(np.sum(predicted & (label == 1)))
    fp = float(np.sum(predicted & (label == 0)))
    fn = float(np.sum(~predicted & (label == 1)))
    tn = float(np.sum(~predicted & (label == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    if criterion == "accuracy":
        return (tp + tn) / len(label)
    if criterion in ("f_beta", "f1"):
        b2 = options.get("beta", 1.0) ** 2
        denominator = (1 + b2) * tp + b2 * fn + fp
        return (1 + b2) * tp / denominator if denominator else 0.0
    if criterion == "precision_at_target_recall":
        return precision if tp + fn and recall >= options["target_recall"] else INFEASIBLE
    assert criterion == "recall_at_target_precision"
    return recall if tp + fp and precision >= options["target_precision"] else INFEASIBLE


def brute_force(
    scores: np.ndarray, label: np.ndarray, criterion: str, options: dict[str, float]
) -> float:
    """The best value of the criterion over every threshold of one model's scores."""
    candidates = [*np.unique(scores), math.inf]
    return max(metric(scores >= t, label, criterion, options) for t in candidates)


def check_calibration(
    scores: np.ndarray,
    label: np.ndarray,
    criterion: str,
    options: dict[str, float],
    measure: Callable[[np.ndarray, np.ndarray, str, dict[str, float]], float] = metric,
) -> None:
    result = calibrate(torch.from_numpy(scores), torch.from_numpy(label), criterion, **options)
    assert result.threshold.shape == result.value.shape == (scores.shape[0],)
    for model, row in enumerate(scores):
        best = brute_force(row, label, criterion, options)
        threshold = float(result.threshold[model])
        assert float(result.value[model]) == pytest.approx(best, abs=1e-6), (model, row)
        # the threshold chosen gives that value, and is one of the candidates
        achieved = measure(row >= np.float32(threshold), label, criterion, options)
        assert achieved == pytest.approx(best, abs=1e-6), (model, threshold)
        assert threshold in row or threshold > row.max()


@st.composite
def samples(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """(models, rows) float32 scores on a coarse grid (many ties), and 0/1 labels."""
    models = draw(st.integers(1, 4))
    rows = draw(st.integers(1, 25))
    grid = draw(st.sampled_from([0.25, 0.1, 1 / 64]))
    values = draw(st.lists(st.integers(-8, 8), min_size=models * rows, max_size=models * rows))
    scores = (np.array(values, dtype=np.float32) * np.float32(grid)).reshape(models, rows)
    label = np.array(draw(st.lists(st.integers(0, 1), min_size=rows, max_size=rows)))
    return scores, label.astype(np.float32)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sample=samples(), case=st.sampled_from(CRITERIA))
def test_calibration_is_the_brute_force_optimum(
    sample: tuple[np.ndarray, np.ndarray], case: tuple[str, dict[str, float]]
) -> None:
    scores, label = sample
    criterion, options = case
    check_calibration(scores, label, criterion, options)


@pytest.mark.parametrize(("criterion", "options"), CRITERIA)
def test_calibration_on_probabilities_with_ties(criterion: str, options: dict[str, float]) -> None:
    rng = np.random.default_rng(0)
    label = (rng.random(200) < 0.3).astype(np.float32)
    noisy = np.clip(label * 0.3 + rng.random((6, 200)) * 0.7, 0, 1)
    scores = (np.round(noisy * 40) / 40).astype(np.float32)  # 41 distinct values: ties
    check_calibration(scores, label, criterion, options)


def sklearn_metric(
    predicted: np.ndarray, label: np.ndarray, criterion: str, options: dict[str, float]
) -> float:
    """The same criterion from scikit-learn's metrics."""
    y = label.astype(int)
    p = predicted.astype(int)
    if criterion == "accuracy":
        return float(sk.accuracy_score(y, p))
    if criterion in ("f_beta", "f1"):
        return float(sk.fbeta_score(y, p, beta=options.get("beta", 1.0), zero_division=0))
    precision = float(sk.precision_score(y, p, zero_division=0))
    recall = float(sk.recall_score(y, p, zero_division=0))
    if criterion == "precision_at_target_recall":
        return precision if recall >= options["target_recall"] else INFEASIBLE
    return recall if p.any() and precision >= options["target_precision"] else INFEASIBLE


@pytest.mark.parametrize(("criterion", "options"), CRITERIA)
def test_calibration_against_scikit_learn(criterion: str, options: dict[str, float]) -> None:
    rng = np.random.default_rng(1)
    label = (rng.random(30) < 0.4).astype(np.float32)
    scores = (rng.integers(-8, 8, (2, 30)) * 0.5 + label * 2).astype(np.float32)  # margins
    for row in scores:
        for t in [*np.unique(row), math.inf]:
            ours = metric(row >= t, label, criterion, options)
            assert ours == pytest.approx(sklearn_metric(row >= t, label, criterion, options))
    check_calibration(scores, label, criterion, options, measure=sklearn_metric)


def test_accuracy_may_predict_no_row_positive() -> None:
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6]])
    label = torch.tensor([0.0, 0.0, 0.0, 1.0])
    result = calibrate(scores, label, "accuracy")
    assert float(result.value[0]) == pytest.approx(0.75)
    assert float(result.threshold[0]) > 0.9


def test_recall_at_target_precision_unreachable_is_minus_one() -> None:
    scores = torch.tensor([[0.9, 0.8, 0.1]])
    label = torch.tensor([0.0, 0.0, 1.0])
    result = calibrate(scores, label, "recall_at_target_precision", target_precision=0.9)
    assert float(result.value[0]) == INFEASIBLE


def test_calibration_of_a_perfect_ranking() -> None:
    scores = torch.tensor([[0.1, 0.4, 0.35, 0.8], [0.8, 0.35, 0.4, 0.1]])
    label = torch.tensor([0.0, 1.0, 0.0, 1.0])
    for criterion in ("accuracy", "f1", "f_beta"):
        result = calibrate(scores, label, criterion)
        assert float(result.value[0]) == 1.0
        assert float(result.threshold[0]) == pytest.approx(0.4)
    assert best_index(calibrate(scores, label, "accuracy").value, larger_is_better=True) == 0


def test_loss_function_is_not_calibrated() -> None:
    scores, label = torch.zeros(1, 2), torch.tensor([0.0, 1.0])
    for criterion in ("loss_function", "cross_entropy_loss"):
        with pytest.raises(ValueError, match="no calibration"):
            calibrate(scores, label, criterion)
    assert default_threshold("logistic") == 0.5
    assert default_threshold("hinge_loss") == 0.0


# -- best_index ----------------------------------------------------------------------------------


def reference_best(values: list[float], larger_is_better: bool) -> int:
    best = -1
    for i, v in enumerate(values):
        if math.isnan(v):
            continue
        if best < 0 or (v > values[best] if larger_is_better else v < values[best]):
            best = i
    return best


def test_best_index_nan_never_wins_and_first_among_equals() -> None:
    nan = math.nan
    assert best_index(torch.tensor([nan, 0.2, 0.9, nan]), larger_is_better=True) == 2
    assert best_index(torch.tensor([nan, 0.2, 0.9, nan]), larger_is_better=False) == 1
    assert best_index(torch.tensor([0.5, 0.9, 0.9, 0.1, 0.9]), larger_is_better=True) == 1
    assert best_index(torch.tensor([0.5, 0.1, 0.9, 0.1]), larger_is_better=False) == 1
    assert best_index(torch.tensor([nan, nan, 3.0]), larger_is_better=True) == 2
    assert best_index(torch.tensor([nan, nan, 3.0]), larger_is_better=False) == 2
    assert best_index(torch.tensor([math.inf, 2.0]), larger_is_better=False) == 1


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(
        st.one_of(st.sampled_from([0.0, 0.5, 1.0, math.nan]), st.floats(-1, 1)),
        min_size=1,
        max_size=12,
    ).filter(lambda v: not all(math.isnan(x) for x in v)),
    larger_is_better=st.booleans(),
)
def test_best_index_is_the_first_best_finite_value(
    values: list[float], larger_is_better: bool
) -> None:
    tensor = torch.tensor(values, dtype=torch.float64)
    assert best_index(tensor, larger_is_better=larger_is_better) == reference_best(
        values, larger_is_better
    )
