"""Start-up, readiness, crashes and shutdown of the real `sagedock serve`.

Slow hooks in these tests wait for a flag file the test creates, so nothing depends on timing.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

import psutil
import pytest
import requests

from tests.fixtures.serving import FRONTS, ServeFactory, ServeProcess, write_model

BLOCKING = """
    import os, time
    from pathlib import Path

    FLAGS = Path(os.environ["TEST_FLAGS"])

    def wait_for(name):
        for _ in range(6000):
            if (FLAGS / name).exists():
                return
            time.sleep(0.01)
        raise RuntimeError(f"flag {name} never appeared")

    def model_fn(model_dir):
        if os.environ.get("TEST_SLOW_LOAD"):
            wait_for("load")
        return "model"

    def predict_fn(data, model):
        if isinstance(data, dict) and "block" in data:
            (FLAGS / f"started-{os.getpid()}").touch()
            wait_for(data["block"])
        return {"pid": os.getpid()}
"""


def blocking_model(tmp_path: Path) -> tuple[Path, Path]:
    flags = tmp_path / "flags"
    flags.mkdir()
    return write_model(tmp_path / "model", BLOCKING), flags


def started_pid(flags: Path) -> int:
    for _ in range(3000):
        found = list(flags.glob("started-*"))
        if found:
            return int(found[0].name.split("-")[1])
        threading.Event().wait(0.01)
    raise AssertionError("the request never reached predict_fn")


@pytest.mark.parametrize("mode", FRONTS)
def test_ping_is_503_within_2s_while_a_slow_model_fn_loads(
    serve_model: ServeFactory, tmp_path: Path, mode: str
) -> None:
    model, flags = blocking_model(tmp_path)
    env = {"TEST_FLAGS": str(flags), "TEST_SLOW_LOAD": "1"}
    server = serve_model(model, env=env, wait=False, front=mode)
    response = None
    for _ in range(500):
        try:
            response = requests.get(server.url + "/ping", timeout=2)  # SageMaker's 2 s limit
            break
        except requests.ConnectionError:
            threading.Event().wait(0.02)
    assert response is not None, server.log
    assert response.status_code == 503
    assert response.json()["type"] == "ServiceUnavailable"
    # Still loading: still 503, and invocations are refused rather than left hanging.
    assert requests.get(server.url + "/ping", timeout=2).status_code == 503
    assert server.invoke("[1]").status_code == 503
    (flags / "load").touch()
    server.wait_ready()
    assert server.invoke("[1]").status_code == 200


@pytest.mark.parametrize("mode", FRONTS)
def test_sigterm_lets_the_request_in_flight_finish_and_exits_0(
    serve_model: ServeFactory, tmp_path: Path, mode: str
) -> None:
    model, flags = blocking_model(tmp_path)
    server = serve_model(model, env={"TEST_FLAGS": str(flags)}, front=mode)
    result: dict[str, requests.Response] = {}
    thread = threading.Thread(
        target=lambda: result.update(r=server.invoke(json.dumps({"block": "go"})))
    )
    thread.start()
    started_pid(flags)
    server.signal(signal.SIGTERM)
    threading.Event().wait(0.3)  # let the signal reach nginx/gunicorn before releasing
    (flags / "go").touch()
    thread.join(30)
    assert result["r"].status_code == 200, result["r"].text
    assert server.wait(40) == 0, server.log


@pytest.mark.parametrize("mode", FRONTS)
def test_a_worker_killed_mid_request_is_replaced_and_the_endpoint_keeps_answering(
    serve_model: ServeFactory, tmp_path: Path, mode: str
) -> None:
    model, flags = blocking_model(tmp_path)
    server = serve_model(model, env={"TEST_FLAGS": str(flags)}, front=mode)
    server.wait_workers(2)
    result: dict[str, object] = {}

    def call() -> None:
        try:
            result["r"] = server.invoke(json.dumps({"block": "release"}))
        except requests.RequestException as exc:
            result["r"] = exc

    thread = threading.Thread(target=call)
    thread.start()
    victim = started_pid(flags)
    assert victim in {p.pid for p in psutil.Process(server.proc.pid).children(recursive=True)}
    os.kill(victim, signal.SIGKILL)
    (flags / "release").touch()  # after the kill: the victim never answers
    thread.join(30)
    lost = result["r"]
    if mode == "nginx":  # nginx tries it on the other worker, which refuses to run it again
        assert isinstance(lost, requests.Response)
        assert lost.status_code == 500, lost.text
        assert lost.json()["type"] == "WorkerDied"
        assert f"pid {victim}" in lost.json()["message"]
    else:  # the client was connected to the victim itself
        assert isinstance(lost, requests.RequestException)
    for _ in range(10):
        response = server.invoke("[1]")
        assert response.status_code == 200, response.text
    server.wait_ready()
    assert server.alive()


def test_model_fn_failing_at_boot_stops_serve_with_the_reason(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    model = write_model(
        tmp_path / "model",
        """
        def model_fn(model_dir):
            raise FileNotFoundError("no weights in " + str(model_dir))
        """,
    )
    server = serve_model(model, wait=False)
    assert server.wait(60) != 0
    log = server.log
    assert "model_fn failed: FileNotFoundError: no weights in" in log
    assert "the model server could not start" in log
    assert log.count("Booting worker") <= 2  # halted, not crash-looping


def test_transform_fn_beside_input_fn_is_a_startup_error_naming_both(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    model = write_model(
        tmp_path / "model",
        """
        def model_fn(model_dir): return 1
        def input_fn(body, content_type): return body
        def transform_fn(model, body, content_type, accept): return body
        """,
    )
    server = serve_model(model, wait=False)
    assert server.wait(60) != 0
    assert "defines both transform_fn and input_fn" in server.log


@pytest.mark.parametrize("part", ["nginx", "gunicorn"])
def test_serve_exits_non_zero_when_nginx_or_the_gunicorn_master_dies(
    serve_model: ServeFactory, tmp_path: Path, part: str
) -> None:
    model, flags = blocking_model(tmp_path)
    server = serve_model(model, env={"TEST_FLAGS": str(flags)}, front="nginx")
    server.wait_workers(2)
    # Every process serve started, down to the nginx and gunicorn workers.
    tree = psutil.Process(server.proc.pid).children(recursive=True)
    marker = {"nginx": "nginx: master", "gunicorn": "sagedock.serving.server"}[part]
    victim = next(p for p in tree if marker in " ".join(p.cmdline()))
    os.kill(victim.pid, signal.SIGKILL)
    assert server.wait(40) == 1, server.log
    other = {"nginx": "gunicorn", "gunicorn": "nginx"}[part]
    assert f"{part} exited with status -9: stopping" in server.log, server.log
    assert f"{other} exited" not in server.log, server.log
    _, leftovers = psutil.wait_procs([p for p in tree if p.pid != victim.pid], timeout=10)
    assert leftovers == [], [" ".join(p.cmdline()) for p in leftovers]


def test_requirements_are_installed_once_before_the_workers_start(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path / "wheels", "sagedock_req_probe", "VALUE = 42\n")
    model = write_model(
        tmp_path / "model",
        """
        import sagedock_req_probe

        def model_fn(model_dir):
            return sagedock_req_probe.VALUE

        def predict_fn(data, model):
            return {"value": model}
        """,
        {"code/requirements.txt": f"--no-index\n{wheel}\n"},
    )
    site = tmp_path / "site"
    env = {"PIP_TARGET": str(site), "PYTHONPATH": str(site)}
    server = serve_model(model, env=env)
    assert server.invoke("[1]").json() == {"value": 42}
    assert server.log.count("installing ") == 1


def test_requirements_that_fail_to_install_stop_serve_with_pips_message(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    model = write_model(
        tmp_path / "model",
        "def model_fn(model_dir): return 1\n",
        {"code/requirements.txt": "--no-index\nsagedock-no-such-package==9.9\n"},
    )
    server = serve_model(model, wait=False)
    assert server.wait(120) != 0
    assert "ClientError: installing the requirements" in server.log
    assert "sagedock-no-such-package" in server.log


def make_wheel(directory: Path, name: str, source: str) -> Path:
    """A minimal pure-Python wheel holding module *name* (no build tools, no network)."""
    import base64
    import hashlib
    import zipfile

    directory.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-1.0.dist-info"
    files = {
        f"{name}.py": source.encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = directory / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def test_serve_process_tree_is_gone_after_stop(serve_model: ServeFactory, tmp_path: Path) -> None:
    model, flags = blocking_model(tmp_path)
    server: ServeProcess = serve_model(model, env={"TEST_FLAGS": str(flags)}, front="nginx")
    tree = psutil.Process(server.proc.pid).children(recursive=True)
    assert len(tree) >= 4  # nginx master + workers, gunicorn master + 2 workers
    assert server.stop() == 0
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert alive == []


ORPHANS = """
    import os

    def model_fn(model_dir):
        # Leave an orphan behind: it is reparented to PID 1 and exits at once.
        child = os.fork()
        if child == 0:
            if os.fork() == 0:
                os._exit(0)
            os._exit(0)
        os.waitpid(child, 0)
        return "m"

    def predict_fn(data, model):
        return data
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="a PID namespace needs root")
def test_as_pid_1_serve_reaps_orphans_and_stops_on_sigterm(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    import shutil

    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    model = write_model(tmp_path / "model", ORPHANS)
    wrapper = [unshare, "--fork", "--pid", "--mount-proc", sys.executable]
    server = serve_model(model, python=wrapper)
    pid_1 = psutil.Process(server.proc.pid).children()[0]  # serve, PID 1 in the namespace
    assert server.invoke("[1]").status_code == 200
    for _ in range(100):
        zombies = [p for p in pid_1.children() if p.status() == psutil.STATUS_ZOMBIE]
        if not zombies:
            break
        threading.Event().wait(0.05)
    assert zombies == []
    os.kill(pid_1.pid, signal.SIGTERM)
    assert server.wait(40) == 0, server.log
