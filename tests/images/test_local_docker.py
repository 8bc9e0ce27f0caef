"""`sagedock local train|serve --docker`: one container per host on a user-defined network."""

from __future__ import annotations

import io
import json
import os
import tarfile
import textwrap
from pathlib import Path

import pytest

from sagedock.toolkit.images import docker as engine
from sagedock.toolkit.local import TrainingJob, TrainOptions, parse_training_job
from tests.fixtures.images import ImageSet

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def base_image(docker_engine: None, sagedock_images: ImageSet) -> str:
    # Reuse an image built from this checkout already; build it only when there is none.
    if engine.image_exists("sagedock/base:latest"):
        return "sagedock/base:latest"
    return sagedock_images.tag("base")


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def run(tmp_path: Path, doc: dict, **options: object) -> tuple[object, str]:
    out = io.StringIO()
    env = {**os.environ, "SAGEDOCK_LOCAL_DIR": str(tmp_path / "state")}
    job = TrainingJob(
        parse_training_job(doc),
        environ=env,
        options=TrainOptions(docker=True, stream=out, progress_stream=io.StringIO(), **options),  # type: ignore[arg-type]
    )
    return job.run(), out.getvalue()


def job(tmp_path: Path, image: str, code: str, **extra: object) -> dict:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(textwrap.dedent(code))
    doc = {
        "TrainingJobName": "docker-job",
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "HyperParameters": {
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": json.dumps(str(src)),
        },
        "OutputDataConfig": {"S3OutputPath": str(tmp_path / "out")},
        "ResourceConfig": {"InstanceType": "local", "InstanceCount": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 240},
    }
    doc.update(extra)  # type: ignore[arg-type]
    return doc


def test_two_containers_find_each_other_by_host_name_and_share_the_data(
    tmp_path: Path, base_image: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        (data / f"{i}.csv").write_text(f"{i}\n")
    doc = job(
        tmp_path,
        base_image,
        """
        import json, os, socket
        host = os.environ["SM_CURRENT_HOST"]
        peers = {h: socket.gethostbyname(h) for h in json.loads(os.environ["SM_HOSTS"])}
        files = sorted(os.listdir(os.environ["SM_CHANNEL_TRAIN"]))
        json.dump({"peers": peers, "files": files, "base": os.environ["SM_MODEL_DIR"]},
                  open(os.path.join(os.environ["SM_MODEL_DIR"], host + ".json"), "w"))
        """,
        ResourceConfig={"InstanceType": "local", "InstanceCount": 2},
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": str(data),
                        "S3DataDistributionType": "ShardedByS3Key",
                    }
                },
            }
        ],
    )
    result, logs = run(tmp_path, doc)
    assert result.exit_code == 0, logs  # type: ignore[attr-defined]
    files = members(tmp_path / "out" / "docker-job" / "output" / "model.tar.gz")
    one, two = json.loads(files["algo-1.json"]), json.loads(files["algo-2.json"])
    assert set(one["peers"]) == {"algo-1", "algo-2"}
    assert one["peers"]["algo-2"] == two["peers"]["algo-2"] != "127.0.0.1"
    assert one["base"] == "/opt/ml/model"
    assert sorted(one["files"] + two["files"]) == ["0.csv", "1.csv", "2.csv", "3.csv"]
    # the network and the containers are gone
    networks = engine._run(["network", "ls", "--format", "{{.Name}}"]).stdout
    assert "sagedock-docker-job" not in networks


def test_a_failing_container_fails_the_job_with_its_failure_file(
    tmp_path: Path, base_image: str
) -> None:
    doc = job(tmp_path, base_image, "raise SystemExit('no data for you')\n")
    result, _ = run(tmp_path, doc)
    record = result.record  # type: ignore[attr-defined]
    assert record["TrainingJobStatus"] == "Failed"
    assert "no data for you" in record["FailureReason"]


def test_max_runtime_stops_the_container_with_sigterm(tmp_path: Path, base_image: str) -> None:
    doc = job(
        tmp_path,
        base_image,
        """
        import os, signal, sys, time
        def on_term(signum, frame):
            open(os.path.join(os.environ["SM_MODEL_DIR"], "saved"), "w").write("x")
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        print("waiting", flush=True)
        time.sleep(300)
        """,
        # counted from the job's start: network creation and container start-up included
        StoppingCondition={"MaxRuntimeInSeconds": 20},
    )
    result, logs = run(tmp_path, doc, stop_grace=30)
    record = result.record  # type: ignore[attr-defined]
    assert record["SecondaryStatus"] == "MaxRuntimeExceeded", logs
    assert "saved" in members(tmp_path / "out" / "docker-job" / "output" / "model.tar.gz")


def test_serve_docker_runs_the_image_with_the_model_mounted(
    tmp_path: Path, base_image: str
) -> None:
    from sagedock.toolkit.local import LocalEndpoint, ServeOptions, http, parse_model

    model_dir = tmp_path / "model"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "code" / "inference.py").write_text(
        textwrap.dedent(
            """
            import os

            def model_fn(model_dir):
                return open(os.path.join(model_dir, "greeting.txt")).read()

            def transform_fn(model, body, content_type, accept):
                text = body.decode() if isinstance(body, bytes) else body
                return f"{model} {text}", "text/plain"
            """
        )
    )
    (model_dir / "greeting.txt").write_text("hello")
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
        for path in sorted(model_dir.rglob("*")):
            tar.add(path, arcname=path.relative_to(model_dir).as_posix(), recursive=False)
    model = parse_model(
        {
            "ModelName": "docker-model",
            "PrimaryContainer": {
                "Image": base_image,
                "ModelDataUrl": str(tmp_path / "model.tar.gz"),
                "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
            },
        }
    )
    env = {**os.environ, "SAGEDOCK_LOCAL_DIR": str(tmp_path / "state")}
    endpoint = LocalEndpoint(
        model, environ=env, options=ServeOptions(docker=True, port=0, startup_timeout=180)
    )
    with endpoint:
        resp = http.invoke(endpoint.url, b"world", content_type="text/plain")
        assert (resp.status, resp.body) == (200, b"hello world")
        container = endpoint.container
    assert container is not None
    assert container not in engine._run(["ps", "-a", "--format", "{{.Names}}"]).stdout
