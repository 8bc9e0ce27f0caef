"""A request that kills the worker running it (a native crash, the OOM killer) takes down that
worker only: behind nginx it is never run again on another worker, the client gets one JSON
error, and the requests queued behind it on the dead worker are answered by the others."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psutil
import pytest
import requests

from tests.fixtures.serving import ServeFactory, ServeProcess, write_model

POISON = """
    import os, signal, time
    from pathlib import Path

    RAN = Path(os.environ["TEST_RAN"])

    def model_fn(model_dir):
        return "model"

    def predict_fn(data, model):
        if isinstance(data, dict) and "poison" in data:
            with RAN.open("a") as ran:  # one line per run of the poison request
                ran.write(f"{os.getpid()}\\n")
            time.sleep(data.get("after", 0))
            if data["poison"] == "exit":  # a native crash ends the process like this
                os._exit(1)
            os.kill(os.getpid(), signal.SIGKILL)  # the OOM killer
        if isinstance(data, dict) and "sleep" in data:
            time.sleep(data["sleep"])
        return {"pid": os.getpid()}
"""


def workers(server: ServeProcess) -> set[int]:
    """PIDs of the gunicorn master's children (the model server workers)."""
    tree = psutil.Process(server.proc.pid).children(recursive=True)
    master = next(p for p in tree if "sagedock.serving.server" in " ".join(p.cmdline()))
    return {p.pid for p in master.children() if p.status() != psutil.STATUS_ZOMBIE}


def poisoned_server(serve_model: ServeFactory, tmp_path: Path) -> tuple[ServeProcess, Path]:
    ran = tmp_path / "ran"
    model = write_model(tmp_path / "model", POISON)
    server = serve_model(model, env={"TEST_RAN": str(ran)}, front="nginx")
    server.wait_workers(2)
    return server, ran


def assert_worker_death_answer(response: requests.Response) -> None:
    assert response.status_code == 500, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == 500
    assert body["type"] == "WorkerDied"
    assert "not run again" in body["message"]
    assert body["request_id"]


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_a_request_that_kills_its_worker_is_answered_once_and_kills_no_other_worker(
    serve_model: ServeFactory, tmp_path: Path, how: str
) -> None:
    server, ran = poisoned_server(serve_model, tmp_path)
    before = workers(server)
    assert len(before) == 2
    response = server.invoke(json.dumps({"poison": how}))
    assert_worker_death_answer(response)
    assert len(ran.read_text().split()) == 1  # run by one worker only
    victim = int(ran.read_text())
    assert victim in before
    (survivor,) = before - {victim}
    assert psutil.pid_exists(survivor) and survivor in workers(server)
    # The victim is replaced; the endpoint answers meanwhile and after.
    for _ in range(10):
        assert server.invoke("[1]").status_code == 200
    server.wait_workers(2)
    assert server.get("/ping").status_code == 200
    assert f"pid {victim}" in response.json()["message"]


def test_requests_queued_behind_the_poison_on_its_worker_are_answered_by_the_others(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    server, ran = poisoned_server(serve_model, tmp_path)
    before = workers(server)
    results: dict[int, requests.Response | Exception] = {}

    def call(index: int, body: dict[str, object]) -> None:
        try:
            results[index] = requests.post(
                f"{server.url}/invocations",
                data=json.dumps(body),
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
        except requests.RequestException as exc:
            results[index] = exc

    # The poison takes a while to die; meanwhile nginx (least_conn) queues some of the other
    # requests on the poisoned worker's connections, where they are never read.
    poison = threading.Thread(target=call, args=(0, {"poison": "sigkill", "after": 1.0}))
    poison.start()
    for _ in range(300):
        if ran.exists():
            break
        threading.Event().wait(0.01)
    others = [threading.Thread(target=call, args=(i, {"sleep": 0.05})) for i in range(1, 13)]
    for thread in others:
        thread.start()
    for thread in [poison, *others]:
        thread.join(60)
    poisoned = results.pop(0)
    assert isinstance(poisoned, requests.Response)
    assert_worker_death_answer(poisoned)
    for index, result in results.items():
        assert isinstance(result, requests.Response), (index, result)
        assert result.status_code == 200, (index, result.text)
    assert len(ran.read_text().split()) == 1
    victim = int(ran.read_text())
    assert before - {victim} <= workers(server)  # the other worker lives on
