"""Linear Learner's metric values against scikit-learn, and its log lines against the
MetricDefinitions regexes of a real SageMaker tuning job (sagedock.containers.linear_learner
.metrics)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sklearn import metrics as sk

from sagedock.containers.linear_learner import metrics as ll

RNG = np.random.default_rng(8)

#: The MetricDefinitions of a real linear-learner tuning job (reference algorithms.md §4.5).
SAGEMAKER_REGEXES = {
    "train:objective_loss": r"#quality_metric: host=\S+, epoch=\S+, train \S+_objective <loss>=(\S+)",  # noqa: E501 (verbatim)
    "train:objective_loss:final": r"#quality_metric: host=\S+, train \S+_objective <loss>=(\S+)",
    "validation:objective_loss": r"#quality_metric: host=\S+, epoch=\S+, validation \S+_objective <loss>=(\S+)",  # noqa: E501 (verbatim)
    "validation:objective_loss:final": r"#quality_metric: host=\S+, validation \S+_objective <loss>=(\S+)",  # noqa: E501 (verbatim)
    "validation:binary_classification_accuracy": r"#quality_metric: host=\S+, validation binary_classification_accuracy <score>=(\S+)",  # noqa: E501 (verbatim)
    "test:binary_f_beta": r"#quality_metric: host=\S+, test binary_f_\S+ <score>=(\S+)",
    "validation:precision": r"#quality_metric: host=\S+, validation precision <score>=(\S+)",
    "test:mse": r"#quality_metric: host=\S+, test mse <loss>=(\S+)",
    "validation:absolute_loss": r"#quality_metric: host=\S+, validation absolute_loss <loss>=(\S+)",
    "test:multiclass_accuracy": r"#quality_metric: host=\S+, test multiclass_accuracy <score>=(\S+)",  # noqa: E501 (verbatim)
    "validation:macro_f_beta": r"#quality_metric: host=\S+, validation macro_f_\S+ <score>=(\S+)",
    "test:multiclass_top_k_accuracy": r"#quality_metric: host=\S+, test multiclass_top_k_accuracy_\S+ <score>=(\S+)",  # noqa: E501 (verbatim)
    "train:progress": r"#progress_metric: host=\S+, completed (\S+) %",
    "train:throughput": r"#throughput_metric: host=\S+, train throughput=(\S+) records/second",
}


def test_our_metric_definitions_are_sagemakers_regexes() -> None:
    ours = {d.name: d for d in ll.metric_definitions()}
    for name, regex in SAGEMAKER_REGEXES.items():
        assert ours[name].regex == regex, name
    assert ours["validation:mse"].direction == "Minimize"
    assert ours["validation:binary_classification_accuracy"].direction == "Maximize"
    assert len(ours) == len(ll.metric_definitions())  # no name twice


def _value(name: str, line: str) -> float | None:
    found = re.search(SAGEMAKER_REGEXES[name], line)
    return float(found.group(1)) if found else None


def test_each_log_line_is_read_by_its_regex_and_only_by_it() -> None:
    objective = ll.objective_name("logistic")
    per_epoch = ll.quality_line("algo-1", "train", objective, 0.5956824, epoch=0)
    final = ll.quality_line("algo-1", "train", objective, 0.25)
    assert per_epoch == (
        "#quality_metric: host=algo-1, epoch=0, train "
        "binary_classification_cross_entropy_objective <loss>=0.5956824"
    )
    assert _value("train:objective_loss", per_epoch) == pytest.approx(0.5956824)
    assert _value("train:objective_loss:final", per_epoch) is None
    assert _value("train:objective_loss:final", final) == 0.25
    assert _value("train:objective_loss", final) is None
    lines = ll.final_score_lines(
        "algo-1",
        "test",
        {"binary_classification_accuracy": np.float64(0.9), ll.fbeta_name(1.0): 0.8, "mse": 2.5},
    )
    assert lines[1] == "#quality_metric: host=algo-1, test binary_f_1.000 <score>=0.8"
    assert _value("test:binary_f_beta", lines[1]) == 0.8
    assert _value("test:mse", lines[2]) == 2.5
    assert "np.float64" not in lines[0]
    assert _value("train:progress", ll.progress_line("algo-1", 1, 16)) == 6
    rate = ll.throughput_line("algo-1", 22743.7031111)
    assert _value("train:throughput", rate) == pytest.approx(22743.7031111)


def test_the_metrics_json_line_has_a_model_dimension() -> None:
    line = ll.metrics_json("train_objective", 0.5, host="algo-1", epoch=2, model=7)
    assert line.startswith("#metrics {")
    document = json.loads(line.removeprefix("#metrics "))
    assert document["Dimensions"]["model"] == 7 and document["Dimensions"]["epoch"] == 2
    assert document["Metrics"]["train_objective"] == {
        "sum": 0.5,
        "count": 1,
        "min": 0.5,
        "max": 0.5,
    }


def test_binary_scores_equal_scikit_learns() -> None:
    label = RNG.integers(0, 2, 300).astype(np.float64)
    score = np.clip(label * 0.3 + RNG.random(300) * 0.7, 0, 1).round(2)  # ties on purpose
    predicted = (score >= 0.5).astype(np.float64)
    ours = ll.binary_scores(label, score, predicted, beta=2.0)
    assert ours["binary_classification_accuracy"] == pytest.approx(
        sk.accuracy_score(label, predicted)
    )
    assert ours["precision"] == pytest.approx(sk.precision_score(label, predicted))
    assert ours["recall"] == pytest.approx(sk.recall_score(label, predicted))
    assert ours["binary_f_2.000"] == pytest.approx(sk.fbeta_score(label, predicted, beta=2.0))
    assert ours["roc_auc_score"] == pytest.approx(sk.roc_auc_score(label, score))


def test_multiclass_scores_equal_scikit_learns() -> None:
    classes = 5
    label = RNG.integers(0, classes, 400)
    logits = RNG.standard_normal((400, classes)) + 2.0 * np.eye(classes)[label]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    predicted = probabilities.argmax(axis=1)
    ours = ll.multiclass_scores(label.astype(np.float64), probabilities)
    assert ours["multiclass_accuracy"] == pytest.approx(sk.accuracy_score(label, predicted))
    assert ours["macro_recall"] == pytest.approx(sk.recall_score(label, predicted, average="macro"))
    assert ours["macro_precision"] == pytest.approx(
        sk.precision_score(label, predicted, average="macro")
    )
    assert ours["macro_f_1.000"] == pytest.approx(sk.f1_score(label, predicted, average="macro"))
    assert ours["multiclass_balanced_accuracy"] == pytest.approx(
        sk.balanced_accuracy_score(label, predicted)
    )
    assert ours["multiclass_top_k_accuracy_3"] == pytest.approx(
        sk.top_k_accuracy_score(label, probabilities, k=3)
    )
    assert ours["multiclass_log_loss"] == pytest.approx(sk.log_loss(label, probabilities))
    gains = np.zeros((400, classes))
    gains[np.arange(400), label] = 1
    assert ours["dcg"] == pytest.approx(sk.dcg_score(gains, probabilities, ignore_ties=True))


def test_regression_scores_equal_scikit_learns() -> None:
    label = RNG.standard_normal(200) * 3 + 1
    prediction = label + RNG.standard_normal(200)
    ours = ll.regression_scores(label, prediction)
    assert ours["mse"] == pytest.approx(sk.mean_squared_error(label, prediction))
    assert ours["absolute_loss"] == pytest.approx(sk.mean_absolute_error(label, prediction))
    assert ours["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(label, prediction)))
    assert ours["r2"] == pytest.approx(sk.r2_score(label, prediction))
