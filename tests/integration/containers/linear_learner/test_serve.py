"""Built-in Linear Learner behind the real server: ``sagedock serve --algorithm linear-learner``
(nginx + gunicorn) on a model directory holding ``model_algo-1``, as model.tar.gz unpacks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sagedock.containers.linear_learner.model import ARTIFACT_NAME, LinearModel, save_model
from tests.fixtures.serving import ServeProcess

pytestmark = pytest.mark.slow

ServeFactory = Callable[..., ServeProcess]
ONE_WORKER = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
WEIGHTS = np.array([[1.5], [-2.0], [0.5], [0.0]], np.float32)
BIAS = np.array([0.25], np.float32)


def _binary_model(model_dir: Path) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    model = LinearModel(
        predictor_type="binary_classifier",
        loss="logistic",
        weights=WEIGHTS,
        bias=BIAS,
        feature_mean=np.zeros(4, np.float32),
        feature_scale=np.ones(4, np.float32),
        threshold=0.5,
    )
    save_model(model, model_dir / ARTIFACT_NAME)
    return model_dir


def _expected(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = 1.0 / (1.0 + np.exp(-(rows @ WEIGHTS.astype(np.float64) + BIAS)))
    return scores[:, 0], (scores[:, 0] >= 0.5).astype(float)


@pytest.mark.parametrize("select", ["flag", "env"])
def test_csv_rows_are_answered_with_scores_and_labels(
    serve_model: ServeFactory, tmp_path: Path, select: str
) -> None:
    model_dir = _binary_model(tmp_path / "model")
    if select == "flag":
        server = serve_model(model_dir, env=ONE_WORKER, args=["--algorithm", "linear-learner"])
    else:  # what the image sets
        server = serve_model(model_dir, env={**ONE_WORKER, "SAGEDOCK_ALGORITHM": "linear-learner"})
    rows = np.array([[1.0, 0.0, 2.0, 3.0], [0.0, 1.0, 0.0, -1.0]])
    body = "".join(",".join(f"{v:g}" for v in row) + "\n" for row in rows)

    response = server.invoke(body, "text/csv")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    document = response.json()
    assert set(document) == {"predictions"}
    predictions = document["predictions"]
    assert [set(p) for p in predictions] == [{"score", "predicted_label"}] * 2
    scores, labels = _expected(rows)
    np.testing.assert_allclose([p["score"] for p in predictions], scores, rtol=1e-5)
    assert [p["predicted_label"] for p in predictions] == list(labels)

    # Explicit JSON accept: the same answer.
    again = server.invoke(body, "text/csv", Accept="application/json")
    assert again.status_code == 200 and again.json() == document


def test_accept_text_csv_is_refused_with_406(serve_model: ServeFactory, tmp_path: Path) -> None:
    model_dir = _binary_model(tmp_path / "model")
    server = serve_model(model_dir, env=ONE_WORKER, args=["--algorithm", "linear-learner"])
    response = server.invoke("1,0,2,3\n", "text/csv", Accept="text/csv")
    assert response.status_code == 406
    assert response.headers["Content-Type"].startswith("application/json")
    assert "text/csv" in response.json()["message"]
    # the endpoint keeps answering
    assert server.invoke("1,0,2,3\n", "text/csv").status_code == 200


def test_a_row_of_the_wrong_width_is_a_400_naming_both_counts(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    model_dir = _binary_model(tmp_path / "model")
    server = serve_model(model_dir, env=ONE_WORKER, args=["--algorithm", "linear-learner"])
    response = server.invoke("1,2,3\n", "text/csv")
    assert response.status_code == 400
    message = response.json()["message"]
    assert "3" in message and "4" in message
