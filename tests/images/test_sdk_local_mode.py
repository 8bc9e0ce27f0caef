"""The SageMaker Python SDK's local mode, unchanged, against our images: the way most people try
an image before they pay for an endpoint.

SDK 2.x (``sagemaker<3``) runs ``docker compose`` (or Debian's ``docker-compose``) with
``train`` / ``serve``, extracts ``model.tar.gz`` in place for serving and mounts the whole
output folder at ``/opt/ml/model``; SDK 3.x starts the training container with no command.
Each scenario is one real client run (``tests/images/clients/``) in a throwaway venv; the test
checks the answers against the trained artifact loaded here with xgboost (or torch).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.images import ImageSet
from tests.fixtures.venvs import client_python, tail

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CLIENTS = Path(__file__).parent / "clients"
#: What the client scripts print before their one JSON result.
RESULT_MARKER = "SCENARIO-RESULT "
#: The newest 2.x release when this test was written; 2.x is in maintenance, so it is pinned.
SDK2 = "sagemaker==2.257.7"
#: What ``pip install 'sagemaker>=3'`` gave when this test was written.
SDK3 = "sagemaker==3.27.0"
HYPERPARAMETERS = {"objective": "reg:squarederror", "num_round": 5, "max_depth": 3}
#: The fake credentials and region local mode needs to build its boto session (nothing is
#: sent to AWS: every location is a file:// URI).
CLIENT_ENV = {
    "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    "AWS_DEFAULT_REGION": "us-west-2",
    "AWS_REGION": "us-west-2",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}
#: The SDKs' defaults file: telemetry off, so the client sends nothing off this machine.
SDK_CONFIG = textwrap.dedent(
    """
    SchemaVersion: '1.0'
    SageMaker:
      PythonSDK:
        Modules:
          TelemetryOptOut: true
    """
)

TRAIN_SCRIPT = textwrap.dedent(
    """
    import argparse, glob, os

    import numpy as np
    import xgboost

    parser = argparse.ArgumentParser()
    parser.add_argument("--num_round", type=int)
    parser.add_argument("--max_depth", type=int)
    parser.add_argument("--objective")
    args, _ = parser.parse_known_args()
    files = sorted(glob.glob(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "*.csv")))
    data = np.vstack([np.loadtxt(f, delimiter=",", ndmin=2) for f in files])
    matrix = xgboost.DMatrix(data[:, 1:], label=data[:, 0])
    params = {"max_depth": args.max_depth, "objective": args.objective}
    booster = xgboost.train(params, matrix, args.num_round)
    booster.save_model(os.path.join(os.environ["SM_MODEL_DIR"], "xgboost-model"))
    print("script mode trained", booster.num_boosted_rounds(), "rounds")
    """
)

#: A PyTorch user's pair of scripts, as the SDK's PyTorch estimator runs them: train.py saves a
#: state dict; inference.py (given to deploy()) has only model_fn, so the framework's default
#: input_fn / predict_fn / output_fn (JSON in, JSON out) do the rest.
TORCH_TRAIN_SCRIPT = textwrap.dedent(
    """
    import glob, os

    import numpy as np
    import torch

    files = sorted(glob.glob(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "*.csv")))
    data = np.vstack([np.loadtxt(f, delimiter=",", ndmin=2) for f in files]).astype("float32")
    x, y = torch.from_numpy(data[:, 1:]), torch.from_numpy(data[:, :1])
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(int(os.environ.get("SM_HP_EPOCHS", "50"))):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    torch.save(model.state_dict(), os.path.join(os.environ["SM_MODEL_DIR"], "model.pth"))
    print("torch script trained")
    """
)
TORCH_INFERENCE_SCRIPT = textwrap.dedent(
    """
    import os

    import torch


    def model_fn(model_dir):
        model = torch.nn.Linear(4, 1)
        state = torch.load(os.path.join(model_dir, "model.pth"), weights_only=True)
        model.load_state_dict(state)
        return model.eval()
    """
)


@pytest.fixture(scope="module")
def compose() -> None:
    """SDK local mode drives ``docker compose``; scripts/system-deps installs Debian's."""
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if plugin.returncode != 0 and shutil.which("docker-compose") is None:
        pytest.fail("SDK local mode needs docker compose: apt-get install docker-compose")


@pytest.fixture(scope="module")
def sdk2_python() -> Path:
    return client_python(SDK2, module="sagemaker.local")


@pytest.fixture(scope="module")
def xgboost_image(sagedock_images: ImageSet) -> str:
    return sagedock_images.tag("xgboost")


def _regression_data(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.random((rows, 4))
    y = x @ np.array([3.0, -2.0, 1.0, 0.5]) + 0.1 * rng.standard_normal(rows)
    return np.column_stack([y, x])


def _write_csv(path: Path, table: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, table, delimiter=",", fmt="%.6f")
    return path


def run_client(python: Path, script: str, scenario: Mapping[str, Any], cwd: Path) -> dict[str, Any]:
    """Run one client scenario to completion; its result line, or the test fails with the
    client's own log (which holds the containers' logs)."""
    config = cwd / "sagemaker-config.yaml"
    config.write_text(SDK_CONFIG)
    env = {
        **os.environ,
        **CLIENT_ENV,
        "HOME": str(cwd),
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config),
    }
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [str(python), str(CLIENTS / script), json.dumps(dict(scenario))],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=900,
    )
    output = done.stdout + done.stderr
    (cwd / f"{script}.log").write_text(output)
    # The SDK's progress output may leave a partial line just before ours: find the marker.
    for line in done.stdout.splitlines():
        _, marker, result = line.partition(RESULT_MARKER)
        if marker:
            return dict(json.loads(result))
    raise AssertionError(f"{script} exited {done.returncode} with no result:\n{tail(output, 80)}")


def _numbers(text: str) -> list[float]:
    return [float(v) for v in re.split(r"[,\s\[\]]+", text) if v]


def _booster_predictions(model_data: str, x: np.ndarray, workdir: Path) -> list[float]:
    import xgboost

    archive = Path(model_data.removeprefix("file://"))
    assert archive.name == "model.tar.gz", model_data
    target = workdir / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    booster = xgboost.Booster()
    booster.load_model(str(target / "xgboost-model"))
    return [float(v) for v in booster.predict(xgboost.DMatrix(x))]


def _scenario(tmp_path: Path, image: str, hosts: int, **extra: Any) -> dict[str, Any]:
    table = _regression_data(120, seed=1)
    for host in range(hosts):  # one file per host, so ShardedByS3Key-style splits have data
        _write_csv(tmp_path / "train" / f"part-{host}.csv", table[host::hosts])
    return {
        "image": image,
        "hosts": hosts,
        "train_dir": str(tmp_path / "train"),
        "output_dir": str(tmp_path / "output"),
        "container_root": str(tmp_path / "containers"),
        "hyperparameters": HYPERPARAMETERS,
        "rows": _regression_data(3, seed=7)[:, 1:].round(4).tolist(),
        **extra,
    }


def _script_scenario(tmp_path: Path, image: str) -> dict[str, Any]:
    """One host in script mode: TRAIN_SCRIPT as ``entry_point`` in its ``source_dir``."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(TRAIN_SCRIPT)
    return _scenario(tmp_path, image, 1, entry_point="train.py", source_dir=str(source))


def _check_predictions(result: dict[str, Any], scenario: dict[str, Any], tmp_path: Path) -> None:
    x = np.asarray(scenario["rows"], dtype=np.float32)
    expected = _booster_predictions(result["model_data"], x, tmp_path)
    assert _numbers(result["prediction"]) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("hosts", [1, 2])
def test_sdk2_algorithm_mode_fit_deploy_predict(
    compose: None, sdk2_python: Path, xgboost_image: str, tmp_path: Path, hosts: int
) -> None:
    extra: dict[str, Any] = {}
    if hosts == 1:
        batch = _regression_data(5, seed=3)[:, 1:]
        _write_csv(tmp_path / "batch" / "rows.csv", batch)
        extra = {
            "transform_dir": str(tmp_path / "batch"),
            "transform_output": str(tmp_path / "transformed"),
        }
    scenario = _scenario(tmp_path, xgboost_image, hosts, **extra)
    result = run_client(sdk2_python, "sdk2_local.py", scenario, tmp_path)
    _check_predictions(result, scenario, tmp_path)
    if hosts == 1:
        batch_x = np.loadtxt(tmp_path / "batch" / "rows.csv", delimiter=",", ndmin=2)
        expected = _booster_predictions(result["model_data"], batch_x, tmp_path / "b")
        assert list(result["transform"]) == ["rows.csv.out"]
        assert _numbers(result["transform"]["rows.csv.out"]) == pytest.approx(expected, rel=1e-5)


def test_sdk2_script_mode_fit_deploy_predict(
    compose: None, sdk2_python: Path, xgboost_image: str, tmp_path: Path
) -> None:
    scenario = _script_scenario(tmp_path, xgboost_image)
    result = run_client(sdk2_python, "sdk2_local.py", scenario, tmp_path)
    assert "script mode trained 5 rounds" in (tmp_path / "sdk2_local.py.log").read_text()
    _check_predictions(result, scenario, tmp_path)


def _torch_predictions(model_data: str, x: np.ndarray, workdir: Path) -> list[float]:
    import torch

    archive = Path(model_data.removeprefix("file://"))
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    model = torch.nn.Linear(4, 1)
    model.load_state_dict(torch.load(workdir / "model.pth", weights_only=True))
    with torch.no_grad():
        return [float(v) for v in model(torch.from_numpy(x)).flatten()]


def test_sdk2_pytorch_estimator_deploys_with_an_inference_entry_point(
    compose: None, sdk2_python: Path, sagedock_images: ImageSet, tmp_path: Path
) -> None:
    # sagemaker.pytorch.PyTorch(...).deploy(entry_point="inference.py") repacks model.tar.gz
    # with code/inference.py and points SAGEMAKER_SUBMIT_DIRECTORY at /opt/ml/model/code.
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(TORCH_TRAIN_SCRIPT)
    (source / "inference.py").write_text(TORCH_INFERENCE_SCRIPT)
    scenario = _scenario(
        tmp_path,
        sagedock_images.tag("pytorch"),
        1,
        framework="pytorch",
        entry_point="train.py",
        source_dir=str(source),
        inference="inference.py",
        hyperparameters={"epochs": 50},
    )
    result = run_client(sdk2_python, "sdk2_local.py", scenario, tmp_path)
    assert "torch script trained" in (tmp_path / "sdk2_local.py.log").read_text()
    x = np.asarray(scenario["rows"], dtype=np.float32)
    expected = _torch_predictions(result["model_data"], x, tmp_path / "unpacked")
    assert _numbers(result["prediction"]) == pytest.approx(expected, rel=1e-4, abs=1e-5)


@pytest.fixture(scope="module")
def sdk3_python() -> Path:
    return client_python(SDK3, module="sagemaker.core")


def test_sdk3_model_trainer_starts_the_image_bare_on_two_hosts_then_deploys_and_predicts(
    compose: None, sdk3_python: Path, xgboost_image: str, tmp_path: Path
) -> None:
    # ModelTrainer in Mode.LOCAL_CONTAINER passes no command: the image must choose train.
    scenario = _scenario(tmp_path, xgboost_image, 2)
    result = run_client(sdk3_python, "sdk3_local.py", scenario, tmp_path)
    log = (tmp_path / "sdk3_local.py.log").read_text()
    assert log.count("no command given") == 2, tail(log, 60)
    _check_predictions(result, scenario, tmp_path)


def test_sdk3_script_mode_runs_the_sdks_own_driver_scripts(
    compose: None, sdk3_python: Path, xgboost_image: str, tmp_path: Path
) -> None:
    # With source_code, 3.x runs `/bin/bash -c <its sm_train.sh>` (ContainerEntrypoint), which
    # sources its drivers and runs them with the python3 on PATH.
    scenario = _script_scenario(tmp_path, xgboost_image)
    result = run_client(sdk3_python, "sdk3_local.py", scenario, tmp_path)
    log = (tmp_path / "sdk3_local.py.log").read_text()
    assert "Running Basic Script driver" in log and "script mode trained 5 rounds" in log
    assert "Training Container Execution Completed" in log
    _check_predictions(result, scenario, tmp_path)
