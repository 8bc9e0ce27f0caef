"""Built-in XGBoost training, checklist rows X1 and X8-X21 (X2-X7: tests/unit/containers/xgboost).

Most tests call ``train(env)`` in this process on a temporary /opt/ml tree (what
``sagedock train --algorithm xgboost`` does after reading the tree); those marked e2e run the
real ``sagedock train`` as a subprocess.

Deliberate differences from SageMaker's container, tested as such:
- X11: a CSV header row is refused with an error naming file, line and column, instead of being
  read as a row of data (non-numbers would otherwise become missing values and train silently).
- X19: ``early_stopping_rounds`` without a metric still trains all rounds, but logs a warning.
"""

from __future__ import annotations

import json
import logging
import re
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sagedock.containers.xgboost import callbacks as cb
from sagedock.toolkit.errors import UserError
from sagedock.toolkit.signals import stop_signals_raise
from tests.fixtures.signals import signal_inside_ctypes_callback
from tests.fixtures.xgboost import (
    CONTENT_TYPES,
    FORMATS,
    XGBoostJob,
    make_dataset,
    write_csv,
    write_format,
    write_libsvm,
    write_parquet,
    write_recordio_protobuf,
)

from .support import load_model, load_model_bytes, piped, round_lines, train_inprocess

JobFactory = Callable[..., XGBoostJob]

OBJECTIVES = {
    "regression": {"objective": "reg:squarederror"},
    "binary": {"objective": "binary:logistic"},
    "multiclass": {"objective": "multi:softprob", "num_class": 4},
}


def _job_with_data(
    xgboost_job: JobFactory, fmt: str, kind: str = "regression", **hps: object
) -> XGBoostJob:
    job = xgboost_job({"num_round": 5, "max_depth": 3, **OBJECTIVES[kind], **hps})
    train, validation = make_dataset(kind, rows=400).split()  # type: ignore[arg-type]
    write_format(fmt, job.add_channel("train", CONTENT_TYPES[fmt]) / "part-0", train)
    write_format(fmt, job.add_channel("validation", CONTENT_TYPES[fmt]) / "part-0", validation)
    return job


# -- end to end through `sagedock train` -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fmt", "kind"),
    [
        ("csv", "regression"),
        ("csv", "binary"),
        ("csv", "multiclass"),
        ("libsvm", "binary"),
        ("parquet", "multiclass"),
        ("recordio-protobuf", "regression"),
    ],
)
def test_e2e_sagedock_train_writes_a_model_for_each_format_and_task(
    xgboost_job: JobFactory, fmt: str, kind: str
) -> None:
    job = _job_with_data(xgboost_job, fmt, kind)
    result = job.run()
    assert result.returncode == 0, result.stderr
    assert job.failure is None
    assert [p.name for p in job.model_dir.iterdir()] == ["xgboost-model"]
    rounds = round_lines(result.stdout)
    assert [r for r, _ in rounds] == [0, 1, 2, 3, 4]
    first, last = rounds[0][1], rounds[-1][1]
    metric = {"regression": "rmse", "binary": "logloss", "multiclass": "mlogloss"}[kind]
    assert last[f"validation-{metric}"] < first[f"validation-{metric}"]


def test_e2e_the_image_picks_the_algorithm_from_sagedock_algorithm(
    xgboost_job: JobFactory,
) -> None:
    job = _job_with_data(xgboost_job, "csv")
    result = job.run(flag=False, SAGEDOCK_ALGORITHM="xgboost")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (job.model_dir / "xgboost-model").is_file()


def test_e2e_sagemaker_program_runs_the_users_script_instead(
    xgboost_job: JobFactory, tmp_path: Path
) -> None:
    # XGBoost as a framework: the same image, with a script, trains with the script.
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(
        "import os, xgboost\n"
        "open(os.path.join(os.environ['SM_MODEL_DIR'], 'from-script'), 'w').write("
        "xgboost.__version__)\n"
    )
    job = _job_with_data(
        xgboost_job,
        "csv",
        sagemaker_program="train.py",
        sagemaker_submit_directory=str(code),
    )
    result = job.run(flag=False, SAGEDOCK_ALGORITHM="xgboost")
    assert result.returncode == 0, result.stderr[-2000:]
    assert [p.name for p in job.model_dir.iterdir()] == ["from-script"]


def test_x1_e2e_missing_num_round_fails_the_job(xgboost_job: JobFactory) -> None:
    job = _job_with_data(xgboost_job, "csv")
    del job.hyperparameters["num_round"]
    result = job.run()
    assert result.returncode == 1
    assert job.failure is not None
    assert job.failure.strip() == "ClientError: Missing required hyperparameter: num_round"


def test_e2e_a_data_error_from_xgboost_is_a_client_error(xgboost_job: JobFactory) -> None:
    job = xgboost_job({"num_round": 3, "objective": "binary:logistic", "base_score": 0.5})
    data = make_dataset("multiclass", rows=60)  # labels 0..3: not valid for logistic
    write_csv(job.add_channel("train", "text/csv") / "t.csv", data.x, data.y)
    result = job.run()
    assert result.returncode == 1
    assert job.failure is not None
    assert job.failure.startswith("ClientError: label must be in [0,1] for logistic regression")


# -- channels --------------------------------------------------------------------------------


def test_x8_no_content_type_means_libsvm(xgboost_job: JobFactory) -> None:
    job = xgboost_job({"num_round": 2})
    data = make_dataset("regression", rows=50)
    write_libsvm(job.add_channel("train", None) / "t", data.x, data.y)
    train_inprocess(job)
    assert load_model(job.model_dir / "xgboost-model").num_features() == 5


def test_x9_content_type_parameters_are_refused_for_training(xgboost_job: JobFactory) -> None:
    job = _job_with_data(xgboost_job, "csv")
    job.channels["train"]["ContentType"] = "text/csv; label_size=1"
    with pytest.raises(
        UserError, match=r"^Channel configuration for 'train' channel is not supported"
    ):
        train_inprocess(job)


def test_x10_libsvm_in_pipe_mode_is_refused(xgboost_job: JobFactory) -> None:
    job = xgboost_job({"num_round": 2})
    job.add_channel("train", "text/libsvm", mode="Pipe")
    with pytest.raises(
        UserError, match=r"^Channel configuration for 'train' channel is not supported"
    ):
        train_inprocess(job)


def test_unknown_and_missing_channels(xgboost_job: JobFactory) -> None:
    job = _job_with_data(xgboost_job, "csv")
    job.add_channel("test", "text/csv")
    with pytest.raises(UserError, match=r"^Extraneous channel found: test$"):
        train_inprocess(job)
    job = xgboost_job({"num_round": 2})
    job.add_channel("validation", "text/csv")
    with pytest.raises(UserError, match=r"^Missing required channel: train$"):
        train_inprocess(job)


def test_empty_train_and_validation_channels_are_refused(xgboost_job: JobFactory) -> None:
    job = xgboost_job({"num_round": 2})
    job.add_channel("train", "text/csv")
    with pytest.raises(UserError, match=r"^No data in training channel path .*train$"):
        train_inprocess(job)
    job = _job_with_data(xgboost_job, "csv")
    for f in job.channel_dir("validation").iterdir():
        f.unlink()
    with pytest.raises(UserError, match=r"^No data in validation channel path .*validation$"):
        train_inprocess(job)


# -- data ------------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", "\t", ";"])
def test_x11_csv_label_first_any_sniffable_delimiter(
    xgboost_job: JobFactory, delimiter: str, capsys: pytest.CaptureFixture[str]
) -> None:
    job = xgboost_job({"num_round": 3})
    data = make_dataset("regression", rows=80)
    write_csv(job.add_channel("train", "text/csv") / "t.csv", data.x, data.y, delimiter=delimiter)
    train_inprocess(job)
    assert load_model(job.model_dir / "xgboost-model").num_features() == 5


def test_x11_csv_header_row_is_a_named_error(xgboost_job: JobFactory) -> None:
    # Deliberate difference: SageMaker reads the header as data.
    job = xgboost_job({"num_round": 2})
    path = job.add_channel("train", "text/csv") / "t.csv"
    path.write_text("y,a,b\n1,2,3\n0,1,1\n")
    with pytest.raises(UserError, match=r"^t.csv: line 1, column 1: 'y' is not a number"):
        train_inprocess(job)


def test_x12_csv_weights_apply_to_train_and_validation(
    xgboost_job: JobFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_dataset("regression", rows=400)
    train, validation = data.split()
    # Validation rows with weight 0 carry absurd labels: weighted, they do not count.
    val_y = validation.y.copy()
    val_w = np.ones_like(val_y)
    val_y[::2] = 1e4
    val_w[::2] = 0.0
    job = xgboost_job({"num_round": 10, "csv_weights": 1})
    write_csv(
        job.add_channel("train", "text/csv") / "t.csv",
        train.x,
        train.y,
        weights=np.ones_like(train.y),
    )
    write_csv(
        job.add_channel("validation", "text/csv") / "v.csv", validation.x, val_y, weights=val_w
    )
    train_inprocess(job)
    rounds = round_lines(capsys.readouterr().out)
    assert rounds[-1][1]["validation-rmse"] < 10  # unweighted it would be about 7000
    assert load_model(job.model_dir / "xgboost-model").num_features() == 5  # weight is no feature


def test_x13_libsvm_weights_and_indices_as_written(
    xgboost_job: JobFactory, shared_testdata: Path
) -> None:
    job = xgboost_job({"num_round": 3})
    for channel in ("train", "validation"):
        src = shared_testdata / "xgboost" / "abalone" / "data" / channel
        target = job.add_channel(channel, "text/libsvm")
        for f in src.iterdir():
            (target / f.name).write_bytes(f.read_bytes())
    train_inprocess(job)
    # 1-based indices 1..8 read as-is: 9 columns, as SageMaker reads Abalone.
    assert load_model(job.model_dir / "xgboost-model").num_features() == 9

    weighted = xgboost_job({"num_round": 2})
    path = shared_testdata / "xgboost" / "data" / "libsvm" / "train.libsvm.weights"
    (weighted.add_channel("train", "libsvm") / "w").write_bytes(path.read_bytes())
    train_inprocess(weighted)
    assert (weighted.model_dir / "xgboost-model").exists()


def test_x13_libsvm_weights_change_the_model(xgboost_job: JobFactory) -> None:
    # Every other row has an absurd label and weight 0: weighted, the model is XGBoost's for
    # those weights (and ignores the absurd rows); without the weights it follows them.
    import xgboost

    data = make_dataset("regression", rows=300)
    absurd = np.arange(len(data.y)) % 2 == 0
    y = np.where(absurd, 1e4, data.y).astype(np.float32)
    w = np.where(absurd, 0.0, 1.0).astype(np.float32)
    models = {}
    for name, weights in (("weighted", w), ("unweighted", None)):
        job = xgboost_job({"num_round": 10, "max_depth": 3}, name=name)
        write_libsvm(job.add_channel("train", "text/libsvm") / "t", data.x, y, weights=weights)
        train_inprocess(job)
        models[name] = load_model(job.model_dir / "xgboost-model")
    probe = xgboost.DMatrix(data.x[~absurd])
    reference = xgboost.train(
        {"max_depth": 3}, xgboost.DMatrix(data.x, label=y, weight=w), num_boost_round=10
    )
    weighted = models["weighted"].predict(probe)
    np.testing.assert_allclose(weighted, reference.predict(probe), rtol=1e-5)
    assert float(np.sqrt(np.mean((weighted - data.y[~absurd]) ** 2))) < 1
    assert float(np.mean(models["unweighted"].predict(probe))) > 1000


def test_x14_parquet_label_first(xgboost_job: JobFactory, shared_testdata: Path) -> None:
    job = xgboost_job({"num_round": 2})
    src = shared_testdata / "xgboost" / "data" / "parquet" / "multiple_files"
    target = job.add_channel("train", "application/x-parquet")
    for f in src.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    train_inprocess(job)
    assert load_model(job.model_dir / "xgboost-model").num_features() == 5


@pytest.mark.parametrize("dtype", [np.int32, np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True])
def test_x15_recordio_protobuf_dense_sparse_every_type(
    xgboost_job: JobFactory, dtype: type, sparse: bool
) -> None:
    job = xgboost_job({"num_round": 2, "objective": "multi:softmax", "num_class": 4})
    data = make_dataset("multiclass", rows=120)
    x = (data.x * 100).astype(dtype)
    write_recordio_protobuf(
        job.add_channel("train", "application/x-recordio-protobuf") / "t.pbr",
        x,
        data.y.astype(dtype),
        sparse=sparse,
    )
    train_inprocess(job)
    assert load_model(job.model_dir / "xgboost-model").num_features() == 5


def test_x15_recordio_protobuf_sparse_edge_cases(
    xgboost_job: JobFactory, shared_testdata: Path
) -> None:
    job = xgboost_job({"num_round": 2})
    src = shared_testdata / "xgboost" / "data" / "recordio_protobuf" / "sparse_edge_cases"
    target = job.add_channel("train", "recordio-protobuf")
    for f in src.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    train_inprocess(job)
    assert load_model(job.model_dir / "xgboost-model").num_features() == 3


def test_x16_nested_folders_combined_deeper_ignored_hidden_refused(
    xgboost_job: JobFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    job = xgboost_job({"num_round": 2})
    data = make_dataset("regression", rows=90)
    root = job.add_channel("train", "text/csv")
    write_csv(root / "a.csv", data.x[:30], data.y[:30])
    write_csv(root / "d1" / "b.csv", data.x[30:60], data.y[30:60])
    write_csv(root / "d1" / "d2" / "c.csv", data.x[60:], data.y[60:])
    bad = make_dataset("regression", rows=5, cols=9)  # would break the width if it were read
    write_csv(root / "d1" / "d2" / "d3" / "deep.csv", bad.x, bad.y)
    train_inprocess(job)
    assert "exceeds the limit 3" in caplog.text
    assert "Train matrix has 90 rows" in caplog.text
    (root / "d1" / ".hidden").write_text("x")
    with pytest.raises(UserError, match=r"^Hidden file found in the data path!"):
        train_inprocess(job)


# -- training --------------------------------------------------------------------------------


def test_x17_one_log_line_per_round_matching_sagemakers_regex(
    xgboost_job: JobFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    job = _job_with_data(xgboost_job, "csv", eval_metric="rmse,mae,r2")
    train_inprocess(job)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert len(lines) == 5
    assert re.fullmatch(
        r"\[0\]\ttrain-rmse:\d+\.\d{5}\ttrain-mae:\d+\.\d{5}\ttrain-r2:-?\d+\.\d{5}"
        r"\tvalidation-rmse:\d+\.\d{5}\tvalidation-mae:\d+\.\d{5}\tvalidation-r2:-?\d+\.\d{5}",
        lines[0],
    )
    from sagedock.containers.xgboost.metrics import metric_definitions

    regex = {d.name: d.regex for d in metric_definitions()}["validation:r2"]
    values = [re.match(regex, line.replace("\t", "#011")) for line in lines]
    assert all(v is not None for v in values)


def test_x7_thresholded_metrics_appear_in_the_log(
    xgboost_job: JobFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    job = _job_with_data(xgboost_job, "csv", "binary", eval_metric="error@0.7,auc")
    train_inprocess(job)
    keys = round_lines(capsys.readouterr().out)[0][1]
    assert list(keys) == ["train-error@0.7", "train-auc", "validation-error@0.7", "validation-auc"]


def test_ranking_metrics_with_a_cut_off_appear_in_the_log(
    xgboost_job: JobFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    job = xgboost_job({"num_round": 3, "objective": "rank:ndcg", "eval_metric": "ndcg@3,map@2"})
    data = make_dataset("binary", rows=120)
    for channel, rows in (("train", slice(0, 90)), ("validation", slice(90, 120))):
        lines = [
            f"{int(y)} qid:{i // 10} " + " ".join(f"{j}:{v:.6g}" for j, v in enumerate(x))
            for i, (y, x) in enumerate(zip(data.y[rows], data.x[rows], strict=True))
        ]
        (job.add_channel(channel, "text/libsvm") / "r").write_text("\n".join(lines) + "\n")
    train_inprocess(job)
    rounds = round_lines(capsys.readouterr().out)
    assert list(rounds[0][1]) == [
        "train-ndcg@3",
        "train-map@2",
        "validation-ndcg@3",
        "validation-map@2",
    ]
    assert all(0 <= v <= 1 for _, values in rounds for v in values.values())


def test_container_metrics_use_17_semantics(
    xgboost_job: JobFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    job = _job_with_data(xgboost_job, "csv", "binary", eval_metric="accuracy,f1")
    train_inprocess(job)
    last = round_lines(capsys.readouterr().out)[-1][1]
    # XGBoost's default metric for the objective comes first, as in SageMaker.
    assert list(last)[:3] == ["train-logloss", "train-accuracy", "train-f1"]
    assert last["validation-accuracy"] > 0.8  # p > 0.5 is class 1 (a HEAD regression used p > 0)


def test_x18_early_stopping_truncates_the_model_to_the_best_round(
    xgboost_job: JobFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    job = xgboost_job(
        {
            "num_round": 200,
            "eta": 0.9,
            "max_depth": 6,
            "eval_metric": "rmse",
            "early_stopping_rounds": 3,
        }
    )
    data = make_dataset("regression", rows=300)
    noisy = data.y + np.random.default_rng(1).normal(0, 5, len(data.y)).astype(np.float32)
    write_csv(job.add_channel("train", "text/csv") / "t.csv", data.x[:200], noisy[:200])
    write_csv(job.add_channel("validation", "text/csv") / "v.csv", data.x[200:], data.y[200:])
    train_inprocess(job)
    rounds = round_lines(capsys.readouterr().out)
    assert len(rounds) < 200
    scores = [r["validation-rmse"] for _, r in rounds]
    best = int(np.argmin(scores))
    # the best round, then 3 rounds without improvement
    assert len(rounds) == best + 1 + 3
    assert load_model(job.model_dir / "xgboost-model").num_boosted_rounds() == best + 1


def test_x19_early_stopping_without_a_metric_trains_every_round_and_warns(
    xgboost_job: JobFactory, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    job = _job_with_data(xgboost_job, "csv", num_round=8, early_stopping_rounds=1)
    train_inprocess(job)
    assert len(round_lines(capsys.readouterr().out)) == 8
    assert "early_stopping_rounds=1 is ignored" in caplog.text


def test_x20_tuning_metric_joins_eval_metrics_sorted(
    xgboost_job: JobFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    job = _job_with_data(
        xgboost_job,
        "csv",
        "binary",
        eval_metric="logloss,error",
        _tuning_objective_metric="validation:auc",
        early_stopping_rounds=2,
    )
    train_inprocess(job)
    keys = list(round_lines(capsys.readouterr().out)[0][1])
    assert keys == [
        "train-auc",
        "train-error",
        "train-logloss",
        "validation-auc",
        "validation-error",
        "validation-logloss",
    ]


def test_parsed_data_is_spilled_to_scratch_and_removed(
    xgboost_job: JobFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _job_with_data(xgboost_job, "csv")
    scratch = tmp_path / "scratch"
    seen: list[list[str]] = []
    from sagedock.containers.xgboost import data as xgb_data

    original = xgb_data.build_matrix

    def spying(batches, **kwargs):  # type: ignore[no-untyped-def]
        seen.append([p.name for p in scratch.iterdir()])
        return original(batches, **kwargs)

    monkeypatch.setattr(xgb_data, "build_matrix", spying)
    monkeypatch.setenv("SAGEDOCK_SCRATCH_DIR", str(scratch))
    train_inprocess(job)
    assert seen and len(seen[0]) == 2  # train and validation spilled while the matrices build
    assert list(scratch.iterdir()) == []


def test_x21_artifact_is_one_file_in_xgboosts_default_format(xgboost_job: JobFactory) -> None:
    job = _job_with_data(xgboost_job, "csv")
    train_inprocess(job)
    assert sorted(p.name for p in job.model_dir.iterdir()) == ["xgboost-model"]
    raw = (job.model_dir / "xgboost-model").read_bytes()
    assert raw[:2] == b"{L"  # UBJSON, as SageMaker's 3.0-5 image writes it
    assert load_model(job.model_dir / "xgboost-model").num_boosted_rounds() == 5


def test_checkpoints_are_written_and_training_resumes_from_the_newest(
    xgboost_job: JobFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    job = _job_with_data(xgboost_job, "csv", num_round=8)
    job.checkpoints = True
    train_inprocess(job)
    names = sorted(p.name for p in job.checkpoint_dir.iterdir())
    assert names == [f"xgboost-checkpoint.{i}" for i in range(3, 8)]  # the newest 5
    capsys.readouterr()
    # A restarted job (spot interruption after round 5) resumes at round 6.
    for name in ("xgboost-checkpoint.6", "xgboost-checkpoint.7"):
        (job.checkpoint_dir / name).unlink()
    (job.model_dir / "xgboost-model").unlink()
    train_inprocess(job)
    assert [r for r, _ in round_lines(capsys.readouterr().out)] == [6, 7]
    assert load_model(job.model_dir / "xgboost-model").num_boosted_rounds() == 8


def test_a_checkpoint_that_is_already_the_last_round_is_the_model(
    xgboost_job: JobFactory, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # The job was stopped after its last checkpoint, before it wrote the model: the restart has
    # 0 rounds left, trains none and writes the model of the checkpoint.
    caplog.set_level(logging.INFO)
    job = _job_with_data(xgboost_job, "csv", num_round=8)
    job.checkpoints = True
    train_inprocess(job)
    first = (job.model_dir / "xgboost-model").read_bytes()
    (job.model_dir / "xgboost-model").unlink()
    capsys.readouterr()
    train_inprocess(job)
    assert round_lines(capsys.readouterr().out) == []
    assert "nothing left to train" in caplog.text
    resumed = load_model(job.model_dir / "xgboost-model")
    assert resumed.num_boosted_rounds() == 8
    assert load_model_bytes(first).get_dump() == resumed.get_dump()


def test_a_last_round_checkpoint_with_early_stopping_keeps_the_best_round(
    xgboost_job: JobFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # With early stopping the model is cut to its best round; a restart with 0 rounds left
    # must write the same model, so the checkpoint has to know the best round including its own.
    job = _job_with_data(
        xgboost_job, "csv", num_round=8, eval_metric="rmse", early_stopping_rounds=50
    )
    job.checkpoints = True
    train_inprocess(job)
    scores = [r["validation-rmse"] for _, r in round_lines(capsys.readouterr().out)]
    assert int(np.argmin(scores)) == 7  # the last round is the best: what a stale record loses
    first = load_model(job.model_dir / "xgboost-model")
    (job.model_dir / "xgboost-model").unlink()
    train_inprocess(job)
    resumed = load_model(job.model_dir / "xgboost-model")
    assert resumed.num_boosted_rounds() == first.num_boosted_rounds() == 8
    assert resumed.get_dump() == first.get_dump()


def test_a_last_round_checkpoint_without_a_best_round_resumes_with_early_stopping(
    xgboost_job: JobFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # Checkpoints of a job without early stopping record no best round; restarted with early
    # stopping and nothing left to train, the checkpoint is the model as it is.
    job = _job_with_data(xgboost_job, "csv", num_round=4)
    job.checkpoints = True
    train_inprocess(job)
    (job.model_dir / "xgboost-model").unlink()
    job.hyperparameters.update(eval_metric="rmse", early_stopping_rounds=2)
    train_inprocess(job)
    assert load_model(job.model_dir / "xgboost-model").num_boosted_rounds() == 4


@pytest.mark.parametrize(("tuning", "metric"), [("validation:auc", "auc"), ("validation:f1", "f1")])
def test_early_stopping_on_a_maximized_tuning_metric_keeps_its_highest_round(
    xgboost_job: JobFactory, capsys: pytest.CaptureFixture[str], tuning: str, metric: str
) -> None:
    # auc (XGBoost's) and f1 (the container's) improve upwards: the best round is the highest.
    job = xgboost_job(
        {
            "num_round": 200,
            "eta": 0.9,
            "max_depth": 6,
            "objective": "binary:logistic",
            "eval_metric": "logloss",
            "_tuning_objective_metric": tuning,
            "early_stopping_rounds": 3,
        }
    )
    data = make_dataset("binary", rows=400)
    flipped = np.random.default_rng(2).random(len(data.y)) < 0.3
    noisy = np.where(flipped, 1 - data.y, data.y).astype(np.float32)
    write_csv(job.add_channel("train", "text/csv") / "t.csv", data.x[:300], noisy[:300])
    write_csv(job.add_channel("validation", "text/csv") / "v.csv", data.x[300:], data.y[300:])
    train_inprocess(job)
    scores = [r[f"validation-{metric}"] for _, r in round_lines(capsys.readouterr().out)]
    best = int(np.argmax(scores))
    assert best != int(np.argmin(scores))
    assert len(scores) == best + 1 + 3 < 200  # the best round, then 3 without improvement
    assert load_model(job.model_dir / "xgboost-model").num_boosted_rounds() == best + 1


def test_rows_without_labels_are_refused_naming_the_channel(xgboost_job: JobFactory) -> None:
    job = xgboost_job({"num_round": 2})
    data = make_dataset("regression", rows=40)
    write_recordio_protobuf(
        job.add_channel("train", "application/x-recordio-protobuf") / "t.pbr", data.x, data.y
    )
    write_recordio_protobuf(
        job.add_channel("validation", "application/x-recordio-protobuf") / "v.pbr", data.x, None
    )
    with pytest.raises(UserError) as info:
        train_inprocess(job)
    assert info.value.message.startswith("Got input data without labels. Please check the input")
    assert info.value.message.endswith("(channel 'validation' has rows without a label)")
    assert list(job.model_dir.iterdir()) == []


def test_e2e_an_xgboost_failure_not_caused_by_the_data_is_an_algorithm_error(
    xgboost_job: JobFactory,
) -> None:
    # A checkpoint left by a job on other data (5 features; this job's data has 3): XGBoost
    # refuses to continue it, which SageMaker's list of data errors does not cover.
    import xgboost

    job = xgboost_job({"num_round": 4})
    job.checkpoints = True
    other = make_dataset("regression", rows=50)
    old = xgboost.train({}, xgboost.DMatrix(other.x, label=other.y), 2)
    job.checkpoint_dir.mkdir(parents=True)
    cb.save_booster(old, job.checkpoint_dir / "xgboost-checkpoint.1")
    data = make_dataset("regression", rows=50, cols=3)
    write_csv(job.add_channel("train", "text/csv") / "t.csv", data.x, data.y)
    result = job.run()
    assert result.returncode == 1, result.stderr[-2000:]
    assert job.failure is not None
    assert job.failure.startswith(
        "AlgorithmError: XGB train call failed with exception:\n Check failed: "
        "learner_model_param_.num_feature == p_fmat->Info().num_col_ (5 vs. 3) : Number of "
        "columns does not match number of features in booster."
    )
    assert "[bt]" not in job.failure and "Stack trace" not in job.failure
    assert list(job.model_dir.iterdir()) == []


def test_kfold_writes_one_model_per_fold_and_predictions(
    xgboost_job: JobFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    job = _job_with_data(xgboost_job, "csv", "binary", _kfold=3, _num_cv_round=2)
    train_inprocess(job)
    assert sorted(p.name for p in job.model_dir.iterdir()) == [
        f"xgboost-model-{i}" for i in range(6)
    ]
    table = np.loadtxt(job.output_data_dir / "predictions.csv", delimiter=",")
    assert table.shape == (400, 3)  # y_true, mean probability, mode label
    assert set(np.unique(table[:, 2])) <= {0.0, 1.0}
    out = capsys.readouterr().out
    summaries = [line for line in out.splitlines() if line.startswith("[5]\ttrain-logloss:")]
    assert len(summaries) == 3  # after each repetition, then overall


def test_pipe_mode_reads_the_epoch_fifo(xgboost_job: JobFactory) -> None:
    job = xgboost_job({"num_round": 3})
    job.add_channel("train", "text/csv", mode="Pipe")
    data = make_dataset("regression", rows=200)
    with piped(job, "train", _csv_bytes(data.y, data.x)):
        train_inprocess(job)
    assert load_model(job.model_dir / "xgboost-model").num_features() == 5


def _csv_bytes(*columns: np.ndarray) -> bytes:
    table = np.column_stack(columns)
    return "".join(",".join(f"{v:.9g}" for v in row) + "\n" for row in table).encode()


def test_pipe_mode_csv_weights_weigh_train_and_validation_rows(
    xgboost_job: JobFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # Column 1 of a piped CSV is the weight (SageMaker's Pipe-mode layout for csv_weights=1):
    # rows with weight 0 carry absurd labels and must not count, in training or in validation.
    train, validation = make_dataset("regression", rows=400).split()
    absurd = np.arange(len(train.y)) % 2 == 0
    train_y = np.where(absurd, 1e4, train.y).astype(np.float32)
    train_w = np.where(absurd, 0.0, 1.0).astype(np.float32)
    val_y = validation.y.copy()
    val_y[::2] = 1e4
    val_w = np.ones_like(val_y)
    val_w[::2] = 0.0
    job = xgboost_job({"num_round": 20, "csv_weights": 1})
    job.add_channel("train", "text/csv", mode="Pipe")
    job.add_channel("validation", "text/csv", mode="Pipe")
    with (
        piped(job, "train", _csv_bytes(train_y, train_w, train.x)),
        piped(job, "validation", _csv_bytes(val_y, val_w, validation.x)),
    ):
        train_inprocess(job)
    assert round_lines(capsys.readouterr().out)[-1][1]["validation-rmse"] < 1  # unweighted ~7000
    import xgboost

    model = load_model(job.model_dir / "xgboost-model")
    assert model.num_features() == 5  # the weight is no feature
    pred = model.predict(xgboost.DMatrix(validation.x))
    assert float(np.sqrt(np.mean((pred - validation.y) ** 2))) < 1


def test_pipe_mode_recordio_protobuf_trains_the_file_mode_model(
    xgboost_job: JobFactory, tmp_path: Path
) -> None:
    # Two objects (one dense, one sparse) streamed one after the other into each FIFO give the
    # model that File mode trains on the same two files.
    train, validation = make_dataset("binary", rows=400).split()
    halves = {
        "train": (train.x[:150], train.y[:150], train.x[150:], train.y[150:]),
        "validation": (validation.x[:50], validation.y[:50], validation.x[50:], validation.y[50:]),
    }
    hps = {"num_round": 5, "max_depth": 3, "objective": "binary:logistic"}
    file_job = xgboost_job(hps)
    pipe_job = xgboost_job(hps)
    streams: dict[str, list[bytes]] = {}
    for channel, (x1, y1, x2, y2) in halves.items():
        folder = file_job.add_channel(channel, "application/x-recordio-protobuf")
        dense = write_recordio_protobuf(folder / "part-0.pbr", x1, y1)
        sparse = write_recordio_protobuf(folder / "part-1.pbr", x2, y2, sparse=True)
        streams[channel] = [dense.read_bytes(), sparse.read_bytes()]
        pipe_job.add_channel(channel, "application/x-recordio-protobuf", mode="Pipe")
    train_inprocess(file_job)
    with (
        piped(pipe_job, "train", *streams["train"]),
        piped(pipe_job, "validation", *streams["validation"]),
    ):
        train_inprocess(pipe_job)
    import xgboost

    from_file = load_model(file_job.model_dir / "xgboost-model")
    from_pipe = load_model(pipe_job.model_dir / "xgboost-model")
    assert from_pipe.num_boosted_rounds() == 5 and from_pipe.num_features() == 5
    probe = xgboost.DMatrix(make_dataset("binary", rows=50, seed=3).x)
    np.testing.assert_array_equal(from_pipe.predict(probe), from_file.predict(probe))


def test_save_model_on_termination_saves_after_every_round(xgboost_job: JobFactory) -> None:
    job = _job_with_data(xgboost_job, "csv", num_round=4, save_model_on_termination="true")
    train_inprocess(job)
    assert load_model(job.model_dir / "xgboost-model").num_boosted_rounds() == 4


def test_a_stop_lost_in_xgboosts_log_callback_still_ends_training_with_the_round_kept(
    xgboost_job: JobFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # XGBoost calls its (ctypes) log callback every round; a SIGTERM whose handler runs there
    # raises into ctypes, which drops the exception. Training must stop anyway.
    job = _job_with_data(xgboost_job, "csv", num_round=500, save_model_on_termination="true")
    log_round = cb.EvaluationLog.after_iteration

    def after_iteration(self: cb.EvaluationLog, model: object, epoch: int, log: object) -> bool:
        if epoch == 5:
            signal_inside_ctypes_callback(signal.SIGTERM)
        return log_round(self, model, epoch, log)

    monkeypatch.setattr(cb.EvaluationLog, "after_iteration", after_iteration)
    with pytest.raises(SystemExit) as stopped, stop_signals_raise():
        train_inprocess(job)
    assert stopped.value.code == 0
    assert load_model(job.model_dir / "xgboost-model").num_boosted_rounds() == 6


@pytest.mark.slow
def test_e2e_sigterm_with_save_model_on_termination_keeps_the_last_model(
    xgboost_job: JobFactory,
) -> None:
    job = xgboost_job({"num_round": 100000, "max_depth": 2, "save_model_on_termination": "true"})
    data = make_dataset("regression", rows=200)
    write_csv(job.add_channel("train", "text/csv") / "t.csv", data.x, data.y)
    (job.model_dir).mkdir(parents=True, exist_ok=True)
    (job.model_dir / "scratch.txt").write_text("not a model")
    process = job.popen()
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("[20]"):
            break
    process.terminate()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert sorted(p.name for p in job.model_dir.iterdir()) == ["xgboost-model"]
    assert load_model(job.model_dir / "xgboost-model").num_boosted_rounds() >= 20


def test_dask_gpu_training_is_refused_listing_every_problem(xgboost_job: JobFactory) -> None:
    job = _job_with_data(xgboost_job, "libsvm", use_dask_gpu_training="true")
    with pytest.raises(UserError) as info:
        train_inprocess(job)
    message = info.value.message
    assert message.startswith("Some configurations unsuitable for Dask GPU training were found")
    assert "no GPU" in message and "csv and parquet" in message


def test_hyperparameters_file_values_are_strings(xgboost_job: JobFactory) -> None:
    job = _job_with_data(xgboost_job, "csv")
    job.write_configs()
    written = json.loads((job.base / "input" / "config" / "hyperparameters.json").read_text())
    assert all(isinstance(v, str) for v in written.values())


def test_all_formats_train_in_process(xgboost_job: JobFactory) -> None:
    for fmt in FORMATS:
        job = _job_with_data(xgboost_job, fmt, "binary")
        train_inprocess(job)
        assert load_model(job.model_dir / "xgboost-model").num_boosted_rounds() == 5, fmt


def test_parquet_pipe_of_concatenated_files(
    xgboost_job: JobFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # exact: an in-memory DMatrix, so only the parquet stream uses the scratch directory.
    job = xgboost_job({"num_round": 2, "tree_method": "exact"})
    job.add_channel("train", "application/x-parquet", mode="Pipe")
    parts, datasets = [], []
    for i in range(2):
        data = make_dataset("regression", rows=50, seed=i)
        datasets.append(data)
        parts.append(write_parquet(tmp_path / f"{i}.parquet", data.x, data.y).read_bytes())
    scratch = tmp_path / "scratch"
    monkeypatch.setenv("SAGEDOCK_SCRATCH_DIR", str(scratch))
    with piped(job, "train", *parts):
        train_inprocess(job)
    import xgboost

    x = np.vstack([d.x for d in datasets])
    y = np.concatenate([d.y for d in datasets])
    reference = xgboost.train({"tree_method": "exact"}, xgboost.DMatrix(x, label=y), 2)
    ours = load_model(job.model_dir / "xgboost-model")
    np.testing.assert_allclose(
        ours.predict(xgboost.DMatrix(x)), reference.predict(xgboost.DMatrix(x)), rtol=1e-6
    )
    assert scratch.is_dir() and list(scratch.iterdir()) == []  # the copied files are gone


def test_dense_enough_libsvm_and_sparse_libsvm_train_the_same_model_as_xgboost(
    xgboost_job: JobFactory,
) -> None:
    import xgboost

    # A dense LIBSVM file is handed to XGBoost as dense arrays (NaN = absent entry), a sparse
    # one as CSR; both must give XGBoost's own model for the same data.
    rng = np.random.default_rng(4)
    for keep in (0.9, 0.2):
        data = make_dataset("regression", rows=300)
        x = np.where(rng.random(data.x.shape) < keep, data.x, np.nan).astype(np.float32)
        job = xgboost_job({"num_round": 3, "max_depth": 3})
        write_libsvm(job.add_channel("train", "text/libsvm") / "t", x, data.y)
        train_inprocess(job)
        ours = load_model(job.model_dir / "xgboost-model")
        reference = xgboost.train(
            {"max_depth": 3}, xgboost.DMatrix(x, label=data.y, missing=np.nan), 3
        )
        probe = xgboost.DMatrix(x)
        np.testing.assert_allclose(ours.predict(probe), reference.predict(probe), rtol=1e-5)
