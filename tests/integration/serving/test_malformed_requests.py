"""Malformed and slow clients against the real ``sagedock serve``, over raw sockets: every bad
head is a 4xx with our JSON body, whichever front answers the port, and no client can end or
pin a worker."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from tests.fixtures.serving import ServeProcess, running_server, write_model

INFERENCE = """
    import os

    def model_fn(model_dir):
        return "model"

    def predict_fn(data, model):
        return {"pid": os.getpid(), "data": data}
"""

#: The first bytes of a TLS 1.2 ClientHello, as a client that speaks HTTPS to the plain port
#: sends them.
TLS_HELLO = bytes.fromhex("16030100a5010000a10303") + bytes(32) + bytes.fromhex("000020c02b")


def exchange(server: ServeProcess, data: bytes) -> bytes:
    """Send *data* on a fresh connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall(data)
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    return got


def json_error(answer: bytes, status: int) -> dict[str, object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), answer[:300]
    assert b"Content-Type: application/json" in head, head
    parsed = json.loads(body)
    assert parsed["code"] == status
    assert parsed["request_id"]
    return parsed


def workers(server: ServeProcess) -> set[int]:
    tree = psutil.Process(server.proc.pid).children(recursive=True)
    master = next(p for p in tree if "sagedock.serving.server" in " ".join(p.cmdline()))
    return {p.pid for p in master.children() if p.status() != psutil.STATUS_ZOMBIE}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("malformed") / "model", INFERENCE)


@pytest.fixture(scope="module")
def nginx(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with running_server(
        model, base_dir=tmp_path_factory.mktemp("nginx-front"), front="nginx"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def direct(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with running_server(
        model, base_dir=tmp_path_factory.mktemp("gunicorn-front"), front="gunicorn"
    ) as server:
        server.wait_workers(2)
        yield server


# -- nginx in front -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1 extra\r\n\r\n", TLS_HELLO],
    ids=["garbage-request-line", "request-line-with-4-parts", "tls-client-hello"],
)
def test_nginx_answers_a_malformed_request_line_400_json(nginx: ServeProcess, data: bytes) -> None:
    body = json_error(exchange(nginx, data), 400)
    assert body["type"] == "BadRequest"


def test_nginx_answers_a_uri_over_8_kib_414_json(nginx: ServeProcess) -> None:
    answer = exchange(nginx, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    body = json_error(answer, 414)
    assert body["type"] == "URITooLong"


def test_nginx_answers_headers_over_its_buffers_431_json(nginx: ServeProcess) -> None:
    answer = exchange(nginx, b"GET /ping HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n")
    body = json_error(answer, 431)
    assert body["type"] == "RequestHeaderFieldsTooLarge"


# -- the workers on the port (no nginx) -----------------------------------------------------------
def post_head(extra: str) -> bytes:
    return (
        "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra
    ).encode("latin-1")


@pytest.mark.parametrize(
    "data",
    [
        post_head("Content-Length: \xb9\r\n\r\n[1]"),  # a non-ASCII digit (latin-1)
        post_head("Content-Length: \xb9\r\n\r\n[1]"),  # twice: both workers would be gone
        post_head("Content-Length: +3\r\n\r\n[1]"),
        post_head("Content-Length: 3\r\nContent-Length: 4\r\n\r\n[1]"),
        post_head("Transfer-Encoding: chunked\r\n\r\n0x3\r\n[1]\r\n0\r\n\r\n"),
        post_head("Transfer-Encoding: chunked\r\n\r\n+3\r\n[1]\r\n0\r\n\r\n"),
        post_head("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\n[1]\r\n0\r\n\r\n"),
        post_head("X Bad: 1\r\nContent-Length: 3\r\n\r\n[1]"),
        post_head("X-Nul: a\x00b\r\nContent-Length: 3\r\n\r\n[1]"),
        b"GET /ping HTTP/1.1\nHost: x\n\n",
        b"GET /ping\r\n\r\n",
        b"GET /ping HTTP/9.9\r\n\r\n",
        b"GARBAGE\r\n\r\n",
    ],
    ids=[
        "content-length-superscript-one",
        "content-length-superscript-one-again",
        "content-length-plus-sign",
        "two-different-content-lengths",
        "chunk-size-0x",
        "chunk-size-plus",
        "chunked-and-content-length",
        "space-in-header-name",
        "nul-in-header-value",
        "bare-lf-line-ends",
        "http-0.9-request-line",
        "http-version-9.9",
        "garbage-request-line",
    ],
)
def test_a_malformed_head_is_400_json_and_the_worker_lives_on(
    direct: ServeProcess, data: bytes
) -> None:
    before = workers(direct)
    body = json_error(exchange(direct, data), 400)
    assert body["type"] == "BadRequest"
    assert workers(direct) == before
    assert direct.invoke("[1]").status_code == 200


def test_clients_trickling_their_bodies_do_not_pin_the_workers(direct: ServeProcess) -> None:
    stop = threading.Event()
    trickling: list[socket.socket] = []

    def trickle() -> None:
        sock = socket.create_connection(("127.0.0.1", direct.port), timeout=30)
        trickling.append(sock)
        sock.sendall(post_head("Content-Length: 100000\r\n\r\n["))
        with sock:
            while not stop.wait(0.2):
                try:
                    sock.sendall(b"1")
                except OSError:
                    return

    threads = [threading.Thread(target=trickle) for _ in range(2)]  # one per worker
    for thread in threads:
        thread.start()
    try:
        for _ in range(3):
            response = requests.post(
                f"{direct.url}/invocations",
                data="[2]",
                headers={"Content-Type": "application/json"},
                timeout=15,
            )
            assert response.status_code == 200
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
