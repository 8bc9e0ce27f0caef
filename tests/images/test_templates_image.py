"""Rendered templates in images: the BYOC project builds FROM our base, trains and serves;
the TensorFlow BYOS script trains and serves in sagedock/tensorflow; the sklearn BYOS project
builds its own image from a wheelhouse as its README says, and trains with no network."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sagedock.templates.command import render
from tests.fixtures.images import ImageSet
from tests.images.support import detached, docker, http, run_container, wait_for_ping, write_tree

pytestmark = pytest.mark.docker

ROWS = b"0.5,-1.0\n1.0,1.0\n"
EXPECTED = [4.5, 2.0]  # y = 3*x1 - 2*x2 + 1


def _tree_with_sample_data(root: Path, project: Path, **hps: object) -> Path:
    tree = write_tree(
        root,
        hyperparameters=hps,
        channels={"train": {}, "validation": {}},
        content_types={"train": "text/csv", "validation": "text/csv"},
    )
    for channel in ("train", "validation"):
        for path in (project / "data" / channel).iterdir():
            shutil.copy(path, tree / "input" / "data" / channel / path.name)
    return tree


def _predict(image: str, model_dir: Path) -> list[float]:
    with detached(image, "serve", volumes={model_dir: "/opt/ml/model"}, container_port=8080) as box:
        wait_for_ping(box)
        resp = http(
            box.url + "/invocations",
            data=ROWS,
            headers={"Content-Type": "text/csv", "Accept": "application/json"},
        )
        assert resp.status == 200, resp.body[:500]
        assert box.stop(grace=30) == 0, box.logs()[-2000:]
    return [float(v) for v in json.loads(resp.body)]


def test_the_byoc_template_builds_from_our_base_trains_and_serves(
    sagedock_images: ImageSet, tmp_path: Path
) -> None:
    project = tmp_path / "byoc"
    render("byoc", project, name="byoc-test", base_image=sagedock_images.tag("base"))
    tag = "sagedock-test/byoc-template:latest"
    built = docker("build", "-q", "-t", tag, str(project), timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    try:
        tree = _tree_with_sample_data(tmp_path / "ml", project, l2=0.0)
        # As SageMaker mounts them: the code baked into /opt/ml/code stays visible.
        volumes = {tree / sub: f"/opt/ml/{sub}" for sub in ("input", "model", "output")}
        out = run_container(tag, "train", volumes=volumes)
        assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
        assert "validation_rmse=" in out.stdout + out.stderr
        predictions = _predict(tag, tree / "model")
        assert all(abs(g - w) < 0.3 for g, w in zip(predictions, EXPECTED, strict=True))
    finally:
        docker("rmi", "-f", tag, timeout=60)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_tensorflow_byos_template_trains_and_serves_in_the_tensorflow_image(
    sagedock_images: ImageSet, tmp_path: Path
) -> None:
    image = sagedock_images.tag("tensorflow")
    project = tmp_path / "tf"
    render("byos", project, name="tf-test", framework="tensorflow")
    hps = {"sagemaker_program": "train.py", "epochs": 150}
    tree = _tree_with_sample_data(tmp_path / "ml", project, **hps)
    for name in ("train.py", "inference.py", "project_io.py", "requirements.txt"):
        shutil.copy(project / name, tree / "code" / name)
    out = run_container(image, "train", volumes={tree: "/opt/ml"}, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert (tree / "model" / "1" / "saved_model.pb").is_file()
    assert (tree / "model" / "code" / "inference.py").is_file()
    assert (tree / "model" / "code" / "project_io.py").is_file()
    predictions = _predict(image, tree / "model")
    assert all(abs(g - w) < 0.5 for g, w in zip(predictions, EXPECTED, strict=True))


def _readme_commands(readme: Path, section: str) -> list[str]:
    """The shell commands of the first ``sh`` block under the heading *section*, with
    continuation lines joined."""
    text = readme.read_text().split(f"## {section}\n", 1)[1]
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_tensorflow_byos_readme_runs_on_the_local_platform_inside_the_tensorflow_image(
    sagedock_images: ImageSet, tmp_path: Path
) -> None:
    # The test venv has no TensorFlow, so the README's "no Docker" commands (sagedock local
    # train / serve / invoke, process backend) run where TensorFlow is: in its image.
    image = sagedock_images.tag("tensorflow")
    project = tmp_path / "tfproj"
    render("byos", project, name="tfproj", framework="tensorflow")
    commands = _readme_commands(
        project / "README.md", "Train and serve on this machine (no Docker)"
    )
    assert [c.split()[:3] for c in commands] == [
        ["sagedock", "local", "train"],
        ["sagedock", "local", "serve"],
        ["sagedock", "local", "invoke"],
        ["sagedock", "local", "stop"],
    ]
    # the invoke's output goes to a file the test reads; the stop runs however it ended
    invoke = commands[2] + " >answer.json"
    script = "\n".join(
        [*commands[:2], f"status=0; {invoke} || status=$?", commands[3], "exit $status"]
    )
    out = run_container(
        image,
        "sh",
        "-ec",
        f"cd /project && {script}",
        volumes={project: "/project"},
        env={"SAGEDOCK_LOCAL_DIR": "/project/.local-state"},
        timeout=900,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert (project / "out" / "tfproj-1" / "output" / "model.tar.gz").is_file()
    predictions = json.loads((project / "answer.json").read_text())
    assert len(predictions) == 1
    assert abs(predictions[0] - EXPECTED[0]) < 0.5, predictions


@pytest.mark.slow
def test_the_sklearn_byos_project_builds_its_image_from_a_wheelhouse_and_trains_offline(
    sagedock_images: ImageSet, tmp_path: Path
) -> None:
    sagedock_images.tag("base")  # what `sagedock images build base` in the README makes
    name = f"sklearn-test-{uuid.uuid4().hex[:8]}"
    project = tmp_path / name
    render("byos", project, name=name, framework="sklearn")
    download, build_base, build = _readme_commands(project / "README.md", "The same in Docker")
    assert build_base == "sagedock images build base"
    assert build == f"docker build -t {name}:latest ."
    # the README's download, with this interpreter's pip
    assert download.startswith("python3 -m pip download ")
    argv = [sys.executable, "-m", "pip", *download.split()[3:]]
    fetched = subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=600)
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    assert any(p.name.startswith("scikit_learn-") for p in (project / "wheelhouse").iterdir())
    tag = f"{name}:latest"
    built = docker(*build.split()[1:-1], str(project), timeout=600)
    assert built.returncode == 0, (built.stdout + built.stderr)[-3000:]
    try:
        hps = {"sagemaker_program": "train.py", "alpha": 0.01}
        tree = _tree_with_sample_data(tmp_path / "ml", project, **hps)
        for file in ("train.py", "inference.py", "project_io.py", "requirements.txt"):
            shutil.copy(project / file, tree / "code" / file)
        # requirements.txt is installed already: the job needs no index, nor any network
        out = run_container(tag, "train", volumes={tree: "/opt/ml"}, network="none")
        assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
        assert "validation_rmse=" in out.stdout + out.stderr
        assert (tree / "model" / "model.joblib").is_file()
        predictions = _predict(tag, tree / "model")
        assert all(abs(g - w) < 0.3 for g, w in zip(predictions, EXPECTED, strict=True))
    finally:
        docker("rmi", "-f", tag, timeout=60)
