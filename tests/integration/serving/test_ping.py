"""``/ping`` answers within SageMaker's 2 s while every worker is busy with a prediction -
behind nginx and without it, with and without a user ``ping_fn``.

A busy worker here is one whose ``predict_fn`` waits for a flag file the test creates only at
the end, so the checks do not depend on how long a prediction takes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.fixtures.serving import FRONTS, ServeFactory, ServeProcess, write_model

#: SageMaker's health-check timeout.
PING_LIMIT = 2.0

BUSY = """
    import os, time
    from pathlib import Path

    FLAGS = Path(os.environ["TEST_FLAGS"])

    def model_fn(model_dir):
        return "model"

    def predict_fn(data, model):
        if isinstance(data, dict) and "block" in data:
            (FLAGS / f"started-{os.getpid()}-{time.monotonic_ns()}").touch()
            for _ in range(6000):
                if (FLAGS / data["block"]).exists():
                    break
                time.sleep(0.01)
        return {"pid": os.getpid()}
"""

PING_FN = """
    def ping_fn(model, context):
        (FLAGS / f"pinged-by-{context.worker_id}").touch()
        return not (FLAGS / "sick").exists()
"""


def busy_server(
    serve_model: ServeFactory, tmp_path: Path, front: str, *, ping_fn: bool, workers: int = 1
) -> tuple[ServeProcess, Path]:
    flags = tmp_path / "flags"
    flags.mkdir()
    model = write_model(tmp_path / "model", BUSY + (PING_FN if ping_fn else ""))
    env = {"TEST_FLAGS": str(flags), "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers)}
    server = serve_model(model, env=env, front=front)
    server.wait_workers(workers)
    return server, flags


def occupy(server: ServeProcess, flags: Path, count: int) -> list[threading.Thread]:
    """Start *count* predictions that block until ``flags/release`` exists; returns once
    each has reached ``predict_fn``."""
    threads = []
    for n in range(count):
        thread = threading.Thread(
            target=requests.post,
            args=(server.url + "/invocations",),
            kwargs={
                "data": json.dumps({"block": "release"}),
                "headers": {"Content-Type": "application/json"},
                "timeout": 60,
            },
            daemon=True,
        )
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 30
        while len(list(flags.glob("started-*"))) <= n:
            assert time.monotonic() < deadline, f"prediction {n} never started:\n{server.log}"
            time.sleep(0.01)
    return threads


def timed_ping(get: Callable[..., requests.Response], url: str) -> tuple[requests.Response, float]:
    """``GET url/ping`` with SageMaker's timeout; the response and the seconds it took."""
    started = time.monotonic()
    response = get(url + "/ping", timeout=PING_LIMIT)
    return response, time.monotonic() - started


@pytest.mark.parametrize("ping_fn", [False, True], ids=["no-ping_fn", "ping_fn"])
@pytest.mark.parametrize("front", FRONTS)
def test_ping_answers_within_2s_while_every_worker_is_busy(
    serve_model: ServeFactory, tmp_path: Path, front: str, ping_fn: bool
) -> None:
    server, flags = busy_server(serve_model, tmp_path, front, ping_fn=ping_fn)
    # A kept-alive connection to the endpoint, made while the worker was idle (without nginx
    # it is a connection to the worker itself).
    assert server.get("/ping").status_code == 200
    threads = occupy(server, flags, 1)
    try:
        for get in (requests.get, server.session.get):  # a new connection, the kept-alive one
            for _ in range(3):
                response, took = timed_ping(get, server.url)
                assert response.status_code == 200, response.text
                assert took < PING_LIMIT
        if ping_fn:
            assert (flags / "pinged-by-0").exists()  # ping_fn ran, with a context
            (flags / "sick").touch()
            response, took = timed_ping(requests.get, server.url)
            assert response.status_code == 503
            assert "ping_fn reported the model unhealthy" in response.json()["message"]
            (flags / "sick").unlink()
    finally:
        (flags / "release").touch()
        for thread in threads:
            thread.join(30)
    # The kept-alive connection still serves predictions after pings were answered on it.
    response = server.invoke(json.dumps([1]))
    assert response.status_code == 200, response.text
    assert server.get("/ping").status_code == 200
    assert server.alive()


@pytest.mark.parametrize("front", FRONTS)
def test_a_busy_worker_leaves_new_requests_to_an_idle_one(
    serve_model: ServeFactory, tmp_path: Path, front: str
) -> None:
    # Without nginx: the busy worker's ping standby must not take them. Behind nginx: every
    # nginx process must know which worker is busy.
    server, flags = busy_server(serve_model, tmp_path, front, ping_fn=False, workers=2)
    threads = occupy(server, flags, 1)
    busy_pid = int(next(flags.glob("started-*")).name.split("-")[1])
    try:
        for _ in range(30):  # each on a new connection: the idle worker answers at once
            response = requests.post(
                server.url + "/invocations",
                data="[1]",
                headers={"Content-Type": "application/json", "Connection": "close"},
                timeout=PING_LIMIT,
            )
            assert response.status_code == 200, response.text
            assert response.json()["pid"] != busy_pid
    finally:
        (flags / "release").touch()
        for thread in threads:
            thread.join(30)


@pytest.mark.parametrize("front", FRONTS)
def test_ping_answers_while_both_workers_are_busy(
    serve_model: ServeFactory, tmp_path: Path, front: str
) -> None:
    server, flags = busy_server(serve_model, tmp_path, front, ping_fn=True, workers=2)
    threads = occupy(server, flags, 2)
    try:
        for _ in range(4):
            response, took = timed_ping(requests.get, server.url)
            assert response.status_code == 200, response.text
            assert took < PING_LIMIT
    finally:
        (flags / "release").touch()
        for thread in threads:
            thread.join(30)


SECOND_WORKER_LOADS_SLOWLY = """
    import os, time
    from pathlib import Path

    FLAGS = Path(os.environ["TEST_FLAGS"])

    def model_fn(model_dir, context):
        for _ in range(6000):
            if context.worker_id == 0 or (FLAGS / "load").exists():
                break
            time.sleep(0.01)
        return "model"

    def predict_fn(data, model):
        return data

    def ping_fn(model):
        return True
"""


def test_behind_nginx_a_ping_fn_is_asked_only_once_every_worker_has_loaded(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    # Until then the ready worker's ping socket answers 503 itself, as nginx does without a
    # ping_fn.
    flags = tmp_path / "flags"
    flags.mkdir()
    model = write_model(tmp_path / "model", SECOND_WORKER_LOADS_SLOWLY)
    env = {"TEST_FLAGS": str(flags), "SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    server = serve_model(model, env=env, wait=False, front="nginx")
    server.wait_workers(1)
    message = "the model is not loaded in every worker yet"
    deadline = time.monotonic() + 30
    while True:  # nginx answers 503 itself until worker 0 has bound its ping socket
        response, took = timed_ping(requests.get, server.url)
        assert response.status_code == 503 and took < PING_LIMIT
        if response.json()["message"] == message:
            break
        assert time.monotonic() < deadline, f"{response.text}\n{server.log}"
        time.sleep(0.05)
    assert response.json()["type"] == "ServiceUnavailable"
    assert response.json()["request_id"]  # nginx's, which the worker's error body names
    (flags / "load").touch()
    server.wait_ready()
    assert server.get("/ping").status_code == 200
