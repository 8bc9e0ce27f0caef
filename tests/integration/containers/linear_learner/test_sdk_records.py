"""The SageMaker SDK as Linear Learner's client: data its RecordIO writers make is read by our
channel reader, and a request its ``RecordSerializer`` makes is answered in records its
``RecordDeserializer`` reads back (``label["score"]``, ``label["predicted_label"]``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sagedock.containers.linear_learner import inference
from sagedock.containers.linear_learner.data import (
    ChannelSource,
    LabelRule,
    MiniBatcher,
    to_dense,
)
from sagedock.containers.linear_learner.model import ARTIFACT_NAME, LinearModel, save_model
from tests.fixtures.venvs import client_python, tail

pytestmark = pytest.mark.slow

SDK2 = "sagemaker==2.257.7"
CLIENT = Path(__file__).with_name("sdk_records_client.py")


def _client(python: Path, *args: str) -> str:
    done = subprocess.run(
        [str(python), str(CLIENT), *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, tail(done.stdout + done.stderr)
    return done.stdout


@pytest.fixture(scope="module")
def sdk_python() -> Path:
    # write_spmatrix_to_sparse_tensor takes a scipy matrix; the SDK does not require scipy.
    return client_python(SDK2, "scipy>=1.11", module="sagemaker")


def test_the_sdks_records_are_read_and_answered_as_it_expects(
    sdk_python: Path, tmp_path: Path
) -> None:
    _client(sdk_python, "write", str(tmp_path))
    x, y = np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy")
    rule = LabelRule("binary_classifier")

    dense = MiniBatcher("train", 16, rule)
    batches = list(
        dense(ChannelSource("train", "recordio-protobuf", [tmp_path / "dense.rec"]).batches(0))
    )
    np.testing.assert_array_equal(np.vstack([to_dense(b.features) for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b.label for b in batches]), y)

    sparse = MiniBatcher("train", 16, rule)
    source = ChannelSource("train", "recordio-protobuf", [tmp_path / "sparse.rec"])
    batches = list(sparse(source.batches(0)))
    assert sparse.feature_dim == 7  # the SDK's sparse shape
    expected = np.load(tmp_path / "sparse.npy")
    np.testing.assert_array_equal(np.vstack([to_dense(b.features) for b in batches]), expected)

    rng = np.random.default_rng(2)
    model = LinearModel(
        predictor_type="binary_classifier",
        loss="logistic",
        weights=rng.standard_normal((5, 1)).astype(np.float32),
        bias=np.zeros(1, np.float32),
        feature_mean=np.zeros(5, np.float32),
        feature_scale=np.ones(5, np.float32),
        threshold=0.4,
    )
    save_model(model, tmp_path / ARTIFACT_NAME)
    scorer = inference.model_fn(tmp_path)
    body = (tmp_path / "request.rec").read_bytes()
    prediction = inference.predict_fn(
        inference.input_fn(body, "application/x-recordio-protobuf"), scorer
    )
    answer, _ = inference.output_fn(prediction, "application/x-recordio-protobuf")
    (tmp_path / "answer.rec").write_bytes(answer)
    line = _client(sdk_python, "read", str(tmp_path / "answer.rec")).split("SCENARIO-RESULT ")[1]
    read_back = json.loads(line)
    scores = 1 / (1 + np.exp(-(x[:6] @ model.weights[:, 0])))
    assert [r["score"][0] for r in read_back] == pytest.approx(scores.tolist(), rel=1e-5)
    assert [r["predicted_label"] for r in read_back] == [[float(s >= 0.4)] for s in scores]


def test_the_sdks_training_files_train(sdk_python: Path, tmp_path: Path) -> None:
    """``sagedock train --algorithm linear-learner`` on the files the SDK's writers made."""
    from .support import final_metrics, linear_learner_job, load_scorer

    _client(sdk_python, "write", str(tmp_path))
    hps = {"predictor_type": "binary_classifier", "epochs": 5, "mini_batch_size": 10}
    for name, width in (("dense", 5), ("sparse", 7)):
        job = linear_learner_job(tmp_path / f"job-{name}", hps)
        channel = job.add_channel("train", "application/x-recordio-protobuf")
        (channel / f"{name}.rec").write_bytes((tmp_path / f"{name}.rec").read_bytes())
        result = job.run(timeout=240)
        assert result.returncode == 0, (job.failure, result.stderr[-3000:])
        assert load_scorer(job).feature_dim == width
        if name == "dense":  # the label is x0 > 0: learnt
            assert final_metrics(result.stderr, "train")["binary_classification_accuracy"] > 0.9
