"""sagedock/xgboost: algorithm mode by default, script mode when a program is given, serving."""

from __future__ import annotations

import json
import shutil
import textwrap
import time
from pathlib import Path

import pytest

from sagedock.toolkit.images import docker as engine
from tests.fixtures.images import ImageSet
from tests.images.support import (
    detached,
    http,
    image_algorithms,
    run_container,
    wait_for_log_line,
    wait_for_ping,
    write_tree,
)

pytestmark = pytest.mark.docker

HYPERPARAMETERS = {"objective": "reg:squarederror", "num_round": 5, "max_depth": 3}


@pytest.fixture(scope="module")
def xgboost_image(sagedock_images: ImageSet) -> str:
    return sagedock_images.tag("xgboost")


@pytest.fixture(scope="module")
def has_algorithm(xgboost_image: str) -> None:
    # The image's whole point: a missing entry point is a broken image, not a reason to skip.
    assert "xgboost" in image_algorithms(xgboost_image), "no sagedock.algorithms xgboost entry"


def _abalone_tree(root: Path, testdata: Path, hyperparameters: dict[str, object]) -> Path:
    data = testdata / "xgboost" / "abalone" / "data"
    tree = write_tree(
        root,
        hyperparameters=hyperparameters,
        channels={"train": {}, "validation": {}},
        content_types={"train": "text/libsvm", "validation": "text/libsvm"},
    )
    for channel in ("train", "validation"):
        for path in sorted((data / channel).iterdir()):
            shutil.copy(path, tree / "input" / "data" / channel / path.name)
    return tree


def test_xgboost_image_selects_the_algorithm_by_default(xgboost_image: str) -> None:
    env = engine.inspect(xgboost_image).env
    assert "SAGEDOCK_ALGORITHM=xgboost" in env


def test_algorithm_mode_trains_a_booster_into_the_model_dir(
    xgboost_image: str, has_algorithm: None, shared_testdata: Path, tmp_path: Path
) -> None:
    tree = _abalone_tree(tmp_path / "ml", shared_testdata, HYPERPARAMETERS)
    out = run_container(xgboost_image, "train", volumes={tree: "/opt/ml"})
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert (tree / "model" / "xgboost-model").is_file()
    assert "validation-rmse" in out.stdout + out.stderr
    assert (tree / "output" / "success").exists()


def test_algorithm_mode_rejects_a_bad_hyperparameter_in_the_failure_file(
    xgboost_image: str, has_algorithm: None, shared_testdata: Path, tmp_path: Path
) -> None:
    tree = _abalone_tree(tmp_path / "ml", shared_testdata, {**HYPERPARAMETERS, "max_depth": -3})
    out = run_container(xgboost_image, "train", volumes={tree: "/opt/ml"})
    assert out.returncode != 0
    failure = (tree / "output" / "failure").read_text()
    assert failure.startswith("ClientError")
    assert "max_depth" in failure
    assert not (tree / "model" / "xgboost-model").exists()


def test_script_mode_wins_over_the_algorithm_when_a_program_is_given(
    xgboost_image: str, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        """
        import os, numpy as np, xgboost as xgb
        x = np.arange(40, dtype=float).reshape(20, 2); y = x[:, 0] * 2
        booster = xgb.train({"max_depth": 2}, xgb.DMatrix(x, label=y), num_boost_round=3)
        booster.save_model(os.path.join(os.environ["SM_MODEL_DIR"], "script-model.json"))
        """
    )
    hps = {"sagemaker_program": "train.py"}
    tree = write_tree(tmp_path / "ml", hyperparameters=hps, code={"train.py": script})
    out = run_container(xgboost_image, "train", volumes={tree: "/opt/ml"})
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    saved = json.loads((tree / "model" / "script-model.json").read_text())
    assert "learner" in saved
    assert not (tree / "model" / "xgboost-model").exists()


def test_serve_answers_ping_and_csv_invocations_then_stops_cleanly(
    xgboost_image: str, has_algorithm: None, shared_testdata: Path, tmp_path: Path
) -> None:
    tree = _abalone_tree(tmp_path / "ml", shared_testdata, HYPERPARAMETERS)
    trained = run_container(xgboost_image, "train", volumes={tree: "/opt/ml"})
    assert trained.returncode == 0, trained.stderr[-2000:]
    model_dir = tree / "model"
    with detached(
        xgboost_image, "serve", volumes={model_dir: "/opt/ml/model"}, container_port=8080
    ) as box:
        wait_for_ping(box)
        rows = (
            b"1,0.455,0.365,0.095,0.514,0.2245,0.101,0.15\n"
            b"2,0.35,0.265,0.09,0.2255,0.0995,0.0485,0.07\n"
        )
        resp = http(
            box.url + "/invocations",
            data=rows,
            headers={"Content-Type": "text/csv", "Accept": "text/csv"},
        )
        assert resp.status == 200, resp.body[:500]
        predictions = [float(v) for v in resp.body.decode().replace("\n", ",").split(",") if v]
        assert len(predictions) == 2
        assert all(1.0 < p < 30.0 for p in predictions)  # abalone rings
        assert box.stop(grace=30) == 0, box.logs()[-2000:]


# Enough rounds to be still training when `docker stop` comes (each takes about a millisecond).
LONG_RUN = {**HYPERPARAMETERS, "num_round": 200000}


def _stop_while_training(image: str, tree: Path) -> tuple[int, float, str]:
    """Start algorithm-mode training, `docker stop` it after round 20 has been logged; the
    exit code, the seconds docker stop took and the log."""
    with detached(image, "train", volumes={tree: "/opt/ml"}) as box:
        wait_for_log_line(box, "[20]")
        started = time.monotonic()
        code = box.stop(grace=30)
        return code, time.monotonic() - started, box.logs()


def test_docker_stop_ends_algorithm_training_promptly_with_the_failure_file(
    xgboost_image: str, has_algorithm: None, shared_testdata: Path, tmp_path: Path
) -> None:
    tree = _abalone_tree(tmp_path / "ml", shared_testdata, LONG_RUN)
    code, seconds, logs = _stop_while_training(xgboost_image, tree)
    # SIGTERM stops XGBoost at the next round boundary; 137 would mean docker had to SIGKILL
    assert code == 128 + 15, logs[-2000:]
    assert seconds < 10, f"docker stop took {seconds:.1f} s\n{logs[-2000:]}"
    failure = (tree / "output" / "failure").read_text()
    assert failure.startswith("ClientError: the job was stopped (SIGTERM)")
    assert not (tree / "output" / "success").exists()


def test_docker_stop_with_save_model_on_termination_exits_0_keeping_the_model(
    xgboost_image: str, has_algorithm: None, shared_testdata: Path, tmp_path: Path
) -> None:
    hps = {**LONG_RUN, "save_model_on_termination": "true"}
    tree = _abalone_tree(tmp_path / "ml", shared_testdata, hps)
    code, seconds, logs = _stop_while_training(xgboost_image, tree)
    assert code == 0, logs[-2000:]
    assert seconds < 10, f"docker stop took {seconds:.1f} s\n{logs[-2000:]}"
    assert sorted(p.name for p in (tree / "model").iterdir()) == ["xgboost-model"]
    assert not (tree / "output" / "failure").exists()
    # the kept model loads and holds at least the rounds logged before the stop
    probe = (
        "import xgboost; b = xgboost.Booster(model_file='/opt/ml/model/xgboost-model'); "
        "print(b.num_boosted_rounds())"
    )
    out = run_container(xgboost_image, "python", "-c", probe, volumes={tree: "/opt/ml"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert 20 <= int(out.stdout.split()[-1]) < LONG_RUN["num_round"]


def test_an_image_started_with_no_command_trains_when_the_layout_is_a_training_job(
    xgboost_image: str, has_algorithm: None, tmp_path: Path
) -> None:
    # SageMaker SDK 3.x local mode starts the training container with no command.
    rows = "\n".join(f"{2 * i},{i},{i % 3}" for i in range(30)) + "\n"
    tree = write_tree(
        tmp_path / "ml",
        hyperparameters=HYPERPARAMETERS,
        channels={"train": {"train.csv": rows.encode()}},
        content_types={"train": "text/csv"},
    )
    out = run_container(xgboost_image, volumes={tree: "/opt/ml"})
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert "no command given" in log and "running train" in log
    assert (tree / "model" / "xgboost-model").is_file()


def test_an_image_started_with_no_command_and_no_layout_says_why_and_exits_2(
    xgboost_image: str,
) -> None:
    out = run_container(xgboost_image)
    assert out.returncode == 2
    assert "neither a training configuration" in out.stderr
    assert "usage: docker run IMAGE train|serve|COMMAND" in out.stderr
