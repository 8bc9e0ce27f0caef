"""The HTTP/1.1 loop inside each worker: keep-alive connections in, WSGI app calls, responses out.

One thread, one request at a time, many idle keep-alive connections (``selectors``/epoll): the
shape of a gunicorn sync worker that keeps connections open. That is what a CPU-bound model
wants - no thread hand-offs, no green threads that never yield - and with nginx in front
(which holds the client connections and reuses upstream ones) it is also what nginx wants.
The per-request path is short on purpose: parse the head, read the body, call the app, write
the response in one ``sendall`` where it fits.

Requests are parsed by llhttp (:mod:`.request_reader`: bad request line or header: 400; head
over 64 KiB: 431; body over the limit: 413 without reading it, then the connection closes).
``Transfer-Encoding: chunked`` request bodies and ``Expect: 100-continue`` are handled. A
request arrives without blocking the loop: its bytes are parsed as they come, and the app is
called once it is complete, so a client that sends its body slowly holds its connection, never
the worker; a request must arrive whole within *read_timeout* of its first byte (else 408).
Any failure while answering one connection closes that connection only. A response without
``Content-Length`` (an iterator from the app) is sent chunked; ``HEAD``, 204 and 304 get no
body. Errors produced here have the same JSON body as the app's.

Behind nginx, an :class:`~.inflight.InFlight` record keeps a request whose worker died
running it from being run again by another worker (nginx retries it there).

A :class:`Watchdog` bounds the time a request may spend in the app: past the deadline it answers
504 on the request's socket from its own thread and ends the process (gunicorn starts a new
worker), since the app's thread may be stuck anywhere, even in C code. A streamed response is
bounded chunk by chunk, as nginx's read timeout bounds it: each chunk must come within the
timeout of the one before (a stream may run as long as it keeps producing); past it the stream
is cut off - its head has gone out, so there is no 504 to send - and the process ends.

While the one thread is in the app, a helper thread may answer ``/ping`` on the server's idle
connections and listeners (:mod:`.ping_standby`): :meth:`HttpServer.take` and
:meth:`HttpServer.give_back` hand connections over, under :meth:`Watchdog.while_busy`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import selectors
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import unquote

from .errors import InferenceError, RequestTimeout, error_body
from .inflight import InFlight
from .request_reader import HttpError, Request, RequestReader

log = logging.getLogger(__name__)
access_log = logging.getLogger("sagedock.serving.access")

RECV_SIZE = 256 * 1024
#: Bodies up to this size are sent with the head in one ``sendall``.
COALESCE_LIMIT = 256 * 1024
#: Seconds a client may take to send a request whole, from its first byte.
READ_TIMEOUT = 60.0
#: Exit status of a worker the watchdog ends (anything but gunicorn's 3 and 4).
EXIT_TIMEOUT = 75

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def new_request_id() -> str:
    return os.urandom(8).hex()


class Watchdog:
    """Answers 504 for a request that outlives *timeout* and ends the process.

    The server :meth:`arm`\\ s it before calling the app and :meth:`disarm`\\ s it before
    writing the response; ``disarm`` returns False when the watchdog has answered already.
    For a streamed response it is armed again around each chunk (``streaming=True``): then,
    past the deadline, the connection is cut instead of answered.
    :attr:`before_answer` (given the request's socket) runs first: the server uses it to stop
    listening and close its idle connections, so that nginx drops them before the 504 even
    reaches the client - and never sends the client's next request down one of them.
    *clock* gives the time the deadlines are counted in (``time.monotonic``).
    """

    def __init__(
        self,
        timeout: float,
        *,
        exit_process: Callable[[int], None] = os._exit,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self._exit = exit_process
        self._clock = clock
        self.before_answer: Callable[[socket.socket], None] | None = None
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._sock: socket.socket | None = None
        self._request_id = ""
        self._what = ""
        self._streaming = False
        self.fired = False
        self._thread = threading.Thread(target=self._loop, name="request-watchdog", daemon=True)
        self._thread.start()

    def arm(
        self, sock: socket.socket, request_id: str, what: str, *, streaming: bool = False
    ) -> None:
        self._sock, self._request_id, self._what = sock, request_id, what
        self._streaming = streaming
        self._deadline = self._clock() + self.timeout

    def disarm(self) -> bool:
        with self._lock:
            self._deadline = None
            return not self.fired

    # -- for a thread that works beside the app's (ping_standby) ---------------------------
    def busy_since(self) -> float | None:
        """When the app's current call started (``time.monotonic``), None when no call is
        in progress. The value identifies the call, for :meth:`while_busy`."""
        deadline = self._deadline
        return None if deadline is None else deadline - self.timeout

    @contextlib.contextmanager
    def while_busy(self, since: float) -> Iterator[socket.socket | None]:
        """Hold off :meth:`disarm` (the app thread's way back to its connections) for the
        block, when the call that started at *since* is still in progress: yields the
        request's socket (which the block must not touch), or None when that call is over."""
        with self._lock:
            if self.fired or self.busy_since() != since:
                yield None
            else:
                yield self._sock

    def _loop(self) -> None:
        interval = min(0.25, max(0.01, self.timeout / 8))
        while True:
            time.sleep(interval)
            deadline = self._deadline
            if deadline is None or self._clock() < deadline:
                continue
            with self._lock:
                # Looked at again under the lock: the serving thread may have disarmed and
                # armed again (the next request, the next chunk) since the look above.
                deadline = self._deadline
                if deadline is None or self._sock is None or self._clock() < deadline:
                    continue
                self.fired = True
                if self.before_answer is not None:
                    try:
                        self.before_answer(self._sock)
                    except Exception:
                        log.exception("cleaning up before the 504 failed")
                if self._streaming:
                    self._cut(self._sock)
                else:
                    self._answer(self._sock)
            self._exit(EXIT_TIMEOUT)
            return

    def _cut(self, sock: socket.socket) -> None:
        log.error(
            "request %s (%s): the response stream produced no chunk within "
            "SAGEMAKER_MODEL_SERVER_TIMEOUT=%gs: cut off; this worker exits and a new one "
            "replaces it",
            self._request_id,
            self._what,
            self.timeout,
        )
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def _answer(self, sock: socket.socket) -> None:
        error = RequestTimeout(
            f"the model did not answer within {self.timeout:g} s (SAGEMAKER_MODEL_SERVER_TIMEOUT)"
        )
        log.error(
            "request %s (%s) exceeded SAGEMAKER_MODEL_SERVER_TIMEOUT=%gs: answered 504; "
            "this worker exits and a new one replaces it",
            self._request_id,
            self._what,
            self.timeout,
        )
        try:
            sock.settimeout(2.0)
            sock.sendall(error_head_and_body(error, self._request_id, close=True))
        except OSError:
            pass


def error_head_and_body(error: InferenceError, request_id: str | None, *, close: bool) -> bytes:
    """A complete HTTP/1.1 error response with the JSON body."""
    body = error_body(error, request_id)
    reason = _reason(error.status)
    head = (
        f"HTTP/1.1 {error.status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode("latin-1") + body


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


_WAKEUP = object()
_RETURNED = object()


class Connection:
    """A client connection: its socket, the peer for logs, and the reader of its requests
    (requests received but not answered yet are in ``reader.ready``)."""

    __slots__ = ("peer", "reader", "sock")

    def __init__(self, sock: socket.socket, peer: str, max_body: int | None = None) -> None:
        self.sock = sock
        self.peer = peer
        self.reader = RequestReader(max_body)

    def feed(self, data: bytes) -> None:
        self.reader.feed(data)

    @property
    def idle(self) -> bool:
        """Nothing received that is not answered yet: waiting for the next request."""
        reader = self.reader
        return (
            not reader.ready
            and reader.started is None
            and reader.error is None
            and not reader.upgraded
        )

    def handed_over(self) -> Connection:
        """The same connection as a new object, for watching it again after another thread
        held it: a readiness event the serving thread fetched before the hand-over names the
        old object, and is thereby known to be stale (the serving loop checks identity)."""
        conn = Connection.__new__(Connection)
        conn.sock, conn.peer, conn.reader = self.sock, self.peer, self.reader
        return conn


def accept(listener: socket.socket, max_body: int | None = None) -> Connection | None:
    """A new connection from *listener* (non-blocking), None when another process or thread
    took it first (or accepting failed: out of descriptors, say - the loop carries on)."""
    try:
        sock, addr = listener.accept()
    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
        return None
    except OSError as exc:
        log.warning("accepting a connection failed: %s", exc)
        return None
    sock.settimeout(READ_TIMEOUT)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = str(addr[0])
    else:
        peer = "unix"
    return Connection(sock, peer, max_body)


class HttpServer:
    """Serves a WSGI *app* on listening sockets until told to stop.

    :param max_body: largest request body in bytes (None: no limit); larger ones get 413.
    :param watchdog: bounds the app's time per request (None: unbounded).
    :param tick: called at least every second, and per streamed chunk (gunicorn heartbeat).
    :param access_log: log one line per request (``/ping`` only if *log_ping*).
    :param read_timeout: seconds a request may take to arrive, from its first byte (408).
    :param inflight: behind nginx, the workers' shared record of running requests.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        max_body: int | None,
        server_name: str = "localhost",
        server_port: str = "8080",
        watchdog: Watchdog | None = None,
        tick: Callable[[], None] = lambda: None,
        access_log: bool = False,
        log_ping: bool = False,
        read_timeout: float = READ_TIMEOUT,
        inflight: InFlight | None = None,
    ) -> None:
        self.app = app
        self.read_timeout = read_timeout
        self.inflight = inflight
        self.max_body = max_body
        self.watchdog = watchdog
        self.tick = tick
        self.access_log = access_log
        self.log_ping = log_ping
        self._base_environ: dict[str, Any] = {
            "SCRIPT_NAME": "",
            "SERVER_NAME": server_name,
            "SERVER_PORT": server_port,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        self._selector: selectors.BaseSelector | None = None
        self._conns: dict[int, Connection] = {}
        self._listeners: list[socket.socket] = []
        self._alive: Callable[[], bool] = lambda: True
        # Connections another thread hands back (give_back), and the pipe that wakes the loop;
        # the lock keeps give_back from writing to the pipe while serve() closes it, and from
        # queueing a connection nobody will adopt once serve() has ended.
        self._returned: deque[Connection] = deque()
        self._returned_pipe: tuple[int, int] | None = None
        self._returned_lock = threading.Lock()
        self._ended = False

    # -- the loop ---------------------------------------------------------------------------
    def serve(
        self,
        listeners: list[socket.socket],
        alive: Callable[[], bool],
        wakeup_fd: int | None = None,
    ) -> None:
        """Accept and answer until *alive* returns False, then close every connection
        (the request in progress, if any, is finished first). *wakeup_fd* (the signal wakeup
        pipe) ends a wait at once when it becomes readable."""
        selector = selectors.DefaultSelector()
        self._selector = selector
        self._alive = alive
        self._listeners = list(listeners)
        for listener in listeners:
            listener.setblocking(False)
            selector.register(listener, selectors.EVENT_READ, None)
        if wakeup_fd is not None:
            selector.register(wakeup_fd, selectors.EVENT_READ, _WAKEUP)
        returned_r, returned_w = os.pipe()
        os.set_blocking(returned_w, False)
        selector.register(returned_r, selectors.EVENT_READ, _RETURNED)
        with self._returned_lock:
            self._returned_pipe = (returned_r, returned_w)
            self._ended = False
            if self._returned:  # handed back before the loop started
                os.write(returned_w, b"\0")
        last_tick = 0.0
        try:
            while alive():
                events = selector.select(1.0)
                now = time.monotonic()
                if now - last_tick >= 1.0:
                    self.tick()
                    self._drop_late(now)
                    last_tick = now
                for key, _ in events:
                    if key.data is None:
                        self._accept(key.fileobj)  # type: ignore[arg-type]
                    elif key.data is _WAKEUP:
                        with contextlib.suppress(OSError):
                            os.read(key.fd, 4096)
                    elif key.data is _RETURNED:
                        self._adopt_returned(key.fd)
                    elif (conn := self._conns.get(key.fd)) is key.data and conn is not None:
                        # An event is stale when another thread took its connection while this
                        # one was in the app (a recv would then wait for the timeout): a taken
                        # connection is out of _conns, and one watched again is a new object
                        # (Connection.handed_over). Level-triggered: a fresh event follows.
                        self._readable(conn)
                    if not alive():
                        break
        finally:
            for listener in listeners:
                selector.unregister(listener)
            if wakeup_fd is not None:
                selector.unregister(wakeup_fd)
            selector.unregister(returned_r)
            with self._returned_lock:
                self._returned_pipe = None
                self._ended = True
                os.close(returned_r)
                os.close(returned_w)
                late = list(self._returned)
                self._returned.clear()
            for conn in list(self._conns.values()):
                self._close(conn)
            for conn in late:
                conn.sock.close()
            selector.close()

    def _accept(self, listener: socket.socket) -> None:
        conn = accept(listener, self.max_body)
        if conn is not None:
            self._watch(conn)

    def _drop_late(self, now: float) -> None:
        """Answer 408 on, and close, every connection whose request has been arriving for
        longer than the read timeout (however steadily its bytes trickle in)."""
        for conn in list(self._conns.values()):
            started = conn.reader.started
            if started is not None and now - started > self.read_timeout:
                self._send_error(conn, _late(self.read_timeout))
                self._close(conn)

    def _watch(self, conn: Connection) -> None:
        self._conns[conn.sock.fileno()] = conn
        assert self._selector is not None
        self._selector.register(conn.sock, selectors.EVENT_READ, conn)

    # -- handing connections to another thread and back ------------------------------------
    @property
    def listeners(self) -> list[socket.socket]:
        return list(self._listeners)

    def idle_connections(self, busy: socket.socket | None) -> list[Connection]:
        """The kept-alive connections waiting for a request (all but *busy*'s). Only while
        the serving thread is in the app (:meth:`Watchdog.while_busy`)."""
        return [conn for conn in self._conns.values() if conn.sock is not busy]

    def take(self, conn: Connection) -> None:
        """Stop watching *conn*: the caller's thread owns it until :meth:`give_back` or
        :meth:`rewatch`. Only while the serving thread is in the app
        (:meth:`Watchdog.while_busy`)."""
        self._conns.pop(conn.sock.fileno(), None)
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(conn.sock)

    def rewatch(self, conn: Connection) -> None:
        """Watch a taken *conn* again, :attr:`~Connection.idle`. Only while the serving
        thread is in the app (:meth:`Watchdog.while_busy`)."""
        self._watch(conn.handed_over())

    def give_back(self, conn: Connection) -> None:
        """Hand *conn* (taken, or accepted by another thread) to the serving thread, which
        answers what is in its buffer, then watches it; closed when the server has stopped.
        Any thread, any time."""
        conn.sock.settimeout(READ_TIMEOUT)
        with self._returned_lock:
            if self._ended:
                conn.sock.close()
                return
            self._returned.append(conn.handed_over())
            if self._returned_pipe is not None:
                with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending
                    os.write(self._returned_pipe[1], b"\0")

    def _adopt_returned(self, fd: int) -> None:
        with contextlib.suppress(OSError):
            os.read(fd, 4096)
        while self._returned:
            conn = self._returned.popleft()
            self._watch(conn)
            if not conn.idle:
                self._process(conn)

    def abandon(self, keep: socket.socket) -> None:
        """Stop listening and close every connection but *keep*, from another thread, while
        the serving thread is stuck in the app (the process is about to end)."""
        for listener in self._listeners:
            with contextlib.suppress(OSError):
                listener.close()
        for conn in list(self._conns.values()):
            if conn.sock is not keep:
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)
                    conn.sock.close()

    def _close(self, conn: Connection) -> None:
        self._conns.pop(conn.sock.fileno(), None)
        try:
            if self._selector is not None:
                self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _readable(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        self._process(conn, data)

    def _process(self, conn: Connection, data: bytes = b"") -> None:
        """Parse *data* and answer what is complete; close the connection when it is done
        with or anything went wrong - whatever it was, only this connection pays for it."""
        try:
            if data:
                conn.feed(data)
            keep = self._handle_buffered(conn)
        except HttpError as exc:
            self._send_error(conn, exc.error)
            keep = False
        except OSError:
            keep = False
        except Exception as exc:
            log.exception("answering a request from %s failed", conn.peer)
            self._send_error(conn, InferenceError(500, f"internal error: {type(exc).__name__}"))
            keep = False
        if not keep:
            self._close(conn)

    def answer_pings(self, conn: Connection) -> bool:
        """Answer, with this server's app, the body-less ``GET``/``HEAD /ping`` requests at
        the front of *conn*'s received requests, up to the first other, incomplete or
        malformed one (left for the serving thread); False when the connection is to be
        closed.

        For a thread beside the serving one (:mod:`.ping_standby`): nothing else is read."""
        return self._handle_buffered(conn, pings_only=True)

    # -- one request --------------------------------------------------------------------------
    def _handle_buffered(self, conn: Connection, *, pings_only: bool = False) -> bool:
        """Answer every complete request received (*pings_only*: see :meth:`answer_pings`);
        False when the connection must close."""
        reader = conn.reader
        ready = reader.ready
        while ready:
            request = ready[0]
            if pings_only and not _is_ping(request):
                return True
            ready.popleft()
            environ = self._environ(request, conn.peer)
            if not self._respond(
                conn, environ, request.keep_alive and not reader.upgraded and self._alive()
            ):
                return False
        if reader.error is not None:
            if pings_only:
                return True  # the serving thread answers it
            raise HttpError(reader.error)
        if reader.upgraded:
            return False  # what follows is another protocol's
        if reader.needs_continue and not pings_only:
            reader.needs_continue = False
            conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def _environ(self, request: Request, peer: str) -> dict[str, Any]:
        environ = self._base_environ.copy()
        environ.update(request.headers)
        path, _, query = request.target.decode("latin-1").partition("?")
        environ["REQUEST_METHOD"] = request.method
        environ["PATH_INFO"] = unquote(path, "latin-1") if "%" in path else path
        environ["QUERY_STRING"] = query
        environ["SERVER_PROTOCOL"] = "HTTP/" + request.version
        environ["REMOTE_ADDR"] = peer
        body = request.body
        if body or request.method not in ("GET", "HEAD"):
            environ["CONTENT_LENGTH"] = str(len(body))
        environ["wsgi.input"] = io.BytesIO(body)
        return environ

    def _send_error(self, conn: Connection, error: InferenceError) -> None:
        with contextlib.suppress(OSError):
            conn.sock.sendall(error_head_and_body(error, new_request_id(), close=True))

    def _respond(self, conn: Connection, environ: dict[str, Any], keep_alive: bool) -> bool:
        started = time.monotonic()
        request_id = environ.get("HTTP_X_REQUEST_ID")
        if request_id is None:
            request_id = environ["HTTP_X_REQUEST_ID"] = new_request_id()
        if self.inflight is not None:
            died = self.inflight.begin(request_id)
            if died is not None:
                log.error(
                    "request %s (%s %s) is a retry of a request whose worker died running it: "
                    "answered %d, not run",
                    request_id,
                    environ["REQUEST_METHOD"],
                    environ["PATH_INFO"],
                    died.status,
                )
                conn.sock.sendall(error_head_and_body(died, request_id, close=not keep_alive))
                return keep_alive
        captured: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            captured[:] = [status, headers]
            return _no_write

        watchdog = self.watchdog
        if watchdog is not None:
            watchdog.arm(
                conn.sock, request_id, f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}"
            )
        try:
            result = self.app(environ, start_response)
            chunks: Iterator[bytes] = iter(result)
            length = _content_length(captured[1]) if captured else None
            if captured and captured[0][:3] in _BODYLESS:
                for _ in chunks:  # whatever the app gave: a 204/304 has no body
                    pass
                first = b""
                streamed = False
            elif length is not None or environ["REQUEST_METHOD"] == "HEAD":
                first = b"".join(chunks)
                streamed = False
            else:
                first = next(chunks, b"")
                streamed = True
        except Exception as exc:  # the app should never raise; answer 500 rather than drop
            log.exception("request %s: unhandled error in the app", request_id)
            if watchdog is not None and not watchdog.disarm():
                _wait_for_exit()
            error = InferenceError(500, f"internal error: {type(exc).__name__}")
            conn.sock.sendall(error_head_and_body(error, request_id, close=True))
            return False
        if watchdog is not None and not watchdog.disarm():
            _wait_for_exit()
        status, headers = captured
        head = ["HTTP/1.1 ", status, "\r\n"]
        for name, value in headers:
            head += (name, ": ", value, "\r\n")
        if streamed:
            if environ["SERVER_PROTOCOL"] == "HTTP/1.1":
                head.append("Transfer-Encoding: chunked\r\n")
            else:
                keep_alive = False
        if not keep_alive:
            head.append("Connection: close\r\n")
        elif environ["SERVER_PROTOCOL"] == "HTTP/1.0":
            head.append("Connection: keep-alive\r\n")
        head.append("\r\n")
        head_bytes = "".join(head).encode("latin-1")
        sent = 0
        try:
            if not streamed:
                if environ["REQUEST_METHOD"] == "HEAD":
                    conn.sock.sendall(head_bytes)
                elif len(first) <= COALESCE_LIMIT:
                    conn.sock.sendall(head_bytes + first)
                else:
                    conn.sock.sendall(head_bytes)
                    conn.sock.sendall(first)
                sent = len(first)
            else:
                sent = self._stream(conn, head_bytes, first, chunks, environ, request_id)
                if sent < 0:
                    keep_alive = False
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("request %s: closing the response failed", request_id)
        if self.access_log and (self.log_ping or environ["PATH_INFO"] != "/ping"):
            access_log.info(
                '%s "%s %s %s" %s %d %.3fms %s',
                conn.peer,
                environ["REQUEST_METHOD"],
                environ["PATH_INFO"],
                environ["SERVER_PROTOCOL"],
                status.split(" ", 1)[0],
                max(sent, 0),
                (time.monotonic() - started) * 1000,
                request_id,
            )
        return keep_alive

    def _stream(
        self,
        conn: Connection,
        head: bytes,
        first: bytes,
        chunks: Iterator[bytes],
        environ: dict[str, Any],
        request_id: str,
    ) -> int:
        """Send a body of unknown length; the bytes sent, or -1 when the stream broke."""
        chunked = environ["SERVER_PROTOCOL"] == "HTTP/1.1"
        sock = conn.sock
        sent = 0

        def frame(data: bytes) -> bytes:
            return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data

        sock.sendall(head + (frame(first) if first else b""))
        sent += len(first)
        last_tick = time.monotonic()
        watchdog = self.watchdog
        what = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}, streamed"
        try:
            while True:
                # Each chunk gets the timeout the first one had (sending it does not count:
                # the socket's own timeout bounds a client that stops reading).
                if watchdog is not None:
                    watchdog.arm(sock, request_id, what, streaming=True)
                try:
                    chunk = next(chunks)
                except StopIteration:
                    break
                finally:
                    if watchdog is not None and not watchdog.disarm():
                        _wait_for_exit()
                if chunk:
                    sock.sendall(frame(chunk))
                    sent += len(chunk)
                now = time.monotonic()
                if now - last_tick >= 1.0:
                    self.tick()
                    last_tick = now
        except OSError:
            log.info("request %s: the client went away during a streamed response", request_id)
            return -1
        except Exception:
            # Headers are gone: the only way to tell the client is to break the stream.
            log.exception("request %s: the response stream failed after %d bytes", request_id, sent)
            return -1
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        return sent


#: Statuses whose responses never have a body, nor a Content-Length or Transfer-Encoding.
_BODYLESS = frozenset({"204", "304"})


def _late(timeout: float) -> InferenceError:
    return InferenceError(408, f"the request did not arrive whole within {timeout:g} s")


def _is_ping(request: Request) -> bool:
    """A body-less ``GET``/``HEAD /ping`` (what :meth:`HttpServer.answer_pings` answers)."""
    return (
        request.method in ("GET", "HEAD")
        and request.target.partition(b"?")[0] == b"/ping"
        and not request.body
    )


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if len(name) == 14 and name.lower() == "content-length":
            return int(value)
    return None


def _no_write(data: bytes) -> None:  # pragma: no cover - WSGI write() is unused by flask
    raise RuntimeError("the WSGI write() callable is not supported")


def _wait_for_exit() -> None:
    # The watchdog has answered this request and is ending the process.
    while True:
        time.sleep(1)
