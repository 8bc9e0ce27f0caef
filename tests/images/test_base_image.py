"""sagedock/base run the way SageMaker runs containers: ``docker run IMAGE train``."""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
from pathlib import Path

import pytest

from sagedock.toolkit.images import docker as engine
from tests.fixtures.images import ImageSet
from tests.images.support import (
    detached,
    docker,
    http,
    run_container,
    wait_for_file,
    wait_for_ping,
    write_tree,
)

pytestmark = pytest.mark.docker

# The user script reports its parent: `train` itself, which must be PID 1 of the container.
SCRIPT = textwrap.dedent(
    """
    import argparse, json, os, pathlib
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
    args = parser.parse_args()
    rows = pathlib.Path(os.environ["SM_CHANNEL_TRAINING"], "data.csv").read_text().splitlines()
    out = {"epochs": args.epochs, "rows": len(rows), "parent_pid": os.getppid(),
           "hosts": json.loads(os.environ["SM_HOSTS"])}
    pathlib.Path(args.model_dir, "model.json").write_text(json.dumps(out))
    """
)


def _tree(tmp_path: Path, script: str, **hps: object) -> Path:
    return write_tree(
        tmp_path / "ml",
        hyperparameters={"sagemaker_program": "train.py", **hps},
        channels={"training": {"data.csv": b"1,2\n0,3\n1,4\n"}},
        content_types={"training": "text/csv"},
        code={"train.py": script},
    )


def test_base_image_carries_sagemaker_labels_and_an_exec_form_entrypoint(
    sagedock_images: ImageSet,
) -> None:
    info = engine.inspect(sagedock_images.tag("base"))
    assert info.labels["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert info.labels["com.amazonaws.sagemaker.capabilities.multi-models"] == "true"
    assert info.entrypoint == ("/usr/local/bin/sagedock-entrypoint",)


def test_the_command_given_to_docker_run_becomes_pid_1(sagedock_images: ImageSet) -> None:
    out = run_container(
        sagedock_images.tag("base"), "sh", "-c", "echo $$; command -v train; command -v serve"
    )
    assert out.returncode == 0, out.stderr
    pid, train, serve = out.stdout.split()
    assert pid == "1"
    assert train == "/opt/sagedock/venv/bin/train"
    assert serve == "/opt/sagedock/venv/bin/serve"


def test_image_has_no_pip_cache_and_no_compiler(sagedock_images: ImageSet) -> None:
    probe = "ls -A /root/.cache/pip 2>/dev/null | wc -l; command -v gcc cc || echo none"
    out = run_container(sagedock_images.tag("base"), "sh", "-c", probe)
    assert out.stdout.split() == ["0", "none"]


def test_script_mode_training_writes_the_model_dir(
    sagedock_images: ImageSet, tmp_path: Path
) -> None:
    tree = _tree(tmp_path, SCRIPT, epochs=3)
    out = run_container(sagedock_images.tag("base"), "train", volumes={tree: "/opt/ml"})
    assert out.returncode == 0, out.stdout + out.stderr
    model = json.loads((tree / "model" / "model.json").read_text())
    assert model == {"epochs": 3, "rows": 3, "parent_pid": 1, "hosts": ["algo-1"]}
    assert (tree / "output" / "success").exists()
    assert not (tree / "output" / "failure").exists()


def test_script_mode_fetches_the_code_from_a_sourcedir_tarball(
    sagedock_images: ImageSet, tmp_path: Path
) -> None:
    # What SageMaker's framework estimators send: sagemaker_submit_directory names a
    # sourcedir.tar.gz (on S3; here in the mounted tree), extracted by `train` in the image.
    tree = _tree(tmp_path, SCRIPT, epochs=2, sagemaker_submit_directory="/opt/ml/sourcedir.tar.gz")
    (tree / "code" / "train.py").unlink()
    with tarfile.open(tree / "sourcedir.tar.gz", "w:gz") as tar:
        script = SCRIPT.encode()
        member = tarfile.TarInfo("train.py")
        member.size, member.mode = len(script), 0o644
        tar.addfile(member, io.BytesIO(script))
    out = run_container(sagedock_images.tag("base"), "train", volumes={tree: "/opt/ml"})
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert (tree / "code" / "train.py").read_text() == SCRIPT
    assert json.loads((tree / "model" / "model.json").read_text())["epochs"] == 2


def test_a_failing_script_writes_the_failure_file_and_exits_non_zero(
    sagedock_images: ImageSet, tmp_path: Path
) -> None:
    script = "raise ValueError('learning rate must be positive, got -1')\n"
    tree = _tree(tmp_path, script)
    out = run_container(sagedock_images.tag("base"), "train", volumes={tree: "/opt/ml"})
    assert out.returncode == 1
    failure = (tree / "output" / "failure").read_text()
    assert "learning rate must be positive, got -1" in failure
    assert not any((tree / "model").iterdir())


def test_docker_stop_reaches_the_training_script_before_sigkill(
    sagedock_images: ImageSet, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        """
        import os, pathlib, signal, sys, time
        model = pathlib.Path(os.environ["SM_MODEL_DIR"])
        def stop(signum, frame):
            (model / "checkpoint").write_text("saved on SIGTERM")
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        (model / "started").write_text("")
        time.sleep(600)
        """
    )
    tree = _tree(tmp_path, script)
    with detached(sagedock_images.tag("base"), "train", volumes={tree: "/opt/ml"}) as box:
        wait_for_file(tree / "model" / "started")
        code = box.stop(grace=30)
        assert code != 137, f"SIGKILLed: train did not stop in time\n{box.logs()[-2000:]}"
    assert (tree / "model" / "checkpoint").read_text() == "saved on SIGTERM"


def test_a_byoc_dockerfile_from_the_base_builds_and_trains(
    sagedock_images: ImageSet, tmp_path: Path
) -> None:
    base = sagedock_images.tag("base")
    project = tmp_path / "byoc"
    project.mkdir()
    (project / "train.py").write_text(SCRIPT)
    (project / "Dockerfile").write_text(
        f"FROM {base}\nCOPY train.py /opt/ml/code/train.py\nENV SAGEMAKER_PROGRAM=train.py\n"
    )
    tag = "sagedock-test/byoc:latest"
    built = docker("build", "-q", "-t", tag, str(project), timeout=300)
    assert built.returncode == 0, built.stderr
    try:
        tree = write_tree(
            tmp_path / "ml",
            hyperparameters={"epochs": 2},
            channels={"training": {"data.csv": b"1,2\n"}},
        )
        # SageMaker mounts input/model/output, not /opt/ml itself: the baked-in code stays.
        volumes = {tree / sub: f"/opt/ml/{sub}" for sub in ("input", "model", "output")}
        out = run_container(tag, "train", volumes=volumes)
        assert out.returncode == 0, out.stdout + out.stderr
        model = json.loads((tree / "model" / "model.json").read_text())
        assert (model["epochs"], model["rows"]) == (2, 1)
    finally:
        docker("rmi", "-f", tag, timeout=60)


INFERENCE = textwrap.dedent(
    """
    import json, os
    def model_fn(model_dir):
        with open(os.path.join(model_dir, "weights.json")) as f:
            return json.load(f)
    def predict_fn(data, model):
        return [sum(w * x for w, x in zip(model["w"], row)) + model["b"] for row in data]
    """
)


def _served_model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    (model / "code").mkdir(parents=True)
    (model / "weights.json").write_text(json.dumps({"w": [1.0, 2.0], "b": 0.5}))
    (model / "code" / "inference.py").write_text(INFERENCE)
    return model


@pytest.fixture(scope="module")
def base_with_serve(sagedock_images: ImageSet) -> str:
    image = sagedock_images.tag("base")
    return image


def test_serve_answers_ping_and_invocations_and_stops_with_exit_0(
    base_with_serve: str, tmp_path: Path
) -> None:
    model = _served_model(tmp_path)
    with detached(
        base_with_serve, "serve", volumes={model: "/opt/ml/model"}, container_port=8080
    ) as box:
        wait_for_ping(box)
        resp = http(
            box.url + "/invocations",
            data=b"[[1, 1], [2, 0]]",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        assert resp.status == 200, resp.body[:500]
        assert json.loads(resp.body) == [3.5, 2.5]
        assert resp.content_type.startswith("application/json")
        # SageMaker sends SIGTERM and SIGKILLs after 30 s: a clean exit 0 means serve drained
        # and stopped nginx and its workers in time.
        assert box.stop(grace=30) == 0, box.logs()[-2000:]


def test_serve_listens_on_sagemaker_bind_to_port(base_with_serve: str, tmp_path: Path) -> None:
    model = _served_model(tmp_path)
    with detached(
        base_with_serve,
        "serve",
        volumes={model: "/opt/ml/model"},
        env={"SAGEMAKER_BIND_TO_PORT": "9090"},
        container_port=9090,
    ) as box:
        wait_for_ping(box)
        assert box.stop(grace=30) == 0, box.logs()[-2000:]
