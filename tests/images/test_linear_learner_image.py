"""sagedock/linear-learner: algorithm mode by default; a model trained in the image is served by
the image, as SageMaker's training job and endpoint use the same Linear Learner image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sagedock.toolkit.images import docker as engine
from tests.fixtures.images import ImageSet
from tests.images.support import (
    detached,
    http,
    image_algorithms,
    run_container,
    wait_for_ping,
    write_tree,
)

pytestmark = pytest.mark.docker

HYPERPARAMETERS = {
    "predictor_type": "binary_classifier",
    "epochs": 2,
    "mini_batch_size": 50,
    "num_models": 4,
}
#: The labels' rule: the sign of x @ TRUE_WEIGHTS (a separable problem).
TRUE_WEIGHTS = np.array([2.0, -1.0, 1.0, 0.5])


@pytest.fixture(scope="module")
def linear_learner_image(sagedock_images: ImageSet) -> str:
    return sagedock_images.tag("linear-learner")


def _csv(labels: np.ndarray | None, x: np.ndarray) -> bytes:
    rows = x if labels is None else np.column_stack([labels, x])
    return "".join(",".join(f"{v:.6g}" for v in row) + "\n" for row in rows).encode()


def test_linear_learner_image_selects_the_algorithm_by_default(linear_learner_image: str) -> None:
    assert "SAGEDOCK_ALGORITHM=linear-learner" in engine.inspect(linear_learner_image).env
    # The image's whole point: a missing entry point is a broken image, not a reason to skip.
    assert "linear-learner" in image_algorithms(linear_learner_image)
    probe = "import torch, scipy; print(torch.__version__, torch.version.cuda)"
    out = run_container(linear_learner_image, "python", "-c", probe, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["2.13.0+cpu", "None"]  # the CPU build: no CUDA libraries


def test_a_model_trained_in_the_image_is_served_by_the_image(
    linear_learner_image: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 4))
    y = (x @ TRUE_WEIGHTS > 0).astype(float)
    tree = write_tree(
        tmp_path / "ml",
        hyperparameters=HYPERPARAMETERS,
        channels={"train": {"train.csv": _csv(y, x)}},
        content_types={"train": "text/csv"},
    )
    trained = run_container(linear_learner_image, "train", volumes={tree: "/opt/ml"})
    log = trained.stdout + trained.stderr
    assert trained.returncode == 0, log[-4000:]
    assert (tree / "model" / "model_algo-1").is_file()
    assert (tree / "output" / "success").exists()
    assert "#quality_metric: host=algo-1" in log

    model_dir = tree / "model"
    with detached(
        linear_learner_image, "serve", volumes={model_dir: "/opt/ml/model"}, container_port=8080
    ) as box:
        wait_for_ping(box)
        # Rows far from the boundary: any reasonably trained model labels them right.
        rows = np.array([[2.0, -1.0, 1.0, 0.5], [-2.0, 1.0, -1.0, -0.5]])
        resp = http(
            box.url + "/invocations",
            data=_csv(None, rows),
            headers={"Content-Type": "text/csv", "Accept": "application/json"},
        )
        assert resp.status == 200, resp.body[:500]
        assert resp.content_type.startswith("application/json")
        predictions = json.loads(resp.body)["predictions"]
        assert [set(p) for p in predictions] == [{"score", "predicted_label"}] * 2
        assert all(0.0 <= p["score"] <= 1.0 for p in predictions)
        assert [p["predicted_label"] for p in predictions] == [1.0, 0.0]
        refused = http(
            box.url + "/invocations",
            data=_csv(None, rows),
            headers={"Content-Type": "text/csv", "Accept": "text/csv"},
        )
        assert refused.status == 406
        assert box.stop(grace=30) == 0, box.logs()[-2000:]
