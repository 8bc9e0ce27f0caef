"""``sagedock train --algorithm linear-learner``: the real entry point on /opt/ml trees.

Accuracy is measured against scikit-learn on datasets that ship with it (fixed split), and the
served predictions (the artifact loaded by the serving hooks) must give the logged test
metrics. The log is checked with the image's own metric definitions, as ``local train`` and
a tuning job read it. One job per check, small data, few epochs.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn import datasets
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from sagedock.containers.linear_learner.metrics import metric_definitions
from sagedock.containers.linear_learner.model import ARTIFACT_NAME
from tests.fixtures.xgboost import make_dataset, write_csv, write_recordio_protobuf

from .support import (
    epoch_metrics,
    final_metrics,
    linear_learner_job,
    load_scorer,
    metric_models,
    split,
)

pytest.importorskip("torch")


def _job(tmp_path: Path, hps: dict[str, object], channels: dict[str, tuple[np.ndarray, ...]]):
    job = linear_learner_job(tmp_path / "job", hps)
    for name, (x, y) in channels.items():
        write_csv(job.add_channel(name, "text/csv") / f"{name}.csv", x, y)
    return job


def _ok(job):
    result = job.run(timeout=240)
    assert result.returncode == 0, (job.failure, result.stderr[-4000:])
    return result.stderr + result.stdout


# -- accuracy against scikit-learn ---------------------------------------------------------------


def _standardised(train_x: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    scaler = StandardScaler().fit(train_x)
    return [scaler.transform(a) for a in (train_x, *others)]


@pytest.mark.parametrize(
    ("loader", "hps", "tolerance"),
    [
        (datasets.load_breast_cancer, {"predictor_type": "binary_classifier"}, 0.02),
        (
            datasets.load_digits,
            {"predictor_type": "multiclass_classifier", "num_classes": 10},
            0.03,
        ),
    ],
    ids=["breast-cancer", "digits"],
)
def test_classifiers_are_as_accurate_as_logistic_regression(
    tmp_path: Path, loader, hps, tolerance: float
) -> None:
    x, y = loader(return_X_y=True)
    (xt, yt), (xv, yv), (xs, ys) = split(x, y)
    job = _job(
        tmp_path,
        {**hps, "epochs": 10, "mini_batch_size": 100, "num_models": 8},
        {"train": (xt, yt), "validation": (xv, yv), "test": (xs, ys)},
    )
    log = _ok(job)
    st, ss = _standardised(xt, xs)
    reference = LogisticRegression(max_iter=3000).fit(st, yt).score(ss, ys)
    metrics = final_metrics(log, "test")
    name = (
        "binary_classification_accuracy"
        if hps["predictor_type"] == "binary_classifier"
        else "multiclass_accuracy"
    )
    assert metrics[name] >= reference - tolerance, (metrics[name], reference)
    # what the endpoint would answer gives the logged test accuracy
    scorer = load_scorer(job)
    predicted = scorer.labels(scorer.scores(xs))
    assert predicted is not None
    assert float((predicted == ys).mean()) == pytest.approx(metrics[name], abs=1e-9)


def test_the_regressor_is_as_good_as_ridge(tmp_path: Path) -> None:
    x, y = datasets.load_diabetes(return_X_y=True)
    (xt, yt), (xv, yv), (xs, ys) = split(x, y)
    job = _job(
        tmp_path,
        {"predictor_type": "regressor", "epochs": 15, "mini_batch_size": 100, "num_models": 8},
        {"train": (xt, yt), "validation": (xv, yv), "test": (xs, ys)},
    )
    log = _ok(job)
    st, ss = _standardised(xt, xs)
    reference = float(((Ridge().fit(st, yt).predict(ss) - ys) ** 2).mean())
    metrics = final_metrics(log, "test")
    assert metrics["mse"] <= 1.10 * reference, (metrics["mse"], reference)
    scorer = load_scorer(job)
    served = scorer.scores(xs)[:, 0]
    assert float(((served - ys) ** 2).mean()) == pytest.approx(metrics["mse"], rel=1e-4)


# -- what the log says -------------------------------------------------------------------------


def test_the_log_has_every_line_the_metric_definitions_read(tmp_path: Path) -> None:
    data = make_dataset("binary", rows=400, cols=4)
    train, validation = data.split()
    job = _job(
        tmp_path,
        {
            "predictor_type": "binary_classifier",
            "epochs": 3,
            "mini_batch_size": 50,
            "num_models": 4,
            "early_stopping_patience": 10,
        },
        {"train": (train.x, train.y), "validation": (validation.x, validation.y)},
    )
    log = _ok(job)
    found = {d.name for d in metric_definitions() if re.search(d.regex, log)}
    expected = {
        "train:objective_loss",
        "validation:objective_loss",
        "validation:objective_loss:final",
        "validation:binary_classification_accuracy",
        "validation:binary_f_beta",
        "validation:precision",
        "validation:recall",
        "validation:roc_auc_score",
        "train:progress",
        "train:throughput",
    }
    assert expected <= found, expected - found
    assert len(epoch_metrics(log, "train")) == 3
    assert len(epoch_metrics(log, "validation")) == 3
    # one #metrics line per model and epoch, with the model as a dimension
    assert metric_models(log) == {0, 1, 2, 3}
    best = re.search(r"Best model found for hyperparameters: (\{.*\})", log)
    assert best is not None
    assert set(json.loads(best[1])) >= {"optimizer", "learning_rate", "l1", "wd"}
    assert "Test data is not provided." in log
    assert "#progress_metric: host=algo-1, completed 100 % of epochs" in log
    # the artifact: model_algo-1, a zip
    assert zipfile.is_zipfile(job.model_dir / ARTIFACT_NAME)


def test_under_tuning_one_model_is_trained(tmp_path: Path) -> None:
    data = make_dataset("regression", rows=200, cols=3)
    job = _job(
        tmp_path,
        {
            "predictor_type": "regressor",
            "epochs": 2,
            "mini_batch_size": 50,
            "_tuning_objective_metric": "validation:objective_loss",
        },
        {"train": (data.x, data.y)},
    )
    log = _ok(job)
    assert metric_models(log) == {0}


def test_early_stopping_ends_training_after_patience_epochs(tmp_path: Path) -> None:
    data = make_dataset("regression", rows=300, cols=3)
    train, validation = data.split()
    job = _job(
        tmp_path,
        {
            "predictor_type": "regressor",
            "epochs": 40,
            "mini_batch_size": 25,
            "num_models": 2,
            "early_stopping_patience": 2,
            "early_stopping_tolerance": 0.5,  # only halving the loss counts as progress
        },
        {"train": (train.x, train.y), "validation": (validation.x, validation.y)},
    )
    log = _ok(job)
    epochs = len(epoch_metrics(log, "validation"))
    assert epochs < 40
    assert "Reaching early stopping patience. Patience epochs: 2" in log
    # each epoch after the last improvement counted: exactly `patience` stale epochs at the end
    stale = re.findall(r"Epoch (\d+): Loss has not improved for (\d+) epochs", log)
    assert [int(n) for _, n in stale[-2:]] == [1, 2]


def test_the_threshold_is_calibrated_for_the_selection_criterion(tmp_path: Path) -> None:
    data = make_dataset("binary", rows=600, cols=4, seed=3)
    train, validation = data.split()
    job = _job(
        tmp_path,
        {
            "predictor_type": "binary_classifier",
            "epochs": 3,
            "mini_batch_size": 50,
            "num_models": 2,
            "binary_classifier_model_selection_criteria": "precision_at_target_recall",
            "target_recall": 0.99,
        },
        {"train": (train.x, train.y), "validation": (validation.x, validation.y)},
    )
    log = _ok(job)
    scorer = load_scorer(job)
    threshold = scorer.model.threshold
    assert threshold != pytest.approx(0.5, abs=1e-3)
    scores = scorer.scores(validation.x)[:, 0]
    predicted = scorer.labels(scorer.scores(validation.x))
    assert predicted is not None
    np.testing.assert_array_equal(predicted, (scores >= threshold).astype(np.float32))
    # the calibrated cut reaches the target recall on the rows it was calibrated on
    recall = final_metrics(log, "validation")["recall"]
    assert recall >= 0.99


# -- data ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_recordio_protobuf_trains(tmp_path: Path, sparse: bool) -> None:
    data = make_dataset("binary", rows=300, cols=6)
    job = linear_learner_job(
        tmp_path / "job",
        {"predictor_type": "binary_classifier", "epochs": 3, "mini_batch_size": 50},
    )
    channel = job.add_channel("train", "application/x-recordio-protobuf")
    write_recordio_protobuf(channel / "part-0", data.x, data.y, sparse=sparse)
    log = _ok(job)
    assert final_metrics(log, "train")["binary_classification_accuracy"] > 0.85
    assert load_scorer(job).feature_dim == 6


def test_pipe_mode_reads_a_fifo_per_pass(tmp_path: Path) -> None:
    """Pipe mode as the platform feeds it: ``train_0``, ``train_1``, ... one per pass."""
    import threading

    from sagedock.toolkit.local.pipes import PipeFeeder, PipeItem

    data = make_dataset("regression", rows=200, cols=3)
    source = write_csv(tmp_path / "rows.csv", data.x, data.y)
    job = linear_learner_job(
        tmp_path / "job", {"predictor_type": "regressor", "epochs": 2, "mini_batch_size": 40}
    )
    job.add_channel("train", "text/csv", mode="Pipe")
    directory = job.base / "input" / "data"
    directory.mkdir(parents=True, exist_ok=True)
    feeder = PipeFeeder(directory, "train", lambda epoch: [PipeItem(path=source)])
    feeder.start()
    try:
        log = _ok(job)
    finally:
        feeder.stop()
        threading.Thread(target=feeder.join, daemon=True).start()
    # the scaler sample, two epochs and the selection sample: four passes
    assert feeder.epochs_fed >= 3
    assert final_metrics(log, "train")["mse"] < 0.5 * float(np.var(data.y))


@pytest.mark.parametrize(
    ("hps", "channels", "message"),
    [
        ({}, {"train": "text/csv"}, "No value(s) were specified for 'predictor_type'"),
        (
            {"predictor_type": "binary_classifier"},
            {"train": "csv"},
            "No iterator has been registered for ContentType ('csv', '1.0')",
        ),
        (
            {"predictor_type": "binary_classifier"},
            {"train": "text/csv", "extra": "text/csv"},
            "Extraneous channel found: extra",
        ),
        (
            {"predictor_type": "binary_classifier", "feature_dim": 7},
            {"train": "text/csv"},
            "4 features, but feature_dim is 7",
        ),
        (
            {"predictor_type": "binary_classifier"},
            {"validation": "text/csv"},
            "Missing required channel: train",
        ),
    ],
    ids=["no-predictor-type", "csv-shorthand", "unknown-channel", "feature-dim", "no-train"],
)
def test_client_mistakes_fail_the_job_with_a_client_error(
    tmp_path: Path, hps: dict[str, object], channels: dict[str, str], message: str
) -> None:
    data = make_dataset("binary", rows=50, cols=4)
    job = linear_learner_job(tmp_path / "job", {"epochs": 1, **hps})
    for name, content_type in channels.items():
        write_csv(job.add_channel(name, content_type) / "d.csv", data.x, data.y)
    result = job.run(timeout=120)
    assert result.returncode != 0
    failure = job.failure or ""
    assert failure.startswith("ClientError"), failure
    assert message in failure, failure
