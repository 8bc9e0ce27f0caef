"""`sagedock local serve|invoke|stop` and a transform job that starts its own server: the real
`sagedock serve` (nginx + gunicorn) as a process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from sagedock.toolkit.errors import PlatformError, UserError
from sagedock.toolkit.local import (
    LocalEndpoint,
    ServeOptions,
    http,
    parse_model,
    parse_transform_job,
)
from sagedock.toolkit.local.serving import port_in_use
from sagedock.toolkit.local.transform_job import TransformOptions, run_transform_job
from tests.fixtures.s3 import S3Server

INFERENCE = """
import json, os
import numpy as np

def model_fn(model_dir):
    with open(os.path.join(model_dir, "factor.json")) as f:
        return json.load(f)["factor"]

def predict_fn(data, model):
    return np.asarray(data) * model
"""

BATCH_ECHO = """
import os

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    env = [os.environ.get(k, "-") for k in (
        "SAGEMAKER_BATCH", "SAGEMAKER_BATCH_STRATEGY", "SAGEMAKER_MAX_PAYLOAD_IN_MB",
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS")]
    return "".join(f"{line}|{'|'.join(env)}\\n" for line in body.splitlines()), "text/csv"
"""

SERVER_ENV = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}


def model_tarball(path: Path, inference: str = INFERENCE, *, factor: float = 2.0) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in (
            ("factor.json", json.dumps({"factor": factor})),
            ("code/inference.py", textwrap.dedent(inference)),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "SAGEDOCK_LOCAL_DIR": str(tmp_path / "state")}


def model_spec(uri: str, **env: str) -> object:
    return parse_model(
        {
            "ModelName": "m",
            "PrimaryContainer": {"ModelDataUrl": uri, "Environment": {**SERVER_ENV, **env}},
        }
    )


def test_a_model_tarball_is_served_until_stopped(tmp_path: Path, env: dict[str, str]) -> None:
    tarball = model_tarball(tmp_path / "model.tar.gz")
    endpoint = LocalEndpoint(
        model_spec(f"file://{tarball}"), environ=env, options=ServeOptions(port=0)
    )
    with endpoint:
        assert http.ping(endpoint.url)
        resp = http.invoke(endpoint.url, b"1,2\n3,4\n", content_type="text/csv", accept="text/csv")
        assert (resp.status, resp.body) == (200, b"2.0,4.0\n6.0,8.0\n")
        assert (endpoint.dir / "model" / "code" / "inference.py").is_file()
    assert not endpoint.alive()
    assert not port_in_use(endpoint.port)
    record = json.loads((endpoint.dir / "endpoint.json").read_text())
    assert record["Status"] == "Stopped"


def test_a_model_directory_is_served_as_is(tmp_path: Path, env: dict[str, str]) -> None:
    model_dir = tmp_path / "model"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "factor.json").write_text('{"factor": 10}')
    (model_dir / "code" / "inference.py").write_text(textwrap.dedent(INFERENCE))
    with LocalEndpoint(model_spec(str(model_dir)), environ=env, options=ServeOptions(port=0)) as ep:
        resp = http.invoke(
            ep.url, b"[[1.5]]", content_type="application/json", accept="application/json"
        )
        assert json.loads(resp.body) == [[15.0]]


def test_a_model_on_s3_is_downloaded_and_served(
    tmp_path: Path, env: dict[str, str], s3_server: S3Server
) -> None:
    bucket = s3_server.new_bucket()
    tarball = model_tarball(tmp_path / "model.tar.gz", factor=3)
    s3_server.client().upload_file(str(tarball), bucket, "models/model.tar.gz")
    spec = model_spec(f"s3://{bucket}/models/model.tar.gz")
    with LocalEndpoint(
        spec, environ={**env, **s3_server.environ}, options=ServeOptions(port=0)
    ) as ep:
        resp = http.invoke(ep.url, b"1\n", content_type="text/csv", accept="text/csv")
        assert resp.body == b"3.0\n"


def test_an_unsafe_archive_is_refused_before_anything_starts(
    tmp_path: Path, env: dict[str, str]
) -> None:
    tarball = tmp_path / "evil.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    endpoint = LocalEndpoint(model_spec(str(tarball)), environ=env, options=ServeOptions(port=0))
    with pytest.raises(UserError, match=r"\.\./outside\.txt"):
        endpoint.start()
    assert endpoint.popen is None
    assert not (tmp_path / "outside.txt").exists()


def test_a_server_that_cannot_load_its_model_is_reported_with_its_log(
    tmp_path: Path, env: dict[str, str]
) -> None:
    broken = "def model_fn(model_dir):\n    raise RuntimeError('weights are corrupt')\n"
    tarball = model_tarball(tmp_path / "model.tar.gz", broken)
    endpoint = LocalEndpoint(
        model_spec(str(tarball)), environ=env, options=ServeOptions(port=0, startup_timeout=90)
    )
    with pytest.raises(PlatformError) as info:
        endpoint.start()
    assert "weights are corrupt" in info.value.message
    assert not endpoint.alive()


def _local(env: dict[str, str], *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sagedock.toolkit", "local", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        **kw,  # type: ignore[arg-type]
    )


def test_cli_serve_detached_then_invoke_then_stop(tmp_path: Path, env: dict[str, str]) -> None:
    from sagedock.toolkit.local.serving import free_port

    tarball = model_tarball(tmp_path / "model.tar.gz")
    port = str(free_port())
    (tmp_path / "rows.csv").write_text("1\n2\n")
    served = _local(
        env, "serve", "--model", str(tarball), "--port", port, "--detach", "--name", "cli-ep",
        "--env", "SAGEMAKER_MODEL_SERVER_WORKERS=1",
    )  # fmt: skip
    assert served.returncode == 0, served.stdout + served.stderr
    assert f"http://127.0.0.1:{port}" in served.stdout
    try:
        ok = _local(env, "invoke", "--port", port, "--content-type", "text/csv", "--accept",
                    "text/csv", f"@{tmp_path / 'rows.csv'}")  # fmt: skip
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout == "2.0\n4.0\n"
        assert "HTTP 200 text/csv" in ok.stderr
        bad = _local(env, "invoke", "--port", port, "--content-type", "text/csv", "x,y")
        assert bad.returncode == 1
        assert "error: the endpoint answered 400:" in bad.stderr
        again = _local(env, "serve", "--model", str(tarball), "--port", "0", "--name", "cli-ep")
        assert again.returncode == 1
        assert "is running already" in again.stderr
    finally:
        stopped = _local(env, "stop", "cli-ep")
    assert stopped.returncode == 0, stopped.stderr
    assert not port_in_use(int(port))


def test_a_transform_job_starts_its_server_with_the_batch_environment(
    tmp_path: Path, env: dict[str, str]
) -> None:
    tarball = model_tarball(tmp_path / "model.tar.gz", BATCH_ECHO)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("r1\nr2\nr3\n")
    spec = parse_transform_job(
        {
            "TransformJobName": "batch-env",
            "ModelName": "m",
            "BatchStrategy": "SingleRecord",
            "MaxConcurrentTransforms": 2,
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(tmp_path / "in")}
                },
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            "TransformOutput": {"S3OutputPath": str(tmp_path / "out"), "AssembleWith": "Line"},
        }
    )
    result = run_transform_job(
        spec,
        model=model_spec(str(tarball)),
        environ=env,
        options=TransformOptions(serve=ServeOptions(port=0), stream=io.StringIO()),
    )
    assert result.exit_code == 0, result.record
    assert (tmp_path / "out" / "a.csv.out").read_text() == (
        "r1|true|SINGLE_RECORD|-|2\nr2|true|SINGLE_RECORD|-|2\nr3|true|SINGLE_RECORD|-|2\n"
    )
    assert result.record["MaxPayloadInMB"] == 6


SLOW_ON_MARK = """
import os, pathlib, time

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    text = body if isinstance(body, str) else body.decode()
    if "SLOW" in text:
        pathlib.Path(os.environ["STARTED_MARKER"]).write_text("busy")
        time.sleep(6)
    return text, "text/csv"
"""


def test_sigterm_stops_a_cli_transform_and_the_server_it_started(
    tmp_path: Path, env: dict[str, str]
) -> None:
    import signal
    import time

    tarball = model_tarball(tmp_path / "model.tar.gz", SLOW_ON_MARK)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("1\nSLOW\n")
    marker = tmp_path / "started"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "sagedock.toolkit", "local", "transform", "--job-name", "halt",
            "--model", str(tarball), "--input", str(tmp_path / "in"),
            "--output", str(tmp_path / "out"), "--content-type", "text/csv",
            "--split-type", "Line", "--strategy", "SingleRecord",
            "--env", "SAGEMAKER_MODEL_SERVER_WORKERS=1", "--env", f"STARTED_MARKER={marker}",
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=90)

    assert proc.returncode == 143, out
    job_dir = tmp_path / "state" / "transform-jobs" / "halt"
    record = json.loads((job_dir / "transform-job.json").read_text())
    assert record["TransformJobStatus"] == "Stopped"
    assert record["FailureReason"].startswith("Stopped: SIGTERM")
    server = json.loads((job_dir / "endpoint" / "endpoint.json").read_text())
    assert server["Status"] == "Stopped"
    assert not port_in_use(server["Port"])
    assert not (tmp_path / "out").exists()


HEADER_ECHO = """
import json

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept, context):
    seen = {
        "body": body if isinstance(body, str) else body.decode(),
        "content_type": content_type,
        "accept": accept,
        "custom_attributes": context.custom_attributes,
        "target_variant": context.target_variant,
        "inference_id": context.inference_id,
    }
    return json.dumps(seen), "application/json"
"""


def test_invoke_spec_sends_an_invoke_endpoint_request_and_flags_override_it(
    tmp_path: Path, env: dict[str, str]
) -> None:
    tarball = model_tarball(tmp_path / "model.tar.gz", HEADER_ECHO)
    served = _local(
        env, "serve", "--model", str(tarball), "--port", "0", "--detach", "--name", "echo",
        "--env", "SAGEMAKER_MODEL_SERVER_WORKERS=1",
    )  # fmt: skip
    assert served.returncode == 0, served.stdout + served.stderr
    request = {
        "EndpointName": "echo",
        "Body": {"instances": [[1, 2]]},
        "ContentType": "application/json",
        "Accept": "application/json",
        "CustomAttributes": "trace=1",
        "TargetVariant": "blue",
        "InferenceId": "req-42",
    }
    (tmp_path / "request.json").write_text(json.dumps(request))
    try:
        from_spec = _local(env, "invoke", "--spec", f"file://{tmp_path / 'request.json'}")
        relative = _local(
            env, "invoke", "--spec", "file://request.json", "--custom-attributes", "trace=2",
            "--inference-id", "req-43", "plain text body", "--content-type", "text/plain",
            cwd=tmp_path,
        )  # fmt: skip
    finally:
        stopped = _local(env, "stop", "echo")
    assert stopped.returncode == 0, stopped.stderr
    assert from_spec.returncode == 0, from_spec.stderr
    assert json.loads(from_spec.stdout) == {
        "body": '{"instances": [[1, 2]]}',
        "content_type": "application/json",
        "accept": "application/json",
        "custom_attributes": "trace=1",
        "target_variant": "blue",
        "inference_id": "req-42",
    }
    assert relative.returncode == 0, relative.stderr
    assert json.loads(relative.stdout) == {
        "body": "plain text body",
        "content_type": "text/plain",
        "accept": "application/json",
        "custom_attributes": "trace=2",
        "target_variant": "blue",
        "inference_id": "req-43",
    }
