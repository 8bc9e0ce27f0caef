"""The worker's HTTP/1.1 loop, driven over a real unix socket from a thread."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sagedock.serving.httpd import EXIT_TIMEOUT, HttpServer, Watchdog
from sagedock.serving.inflight import InFlight


def echo_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    body = environ["wsgi.input"].read()
    if environ["PATH_INFO"] == "/stream":

        def chunks() -> Iterator[bytes]:
            yield b"one,"
            yield b"two"

        start_response("200 OK", [("Content-Type", "text/plain")])
        return chunks()
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("app bug")
    if environ["PATH_INFO"] == "/empty":
        start_response("204 No Content", [])
        return [b""]
    if environ["PATH_INFO"] == "/bad-header":  # not encodable as latin-1: fails in the server
        start_response("200 OK", [("X-Name", "\u0100"), ("Content-Length", "0")])
        return [b""]
    reply = json.dumps(
        {
            "method": environ["REQUEST_METHOD"],
            "path": environ["PATH_INFO"],
            "query": environ["QUERY_STRING"],
            "body": body.decode("latin-1"),
            "type": environ.get("CONTENT_TYPE"),
            "custom": environ.get("HTTP_X_CUSTOM"),
            "request_id": environ.get("HTTP_X_REQUEST_ID"),
            "length": environ.get("CONTENT_LENGTH"),
        }
    ).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(reply)))]
    )
    return [reply]


class Running:
    def __init__(self, path: Path, server: HttpServer) -> None:
        self.path = path
        self.server = server
        self.alive = True
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(16)
        self.wakeup, self._wake = os.pipe()
        self.thread = threading.Thread(
            target=server.serve, args=([listener], lambda: self.alive, self.wakeup), daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.alive = False
        os.write(self._wake, b"x")
        self.thread.join(5)

    def connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(str(self.path))
        return sock

    def http(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("localhost", timeout=5)
        conn.sock = self.connect()
        return conn


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    server = HttpServer(echo_app, max_body=1000)
    run = Running(tmp_path / "s.sock", server)
    yield run
    run.stop()


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data
        if not chunk:
            return data
        data += chunk


def test_keep_alive_serves_many_requests_on_one_connection(running: Running) -> None:
    conn = running.http()
    for n in range(3):
        conn.request(
            "POST",
            f"/invocations?n={n}",
            body=b"abc",
            headers={"Content-Type": "text/csv", "X-Custom": "v"},
        )
        response = conn.getresponse()
        got = json.loads(response.read())
        assert response.status == 200
        assert got["body"] == "abc" and got["query"] == f"n={n}"
        assert got["type"] == "text/csv" and got["custom"] == "v"
        assert got["request_id"]  # generated when no proxy gave one
    conn.close()


def test_pipelined_requests_are_answered_in_order(running: Running) -> None:
    sock = running.connect()
    request = b"POST /a HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"
    sock.sendall(
        request + request.replace(b"/a", b"/b") + b"GET /c HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    data = read_all(sock)
    assert [p for p in (b'"/a"', b'"/b"', b'"/c"') if p in data] == [b'"/a"', b'"/b"', b'"/c"']
    assert data.index(b'"/a"') < data.index(b'"/b"') < data.index(b'"/c"')
    assert data.count(b"HTTP/1.1 200 OK") == 3


def test_chunked_request_bodies_are_decoded(running: Running) -> None:
    sock = running.connect()
    sock.sendall(
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: x\r\n\r\n"
    )
    data = read_all(sock)
    assert b'"body": "abcde"' in data
    assert b'"length": "5"' in data  # WSGI apps (werkzeug) read CONTENT_LENGTH bytes


def test_expect_100_continue_is_answered_before_the_body(running: Running) -> None:
    sock = running.connect()
    sock.sendall(b"POST /x HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    sock.sendall(b"xyz")
    assert b'"body": "xyz"' in sock.recv(65536)


def test_body_over_the_limit_is_413_json_without_reading_it(running: Running) -> None:
    sock = running.connect()
    sock.sendall(b"POST /x HTTP/1.1\r\nContent-Length: 5000\r\n\r\n")
    data = read_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in head
    assert json.loads(body)["type"] == "PayloadTooLarge"
    assert "SAGEMAKER_MAX_PAYLOAD_IN_MB" in json.loads(body)["message"]


def test_chunked_body_over_the_limit_is_413(running: Running) -> None:
    sock = running.connect()
    chunk = b"%x\r\n%s\r\n" % (600, b"a" * 600)
    sock.sendall(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2)
    assert read_all(sock).startswith(b"HTTP/1.1 413 ")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nNo-Colon\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", b"501"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n", b"431"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 70000, b"431"),  # never ends: not held forever
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", b"431"),
        (b"POST / HTTP/1.1\r\nContent-Length: \xb9\r\n\r\nx", b"400"),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", b"400"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\nx\r\n0\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n", b"400"),
        (b"GET / HTTP/2.0\r\n\r\n", b"400"),
        (
            b"POST / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 1\r\n\r\nx",
            b"400",
        ),
    ],
)
def test_malformed_requests_get_a_json_error_and_the_connection_closes(
    running: Running, request_bytes: bytes, status: bytes
) -> None:
    sock = running.connect()
    sock.sendall(request_bytes)
    data = read_all(sock)
    assert data.startswith(b"HTTP/1.1 " + status)
    assert json.loads(data.partition(b"\r\n\r\n")[2])["code"] == int(status)


def test_a_request_fed_byte_by_byte_is_answered_once_complete(running: Running) -> None:
    sock = running.connect()
    request = b"POST /slow HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz"
    for byte in request:
        sock.sendall(bytes([byte]))
    data = read_all(sock)
    assert data.startswith(b"HTTP/1.1 200 ") and b'"body": "xyz"' in data


def test_a_client_sending_slowly_holds_neither_the_loop_nor_past_the_read_timeout(
    tmp_path: Path,
) -> None:
    run = Running(tmp_path / "t.sock", HttpServer(echo_app, max_body=1000, read_timeout=1.0))
    try:
        slow = run.connect()
        slow.sendall(b"POST /slow HTTP/1.1\r\nContent-Length: 100\r\n\r\n")
        answers = b""
        # One byte per 0.2 s: no single wait is long, the request as a whole is late.
        for _ in range(50):
            other = run.http()  # served meanwhile: the loop is not stuck in slow's body
            other.request("GET", "/other")
            assert other.getresponse().status == 200
            try:
                slow.sendall(b"a")
            except OSError:  # answered and closed meanwhile
                answers += read_all(slow)
                break
            slow.settimeout(0.2)
            try:
                answers += slow.recv(65536)
            except TimeoutError:
                continue
            if answers:
                break
        head, _, body = answers.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), answers
        assert json.loads(body)["type"] == "RequestTimeout"
    finally:
        run.stop()


def test_a_failure_in_the_server_itself_closes_only_that_connection(running: Running) -> None:
    idle = running.http()
    idle.request("GET", "/first")
    assert idle.getresponse().read()
    sock = running.connect()
    sock.sendall(b"GET /bad-header HTTP/1.1\r\n\r\n")
    data = read_all(sock)
    assert data.startswith(b"HTTP/1.1 500 ")
    assert json.loads(data.partition(b"\r\n\r\n")[2])["message"] == (
        "internal error: UnicodeEncodeError"
    )
    idle.request("GET", "/still-served")  # the other connection lives on
    assert idle.getresponse().status == 200


def test_a_request_another_worker_was_running_is_answered_500_and_not_run(
    tmp_path: Path,
) -> None:
    ran: list[str] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        ran.append(environ["HTTP_X_REQUEST_ID"])
        return echo_app(environ, start_response)

    shared = tmp_path / "inflight"
    dead = InFlight(shared, 0, 2)  # the worker in slot 0 ...
    assert dead.begin("a" * 32) is None  # ... starts this request, and dies running it
    run = Running(
        tmp_path / "w.sock", HttpServer(app, max_body=None, inflight=InFlight(shared, 1, 2))
    )
    try:
        conn = run.http()
        conn.request("POST", "/invocations", body=b"x", headers={"X-Request-Id": "a" * 32})
        response = conn.getresponse()
        body = json.loads(response.read())
        assert response.status == 500 and body["type"] == "WorkerDied"
        assert f"pid {os.getpid()}" in body["message"]
        conn.request("POST", "/invocations", body=b"x", headers={"X-Request-Id": "b" * 32})
        assert conn.getresponse().status == 200  # the connection stays usable
        assert ran == ["b" * 32]
    finally:
        run.stop()


def test_the_in_flight_record_finds_only_whole_ids_in_other_slots(tmp_path: Path) -> None:
    one, two = InFlight(tmp_path / "f", 0, 2), InFlight(tmp_path / "f", 1, 2)
    assert one.begin("abcdef") is None
    assert two.begin("bcdef") is None  # a suffix of another id is another id
    assert two.begin("abcde") is None  # and so is a prefix
    assert one.begin("x" * 100) is None  # too long to record: never refused
    assert two.begin("abcde") is None  # its own last request is not a replay
    assert one.begin("abcde") is not None


def test_a_replacement_worker_keeps_the_record_its_dead_predecessor_left(tmp_path: Path) -> None:
    # The replay of the request that killed slot 0's worker can reach slot 1 after gunicorn
    # has started slot 0's replacement: it is still refused, however busy the replacement is.
    dead, other = InFlight(tmp_path / "f", 0, 2), InFlight(tmp_path / "f", 1, 2)
    assert dead.begin("poison") is None
    replacement = InFlight(tmp_path / "f", 0, 2)
    assert replacement.begin("next") is None
    assert other.begin("poison") is not None
    assert other.begin("next") is not None  # the replacement's own request is recorded too
    assert replacement.begin("fresh") is None


def test_head_gets_headers_only_and_http_1_0_closes(running: Running) -> None:
    sock = running.connect()
    sock.sendall(b"HEAD /x HTTP/1.0\r\n\r\n")
    data = read_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Content-Length: " in head and b"Connection: close" in head
    assert body == b""


def test_an_iterator_is_sent_chunked(running: Running) -> None:
    conn = running.http()
    conn.request("GET", "/stream")
    response = conn.getresponse()
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.read() == b"one,two"


def test_a_204_has_no_body_framing_and_the_connection_stays_usable(running: Running) -> None:
    sock = running.connect()
    sock.sendall(
        b"POST /empty HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
        b"GET /after HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    data = read_all(sock)
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 204 No Content")
    assert b"Content-Length" not in first and b"Transfer-Encoding" not in first
    assert rest.startswith(b"HTTP/1.1 200 OK")  # nothing between the 204 and the next answer
    assert b'"/after"' in rest


def test_an_app_that_raises_gets_a_500_json_and_the_server_keeps_going(running: Running) -> None:
    conn = running.http()
    conn.request("GET", "/boom")
    response = conn.getresponse()
    assert response.status == 500
    assert json.loads(response.read())["message"] == "internal error: RuntimeError"
    conn = running.http()
    conn.request("GET", "/ok")
    assert conn.getresponse().status == 200


def test_stopping_closes_idle_connections(running: Running) -> None:
    sock = running.connect()
    sock.sendall(b"GET /x HTTP/1.1\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    running.stop()
    assert not running.thread.is_alive()
    assert read_all(sock) == b""


def test_watchdog_answers_504_and_ends_the_process_past_the_deadline() -> None:
    exits: list[int] = []
    ours, client = socket.socketpair()
    client.settimeout(5)
    watchdog = Watchdog(0.1, exit_process=exits.append)
    watchdog.arm(ours, "req-1", "POST /invocations")
    data = client.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 504 ")
    assert json.loads(body)["request_id"] == "req-1"
    for _ in range(100):
        if exits:
            break
        time.sleep(0.01)
    assert exits == [EXIT_TIMEOUT]
    assert watchdog.disarm() is False


def test_a_disarmed_watchdog_stays_quiet() -> None:
    exits: list[int] = []
    ours, _peer = socket.socketpair()
    watchdog = Watchdog(0.05, exit_process=exits.append)
    watchdog.arm(ours, "r", "x")
    assert watchdog.disarm() is True
    time.sleep(0.2)
    assert exits == []


def test_a_watchdog_armed_for_a_stream_cuts_the_connection_instead_of_answering_504() -> None:
    exits: list[int] = []
    ours, client = socket.socketpair()
    client.settimeout(5)
    watchdog = Watchdog(0.1, exit_process=exits.append)
    watchdog.arm(ours, "req-2", "POST /invocations, streamed", streaming=True)
    assert client.recv(65536) == b""  # closed without a (second) response head
    for _ in range(100):
        if exits:
            break
        time.sleep(0.01)
    assert exits == [EXIT_TIMEOUT]


def test_busy_since_identifies_the_app_call_in_progress() -> None:
    ours, _peer = socket.socketpair()
    watchdog = Watchdog(60, exit_process=lambda status: None)
    assert watchdog.busy_since() is None
    watchdog.arm(ours, "r", "x")
    since = watchdog.busy_since()
    assert since is not None and abs(since - time.monotonic()) < 1
    with watchdog.while_busy(since) as busy:
        assert busy is ours
    assert watchdog.disarm() is True
    with watchdog.while_busy(since) as busy:
        assert busy is None  # that call is over


class ReArmingClock:
    """A clock the test sets, which - the first time the watchdog's thread reads it - moves
    past the current deadline and has the serving thread's next arm happen right then: the
    disarm and arm that can fall between the watchdog's look at the deadline and its lock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.between: Callable[[], None] | None = None

    def __call__(self) -> float:
        between, self.between = self.between, None
        if between is not None and threading.current_thread().name == "request-watchdog":
            between()
        elif between is not None:
            self.between = between  # not the watchdog's read: keep waiting for it
        return self.now


def test_a_watchdog_never_fires_on_the_arm_that_came_after_the_expired_one() -> None:
    exits: list[int] = []
    ours, client = socket.socketpair()
    client.settimeout(0.5)
    clock = ReArmingClock()
    watchdog = Watchdog(1.0, exit_process=exits.append, clock=clock)
    watchdog.arm(ours, "req-1", "POST /invocations")  # deadline 1.0
    rearmed = threading.Event()

    def next_request() -> None:
        clock.now = 2.0  # past the first deadline
        assert watchdog.disarm() is True
        watchdog.arm(ours, "req-2", "POST /invocations")  # deadline 3.0: not passed
        rearmed.set()

    clock.between = next_request
    assert rearmed.wait(5)
    time.sleep(0.3)  # a few more of the watchdog's looks
    assert exits == [] and not watchdog.fired
    with pytest.raises(TimeoutError):
        client.recv(65536)  # no 504 went down the connection of the next request
    assert watchdog.disarm() is True
