"""Requests built by the real SageMaker Python SDK (2.x, in a throwaway venv) run unchanged
through ``sagedock local train|serve|invoke|transform --spec``, with the data in moto's S3.

The SDK's Estimator (``TrainingInput(..., distribution="ShardedByS3Key")``), Model.deploy,
Predictor and Transformer talk to a recording boto3 session (clients/record_sdk_requests.py):
the JSON files it writes are the very keyword arguments the SDK gave ``create_training_job``,
``create_model``, ... (and botocore's own parameter validation passed them). One test, so
the SDK's import and the model server's starts are paid once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.s3 import S3Server
from tests.fixtures.venvs import client_python, tail

pytestmark = pytest.mark.slow

#: Shared with tests/images/test_sdk_local_mode.py, so one cached venv serves both.
SDK2 = "sagemaker==2.257.7"
CLIENT = Path(__file__).parent / "clients" / "record_sdk_requests.py"
#: Telemetry off: the SDK sends nothing off this machine.
SDK_CONFIG = """\
SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


def _record(python: Path, scenario: dict[str, Any], workdir: Path) -> None:
    (workdir / "sdk-config.yaml").write_text(SDK_CONFIG)
    env = {
        **os.environ,
        "HOME": str(workdir),
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(workdir / "sdk-config.yaml"),
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-west-2",
    }
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [str(python), str(CLIENT), json.dumps(scenario)],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=300,
    )
    assert "SCENARIO-RESULT " in done.stdout, tail(done.stdout + done.stderr, 60)


def _local(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sagedock.toolkit", "local", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def _csv(table: np.ndarray) -> bytes:
    return "".join(",".join(f"{v:.5f}" for v in row) + "\n" for row in table).encode()


def test_sdk_built_requests_train_serve_invoke_and_transform_unchanged(
    tmp_path: Path, s3_server: S3Server
) -> None:
    python = client_python(SDK2, module="sagemaker")
    s3 = s3_server.client()
    bucket = s3_server.new_bucket()
    rng = np.random.default_rng(3)
    x = rng.random((160, 4))
    table = np.column_stack([x @ np.array([3.0, -2.0, 1.0, 0.5]), x])
    for part in range(2):  # ShardedByS3Key deals one object to each of the two hosts
        s3.put_object(Bucket=bucket, Key=f"train/part-{part}.csv", Body=_csv(table[part::2]))
    s3.put_object(Bucket=bucket, Key="validation/val.csv", Body=_csv(table[:40]))
    s3.put_object(Bucket=bucket, Key="batch/rows.csv", Body=_csv(x[:25]))
    specs = tmp_path / "requests"
    rows = x[:2].round(4).tolist()
    _record(
        python,
        {
            "image": "sagedock/xgboost:latest",
            "bucket": bucket,
            "train": f"s3://{bucket}/train/",
            "validation": f"s3://{bucket}/validation/",
            "batch": f"s3://{bucket}/batch/",
            "out": str(specs),
            "job": "sdk-train-1",
            "model": "sdk-model",
            "endpoint": "sdk-ep",
            "transform": "sdk-transform-1",
            "hyperparameters": {"objective": "reg:squarederror", "num_round": 5, "max_depth": 3},
            "rows": rows,
        },
        tmp_path,
    )
    request = json.loads((specs / "train.json").read_text())
    channel = request["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    assert channel["S3DataDistributionType"] == "ShardedByS3Key"  # the API's name, as sent
    env = {
        **os.environ,
        **s3_server.environ,
        "SAGEDOCK_LOCAL_DIR": str(tmp_path / "state"),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
    }

    trained = _local(env, "train", "--spec", str(specs / "train.json"))
    assert trained.returncode == 0, tail(trained.stdout + trained.stderr, 60)
    assert trained.stderr.count("ignored by the local platform:") == 1
    assert "ResourceConfig.VolumeSizeInGB" in trained.stderr and "DebugHookConfig" in trained.stderr
    archive = tmp_path / "model.tar.gz"
    s3.download_file(bucket, "out/sdk-train-1/output/model.tar.gz", str(archive))
    with tarfile.open(archive) as tar:
        assert "xgboost-model" in tar.getnames()
    # The job record echoes the request's channels, as DescribeTrainingJob does.
    record = s3.get_object(Bucket=bucket, Key="out/sdk-train-1/training-job.json")
    described = json.loads(record["Body"].read())
    assert described["TrainingJobStatus"] == "Completed"
    assert described["InputDataConfig"] == request["InputDataConfig"]

    from sagedock.toolkit.local.serving import free_port

    served = _local(
        env, "serve", "--spec", str(specs / "model.json"), "--detach", "--port", str(free_port())
    )
    assert served.returncode == 0, tail(served.stdout + served.stderr, 60)
    assert "endpoint 'sdk-ep' is in service" in served.stdout  # Endpoint.EndpointName
    try:
        invoked = _local(env, "invoke", "--spec", str(specs / "invoke.json"))
        assert invoked.returncode == 0, invoked.stderr
        answers = [float(v) for v in invoked.stdout.split()]
        assert len(answers) == len(rows)
    finally:
        stopped = _local(env, "stop", "sdk-ep")
    assert stopped.returncode == 0, stopped.stderr

    transformed = _local(
        env,
        "transform",
        "--spec",
        str(specs / "transform.json"),
        "--model-spec",
        str(specs / "transform-model.json"),
    )
    assert transformed.returncode == 0, tail(transformed.stdout + transformed.stderr, 60)
    out = s3.get_object(Bucket=bucket, Key="batch-out/rows.csv.out")["Body"].read().decode()
    predictions = [float(v) for v in out.split()]
    assert len(predictions) == 25
    # The endpoint and the batch job served the same model: the same rows, the same answers.
    assert predictions[:2] == pytest.approx(answers, rel=1e-5)
