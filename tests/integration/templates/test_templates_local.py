"""Every rendered template trains and serves through `sagedock local train` / `local serve`
(process backend), with the commands its README gives."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from sagedock.templates.command import render

pytestmark = pytest.mark.slow

# The sample data follow y = 3*x1 - 2*x2 + 1 (+ a little noise): (0.5, -1.0) -> 4.5.
ROWS = "0.5,-1.0\n1.0,1.0\n"
EXPECTED = [4.5, 2.0]
TOLERANCE = {"xgboost": 1.2}  # 50 small trees on 48 rows: close, not exact

CASES = [
    ("byoc", None, None),
    ("byos", "pytorch", "torch"),
    ("byos", "xgboost", "xgboost"),
    ("byos", "sklearn", "sklearn"),
    ("byos", "tensorflow", "tensorflow"),
]


def _sagedock(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    # The local platform keeps its job and endpoint records under SAGEDOCK_LOCAL_DIR.
    env = dict(os.environ, SAGEDOCK_LOCAL_DIR=str(cwd.parent / "local-state"))
    return subprocess.run(
        [sys.executable, "-m", "sagedock.toolkit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("kind", "framework", "module"), CASES)
def test_template_trains_and_serves_with_the_local_platform(
    kind: str, framework: str | None, module: str | None, tmp_path: Path
) -> None:
    if module is not None and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed here (tests/images runs it in its image)")
    suffix = uuid.uuid4().hex[:8]
    project = tmp_path / "proj"
    render(kind, project, name="proj", framework=framework)
    job = f"tmpl-{framework or kind}-{suffix}"
    trained = _sagedock(
        "local", "train", "--entry-point", "train.py", "--source-dir", ".",
        "--job-name", job,
        "--channel", "train=data/train,content_type=text/csv",
        "--channel", "validation=data/validation,content_type=text/csv",
        "--output", "out",
        cwd=project,
    )  # fmt: skip
    assert trained.returncode == 0, (trained.stdout + trained.stderr)[-3000:]
    assert "validation_rmse=" in trained.stdout + trained.stderr
    model = project / "out" / job / "output" / "model.tar.gz"
    assert model.is_file()

    port, name = _free_port(), f"tmpl-{suffix}"
    served = _sagedock(
        "local", "serve", "--model", str(model), "--port", str(port), "--detach", "--name", name,
        cwd=project,
    )  # fmt: skip
    assert served.returncode == 0, (served.stdout + served.stderr)[-3000:]
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=ROWS.encode(),
            headers={"Content-Type": "text/csv", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert resp.status == 200
            predictions = json.loads(resp.read())
    finally:
        stopped = _sagedock("local", "stop", name, cwd=project, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    tolerance = TOLERANCE.get(framework or "", 0.3)
    assert len(predictions) == 2
    for got, want in zip(predictions, EXPECTED, strict=True):
        assert abs(got - want) < tolerance, predictions
