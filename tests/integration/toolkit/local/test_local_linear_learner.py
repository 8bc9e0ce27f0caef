"""`sagedock local train` and `local transform` given AWS's own Linear Learner image URI (what
``sagemaker.image_uris.retrieve("linear-learner", "us-east-1")`` answers) run sagedock's
algorithm with the process backend, and the job's FinalMetricDataList is read with the
algorithm's metric definitions though the job lists none, as SageMaker's is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sagedock.toolkit.formats.protobuf import write_recordio_protobuf

pytestmark = pytest.mark.slow

AWS_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1"
TRUE_WEIGHTS = np.array([2.0, -1.0, 1.0, 0.5])


def _local(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "sagedock.toolkit", "local", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


def _channel(folder: Path, rows: int, rng: np.random.Generator) -> Path:
    folder.mkdir()
    x = rng.standard_normal((rows, 4))
    y = (x @ TRUE_WEIGHTS > 0).astype(int)
    np.savetxt(folder / "part-0.csv", np.column_stack([y, x]), delimiter=",", fmt="%.6g")
    return folder


def test_aws_image_uri_trains_and_transforms_with_the_builtin_algorithm(tmp_path: Path) -> None:
    env = {**os.environ, "SAGEDOCK_LOCAL_DIR": str(tmp_path / "state")}
    rng = np.random.default_rng(0)
    train = _channel(tmp_path / "train", 200, rng)
    validation = _channel(tmp_path / "validation", 100, rng)
    _local(
        env,
        "train",
        "--image",
        AWS_IMAGE,
        "--job-name",
        "ll",
        "--channel",
        f"train={train},content_type=text/csv",
        "--channel",
        f"validation={validation},content_type=text/csv",
        *("--hp", "predictor_type=binary_classifier", "--hp", "epochs=2"),
        *("--hp", "mini_batch_size=50", "--hp", "num_models=4"),
        "--output",
        str(tmp_path / "out"),
    )
    record = json.loads((tmp_path / "out" / "ll" / "training-job.json").read_text())
    assert record["TrainingJobStatus"] == "Completed"
    final = {m["MetricName"]: m["Value"] for m in record["FinalMetricDataList"]}
    assert final["validation:binary_classification_accuracy"] > 0.8
    assert {"train:objective_loss", "validation:objective_loss", "train:progress"} <= set(final)
    assert final["train:progress"] == 100.0

    inputs = tmp_path / "in"
    inputs.mkdir()
    rows = np.array([[2.0, -1.0, 1.0, 0.5], [-2.0, 1.0, -1.0, -0.5]])
    np.savetxt(inputs / "rows.csv", rows, delimiter=",", fmt="%.6g")
    _local(
        env,
        "transform",
        "--job-name",
        "llt",
        "--model",
        str(tmp_path / "out" / "ll" / "output" / "model.tar.gz"),
        "--image",
        AWS_IMAGE,
        "--input",
        str(inputs),
        "--output",
        str(tmp_path / "transformed"),
        *("--content-type", "text/csv", "--split-type", "Line"),
        *("--accept", "application/jsonlines"),
    )
    lines = (tmp_path / "transformed" / "rows.csv.out").read_text().splitlines()
    predictions = [json.loads(line) for line in lines]
    assert [p["predicted_label"] for p in predictions] == [1, 0]
    assert all(0.0 <= p["score"] <= 1.0 for p in predictions)

    # L16: the artifact SageMaker's algorithm writes, model_algo-1 (a zip) in model.tar.gz
    with tarfile.open(tmp_path / "out" / "ll" / "output" / "model.tar.gz") as archive:
        assert archive.getnames() == ["model_algo-1"]
        member = archive.extractfile("model_algo-1")
        assert member is not None
        assert zipfile.is_zipfile(member)

    # RecordIO-protobuf records split one by one (SplitType RecordIO), answered in JSON Lines
    records = tmp_path / "in-records"
    records.mkdir()
    with (records / "rows.rec").open("wb") as fh:
        write_recordio_protobuf(fh, rows.astype(np.float32), None)
    _local(
        env,
        "transform",
        "--job-name",
        "llt-records",
        "--model",
        str(tmp_path / "out" / "ll" / "output" / "model.tar.gz"),
        "--image",
        AWS_IMAGE,
        "--input",
        str(records),
        "--output",
        str(tmp_path / "transformed-records"),
        *("--content-type", "application/x-recordio-protobuf", "--split-type", "RecordIO"),
        *("--accept", "application/jsonlines"),
    )
    text = (tmp_path / "transformed-records" / "rows.rec.out").read_text()
    predictions = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert [p["predicted_label"] for p in predictions] == [1, 0]
