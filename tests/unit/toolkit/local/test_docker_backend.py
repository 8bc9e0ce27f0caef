"""What the docker backend hands a container: its environment and its ``docker run`` arguments
(built without a Docker engine; tests/images runs them for real)."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest

from sagedock.toolkit.local import TrainingJob, TrainOptions, parse_training_job
from sagedock.toolkit.local.backends import (
    HOST_ALIAS,
    DockerBackend,
    container_aws_environment,
    container_endpoint,
)


@pytest.mark.parametrize(
    ("url", "seen"),
    [
        ("http://127.0.0.1:5000", f"http://{HOST_ALIAS}:5000"),
        ("http://localhost:9000/", f"http://{HOST_ALIAS}:9000/"),
        ("https://127.0.0.2", f"https://{HOST_ALIAS}"),
        ("http://[::1]:4566", f"http://{HOST_ALIAS}:4566"),
        ("http://user:pw@localhost:1/p?q=1", f"http://user:pw@{HOST_ALIAS}:1/p?q=1"),
        ("http://minio.internal:9000", "http://minio.internal:9000"),
        ("https://s3.eu-west-1.amazonaws.com", "https://s3.eu-west-1.amazonaws.com"),
        ("http://10.1.2.3:9000", "http://10.1.2.3:9000"),
    ],
)
def test_a_loopback_endpoint_is_rewritten_to_the_host_alias(url: str, seen: str) -> None:
    assert container_endpoint(url) == seen


def test_containers_get_credentials_region_and_both_endpoint_variables() -> None:
    environ = {
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:5000",
        "AWS_ENDPOINT_URL": "http://localhost:4566",
        "HOME": "/root",
        "AWS_PROFILE": "",
    }
    assert container_aws_environment(environ) == {
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_S3": f"http://{HOST_ALIAS}:5000",
        "AWS_ENDPOINT_URL": f"http://{HOST_ALIAS}:4566",
    }


def test_rewriting_a_loopback_endpoint_warns_that_the_server_must_listen_beyond_it() -> None:
    warnings: list[str] = []
    environ = {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:5000", "AWS_ENDPOINT_URL": "http://s3:9"}
    container_aws_environment(environ, warn=warnings.append)
    (warning,) = warnings  # the endpoint that is not on the loopback is left alone, unsaid
    assert "AWS_ENDPOINT_URL_S3=http://127.0.0.1:5000" in warning
    assert f"http://{HOST_ALIAS}:5000" in warning
    assert "must listen on 0.0.0.0 or the gateway's address" in warning


def _docker_job(
    tmp_path: Path, environ: dict[str, str], stream: io.StringIO | None = None
) -> TrainingJob:
    spec = parse_training_job(
        {
            "TrainingJobName": "dock",
            "AlgorithmSpecification": {"TrainingImage": "my/image:1", "TrainingInputMode": "File"},
            "HyperParameters": {
                "sagemaker_program": '"train.py"',
                "sagemaker_submit_directory": '"s3://bucket/code/sourcedir.tar.gz"',
            },
            "OutputDataConfig": {"S3OutputPath": str(tmp_path / "out")},
            "ResourceConfig": {"InstanceType": "local", "InstanceCount": 2},
            "Environment": {"MY_SETTING": "1"},
        }
    )
    env = {"SAGEDOCK_LOCAL_DIR": str(tmp_path / "state"), **environ}
    return TrainingJob(spec, environ=env, options=TrainOptions(docker=True, stream=stream))


def test_a_training_container_gets_the_s3_endpoint_its_code_is_fetched_from(
    tmp_path: Path,
) -> None:
    logs = io.StringIO()
    job = _docker_job(
        tmp_path,
        {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:5000", "UNRELATED": "x", "PATH": "/bin"},
        logs,
    )
    env = job._host_env()
    assert "the S3 server must listen on 0.0.0.0" in logs.getvalue()  # said in the job's log
    assert env["AWS_ENDPOINT_URL_S3"] == f"http://{HOST_ALIAS}:5000"
    assert "AWS_ENDPOINT_URL" not in env
    assert env["MY_SETTING"] == "1"
    assert env["TRAINING_JOB_NAME"] == "dock"
    assert "UNRELATED" not in env and "PATH" not in env


def test_docker_run_maps_the_host_alias_to_the_job_networks_gateway(tmp_path: Path) -> None:
    backend = DockerBackend()
    # what prepare() records once `docker network create` has succeeded
    backend.network, backend.gateway = "sagedock-dock-abc123", "10.150.7.1"
    backend.addresses = {"algo-1": "10.150.7.10", "algo-2": "10.150.7.11"}
    host_dir = tmp_path / "algo-1"
    (host_dir / "input").mkdir(parents=True)
    args = backend.run_arguments(
        "algo-1",
        host_dir,
        {"AWS_ENDPOINT_URL_S3": f"http://{HOST_ALIAS}:5000"},
        image="my/image:1",
    )
    pairs = list(itertools.pairwise(args))
    assert ("--add-host", f"{HOST_ALIAS}:10.150.7.1") in pairs
    assert ("--add-host", "algo-2:10.150.7.11") in pairs
    assert ("--env", f"AWS_ENDPOINT_URL_S3=http://{HOST_ALIAS}:5000") in pairs
    assert ("--network", "sagedock-dock-abc123") in pairs
    assert ("--volume", f"{host_dir / 'input'}:/opt/ml/input") in pairs
    assert args[0] == "run" and args[-2:] == ["my/image:1", "train"]
