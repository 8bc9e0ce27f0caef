"""The ping standby beside a busy serving thread, over real sockets: a running
:class:`HttpServer` whose serving thread the test holds in the app (so the real watchdog
records the call), kept-alive connections that are socketpairs handed to the server, and one
unix listener. The test drives the standby's looks (``_step``) itself, one at a time."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sagedock.serving.httpd import Connection, HttpServer, Watchdog
from sagedock.serving.ping_standby import HOLD, POLL, PingStandby

PING = b"GET /ping HTTP/1.1\r\n\r\n"


class Gates:
    """``POST /block/<name>`` waits in the app until the test opens the gate *name*."""

    def __init__(self) -> None:
        self.entered: dict[str, threading.Event] = {}
        self.opened: dict[str, threading.Event] = {}

    def add(self, name: str) -> None:
        self.entered[name] = threading.Event()
        self.opened[name] = threading.Event()

    def open_all(self) -> None:
        for gate in self.opened.values():
            gate.set()


def serving_app(gates: Gates) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        body = environ["wsgi.input"].read()
        path = environ["PATH_INFO"]
        if path.startswith("/block/"):
            name = path.removeprefix("/block/")
            gates.entered[name].set()
            gates.opened[name].wait(30)
        elif path != "/ping":
            body = path.encode() + b" " + body
        reply = b"serving " + body
        start_response(
            "200 OK",
            [
                ("Content-Length", str(len(reply))),
                ("X-Thread", threading.current_thread().name),
            ],
        )
        return [reply]

    return app


def standby_ping(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response("200 OK", [("Content-Length", "7"), ("X-Thread", "standby")])
    return [b"standby"]


class Client:
    """A client end reading whole responses (``Content-Length`` framed) off its socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(5)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self, timeout: float = 5) -> tuple[str, bytes] | None:
        """``(X-Thread, body)`` of the next response; None when the server closed."""
        self.sock.settimeout(timeout)
        while b"\r\n\r\n" not in self.buf:
            if not self._more():
                return None
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 200"), lines[0]
        headers = dict(line.split(": ", 1) for line in lines[1:])
        length = int(headers["Content-Length"])
        while len(self.buf) < length:
            assert self._more(), "closed mid-body"
        body, self.buf = self.buf[:length], self.buf[length:]
        return headers["X-Thread"], body

    def nothing_yet(self) -> bool:
        """True when no byte (nor the end) has arrived."""
        self.sock.setblocking(False)
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(5)
        return False

    def _more(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)


class Busy:
    """The server, its serving thread (``serving``), the watchdog and a standby."""

    def __init__(self, tmp_path: Path, pinger_app: Callable[..., Any] = standby_ping) -> None:
        self.gates = Gates()
        self.watchdog = Watchdog(60, exit_process=lambda status: None)
        self.server = HttpServer(serving_app(self.gates), max_body=None, watchdog=self.watchdog)
        self.standby = PingStandby(
            self.server, self.watchdog, HttpServer(pinger_app, max_body=None), lambda: True
        )
        self.path = tmp_path / "listener.sock"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.path))
        self.listener.listen(16)
        self.alive = True
        self._wakeup_r, self._wakeup_w = os.pipe()
        self.thread = threading.Thread(
            target=self.server.serve,
            args=([self.listener], lambda: self.alive, self._wakeup_r),
            name="serving",
            daemon=True,
        )
        self.thread.start()

    def idle(self) -> Client:
        """A kept-alive connection the serving thread watches (a socketpair handed to it),
        proven by a ping it answered."""
        ours, theirs = socket.socketpair()
        self.server.give_back(Connection(ours, "pair"))
        client = Client(theirs)
        client.send(PING)
        assert client.response() == ("serving", b"serving ")
        return client

    def connect(self) -> Client:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(self.path))
        return Client(sock)

    def start_blocking(self, client: Client, name: str) -> None:
        self.gates.add(name)
        client.send(b"POST /block/%s HTTP/1.1\r\nContent-Length: 0\r\n\r\n" % name.encode())

    def in_app(self, name: str) -> float:
        """Wait until the serving thread is in the app for gate *name*; the call's ``since``."""
        assert self.gates.entered[name].wait(5)
        since = self.watchdog.busy_since()
        assert since is not None
        return since

    def hold(self, name: str) -> tuple[Client, float]:
        """A new kept-alive connection whose request holds the serving thread in the app."""
        client = self.idle()
        self.start_blocking(client, name)
        return client, self.in_app(name)

    def release(self, name: str, client: Client) -> None:
        self.gates.opened[name].set()
        assert client.response() == ("serving", b"serving ")

    def stop(self) -> None:
        self.gates.open_all()
        self.alive = False
        os.write(self._wakeup_w, b"x")
        self.thread.join(5)
        os.close(self._wakeup_w)
        os.close(self._wakeup_r)


@pytest.fixture
def busy(tmp_path: Path) -> Iterator[Busy]:
    running = Busy(tmp_path)
    yield running
    running.stop()


def test_a_ping_is_answered_beside_the_app_and_the_pipelined_post_after_it_by_the_serving_thread(
    busy: Busy,
) -> None:
    kept = busy.idle()
    holder, since = busy.hold("a")
    kept.send(PING + b"POST /invocations HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
    assert busy.standby._step(since)
    assert kept.response() == ("standby", b"standby")
    assert kept.nothing_yet()  # the POST waits for the serving thread
    busy.release("a", holder)
    assert kept.response() == ("serving", b"serving /invocations abc")
    kept.send(PING)  # and the connection goes on, watched by the serving thread again
    assert kept.response() == ("serving", b"serving ")


def test_an_idle_connection_answered_by_the_standby_is_watched_again_while_the_app_runs(
    busy: Busy,
) -> None:
    kept = busy.idle()
    holder, since = busy.hold("a")
    for _ in range(2):
        kept.send(PING)
        assert busy.standby._step(since)
        assert kept.response() == ("standby", b"standby")
    busy.release("a", holder)
    kept.send(PING)
    assert kept.response() == ("serving", b"serving ")


def test_a_stale_event_of_a_connection_the_standby_answered_is_skipped(busy: Busy) -> None:
    # The serving thread fetches the events of A and B together, then spends A's request in
    # the app; meanwhile the standby takes B, answers its ping and watches it again. B's
    # event is stale then: reading B would wait READ_TIMEOUT (60 s) for nothing.
    first, second, other = busy.idle(), busy.idle(), busy.idle()
    holder, _ = busy.hold("hold")
    busy.start_blocking(first, "a")
    time.sleep(0.05)  # B's data after A's: epoll lists A's event first
    second.send(PING)
    busy.gates.opened["hold"].set()
    assert holder.response() == ("serving", b"serving ")
    since = busy.in_app("a")
    assert busy.standby._step(since)
    assert second.response() == ("standby", b"standby")  # B's event was in the batch
    busy.release("a", first)
    other.send(PING)
    assert other.response(timeout=2) == ("serving", b"serving ")  # not stuck reading B
    second.send(PING)
    assert second.response(timeout=2) == ("serving", b"serving ")


def test_when_answering_one_connection_fails_the_others_go_back_to_the_serving_thread(
    tmp_path: Path,
) -> None:
    def broken_pinger(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return [b""]  # a bug: no start_response (the server fails on it, outside the app)

    busy = Busy(tmp_path, broken_pinger)
    try:
        kept = [busy.idle(), busy.idle(), busy.idle()]
        holder, since = busy.hold("a")
        for client in kept:
            client.send(PING)
        with pytest.raises(ValueError):
            busy.standby._step(since)
        busy.release("a", holder)
        answers = [client.response(timeout=2) for client in kept]
        # The one being answered is closed (its state is unknown); the others' pings are
        # answered by the serving thread once the app call is over.
        assert sorted(answers, key=str) == [("serving", b"serving ")] * 2 + [None]
    finally:
        busy.stop()


def test_a_new_connection_is_taken_only_after_probes_found_the_backlog_full_for_hold(
    busy: Busy,
) -> None:
    assert POLL >= HOLD  # one look apart is enough, as long as every probe finds it
    holder, since = busy.hold("a")
    waiting = busy.connect()
    waiting.send(PING)
    assert busy.standby._step(since)  # the first probe to find it: its clock starts
    assert waiting.nothing_yet()
    sibling, _ = busy.listener.accept()  # a sibling worker takes it: the backlog is empty
    sibling.close()
    assert busy.standby._step(since)  # a probe finds the backlog empty: the clock restarts
    late = busy.connect()
    late.send(PING)
    assert busy.standby._step(since)  # found on one probe only, however long ago the first
    assert late.nothing_yet()
    assert busy.standby._step(since)  # found again a look later: taken and answered
    assert late.response() == ("standby", b"standby")
    busy.release("a", holder)


def test_connections_an_idle_sibling_takes_at_once_are_never_taken(busy: Busy) -> None:
    # Steady arrivals, each accepted by "a sibling" 20 ms after it connected: the standby
    # must not race it, however long the arrivals go on (it never waits on the listener).
    holder, since = busy.hold("a")
    looks = []
    for _ in range(8):
        look = threading.Thread(target=lambda: looks.append(busy.standby._step(since)))
        look.start()
        time.sleep(0.01)  # within the look's wait (POLL) for its idle connections
        arrival = busy.connect()
        arrival.send(PING)
        time.sleep(0.02)
        try:
            sibling, _ = busy.listener.accept()
        except BlockingIOError:
            pytest.fail("the standby took a connection an idle sibling was about to take")
        sibling.close()
        look.join(5)
    assert looks == [True] * 8
    busy.release("a", holder)


def test_a_connection_handed_back_after_the_server_stopped_is_closed(tmp_path: Path) -> None:
    busy = Busy(tmp_path)
    busy.stop()
    assert not busy.thread.is_alive()
    ours, theirs = socket.socketpair()
    busy.server.give_back(Connection(ours, "pair"))  # e.g. the standby finishing late
    assert Client(theirs).response(timeout=2) is None  # closed, not left open forever
