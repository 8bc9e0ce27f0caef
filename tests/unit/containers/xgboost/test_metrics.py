from __future__ import annotations

import re

import numpy as np
import pytest

from sagedock.containers.xgboost import metrics


def test_regexes_match_log_lines_after_tab_becomes_011() -> None:
    line = "[3]\ttrain-rmse:1.23456\tvalidation-rmse:2.34567\tvalidation-r2:0.50000"
    cloudwatch = line.replace("\t", "#011")
    by_name = {d.name: d for d in metrics.metric_definitions()}
    rmse = re.match(by_name["validation:rmse"].regex, cloudwatch)
    r2 = re.match(by_name["validation:r2"].regex, cloudwatch)
    assert rmse is not None and r2 is not None
    # (\S+) runs on over "#011..." for all but the last metric, as on SageMaker; the value leads.
    assert rmse.group(1).startswith("2.34567")
    assert r2.group(1) == "0.50000"
    assert by_name["validation:auc"].direction == "Maximize"
    assert by_name["validation:rmse"].direction == "Minimize"


@pytest.mark.parametrize(
    ("objective", "preds", "classes"),
    [
        ("binary:logistic", [0.2, 0.5, 0.51], [0, 0, 1]),
        ("binary:logitraw", [-0.1, 0.0, 0.2], [0, 0, 1]),
        ("binary:hinge", [0.0, 1.0, 1.0], [0, 1, 1]),
        ("multi:softmax", [2.0, 0.0, 1.0], [2, 0, 1]),
    ],
)
def test_class_labels_follow_17_semantics(
    objective: str, preds: list[float], classes: list[int]
) -> None:
    assert metrics.class_labels(np.array(preds), objective).tolist() == classes


def test_softprob_takes_the_argmax() -> None:
    preds = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    assert metrics.class_labels(preds, "multi:softprob").tolist() == [1, 0]


def test_classification_metrics_agree_with_their_definitions() -> None:
    y_true = np.array([0, 1, 1, 0, 1, 2])
    y_pred = np.array([0, 1, 0, 0, 2, 2])
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    # per-class recall: 0 -> 2/2, 1 -> 1/3, 2 -> 1/1
    assert metrics.balanced_accuracy(y_true, y_pred) == pytest.approx((1 + 1 / 3 + 1) / 3)
    # per-class F1: 0 -> 2*2/(3+2)=0.8, 1 -> 2*1/(1+3)=0.5, 2 -> 2*1/(2+1)=2/3
    f1_macro = metrics.CONTAINER_METRICS["f1"].function
    assert f1_macro(y_true, y_pred) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert metrics.CONTAINER_METRICS["precision_micro"].function(y_true, y_pred) == pytest.approx(
        4 / 6
    )
    with pytest.raises(metrics.MetricInputError, match="Target is multiclass but average='binary'"):
        metrics.CONTAINER_METRICS["f1_binary"].function(y_true, y_pred)


def test_binary_precision_recall_and_f1() -> None:
    y_true = np.array([1, 1, 0, 0, 1])
    y_pred = np.array([1, 0, 1, 0, 1])
    assert metrics.CONTAINER_METRICS["precision"].function(y_true, y_pred) == pytest.approx(2 / 3)
    assert metrics.CONTAINER_METRICS["recall"].function(y_true, y_pred) == pytest.approx(2 / 3)
    assert metrics.CONTAINER_METRICS["f1_binary"].function(y_true, y_pred) == pytest.approx(2 / 3)


def test_regression_metrics() -> None:
    y = np.array([1.0, 2.0, 3.0])
    assert metrics.mse(y, np.array([1.0, 2.0, 4.0])) == pytest.approx(1 / 3)
    assert metrics.r2(y, y) == 1.0
    assert metrics.r2(y, np.array([2.0, 2.0, 2.0])) == pytest.approx(0.0)


def test_evaluate_splits_names_and_computes_in_order() -> None:
    native, ours = metrics.split_metrics(["rmse", "accuracy", "auc", "r2"])
    assert (native, ours) == (["rmse", "auc"], ["accuracy", "r2"])
    out = metrics.evaluate(ours, np.array([0.9, 0.1]), np.array([1.0, 0.0]), "binary:logistic")
    assert [name for name, _ in out] == ["accuracy", "r2"]
    assert out[0][1] == 1.0
