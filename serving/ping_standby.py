"""Answering ``/ping`` while a worker's one serving thread is busy in the app (without nginx).

Without nginx the workers share gunicorn's listening socket and each serves its connections
from one thread, one request at a time (:mod:`.httpd`). With every worker in a long
prediction, a health check would wait in the listen backlog, or on its kept-alive connection,
until one finishes - past SageMaker's 2 s. A :class:`PingStandby` thread per worker steps in
only while that worker's serving thread has been in the app for :data:`GRACE` seconds:

- its idle kept-alive connections that become readable are taken over; body-less
  ``GET``/``HEAD /ping`` requests at the front are answered (readiness, the user's
  ``ping_fn``), and the connection is handed back with anything else it holds;
- a new connection on the shared listener is accepted only when it has waited there
  :data:`HOLD` seconds - an idle sibling worker would have taken it within microseconds, so
  it is a sign that every worker is busy. It too is answered if it is a ping and handed over
  otherwise (that request then waits for this worker, as it would have waited for any).

The serving thread pays nothing for this per request: the standby polls the watchdog's record
of the app call in progress (:meth:`.Watchdog.busy_since`), and every hand-over happens under
:meth:`.Watchdog.while_busy`, which holds the serving thread's way back to its connections
until the hand-over is done. ``ping_fn`` then runs beside a prediction, on this thread.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable

from .httpd import MAX_HEAD, READ_TIMEOUT, Connection, HttpServer, Watchdog, accept

log = logging.getLogger(__name__)

#: Seconds the serving thread is in the app before the standby steps in (shorter calls: a
#: ping just waits for them).
GRACE = 0.25
#: Seconds between the standby's looks at the serving thread.
POLL = 0.1
#: Seconds a new connection waits on the shared listener before the standby takes it.
HOLD = 0.1
#: Seconds the standby waits for the rest of a request head it started reading.
HEAD_WAIT = 0.5


class PingStandby:
    """Answers pings for *server* (the worker's server) while it is busy in the app.

    :param pinger: answers the pings (its app answers ``/ping`` only, thread-safely).
    :param alive: False once the worker is stopping.
    """

    def __init__(
        self,
        server: HttpServer,
        watchdog: Watchdog,
        pinger: HttpServer,
        alive: Callable[[], bool],
    ) -> None:
        self.server = server
        self.watchdog = watchdog
        self.pinger = pinger
        self.alive = alive
        self._backlog_since: float | None = None

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="ping-standby", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        while self.alive():
            time.sleep(POLL)
            since = self.watchdog.busy_since()
            if since is None or time.monotonic() - since < GRACE:
                self._backlog_since = None
                continue
            try:
                self._step(since)
            except Exception:  # never let a bug here end the thread silently
                log.exception("answering /ping beside a busy worker failed")

    def _step(self, since: float) -> None:
        with self.watchdog.while_busy(since) as busy:
            if busy is None:
                return
            idle = {conn.sock: conn for conn in self.server.idle_connections(busy)}
            listeners = self.server.listeners
        try:
            readable, _, _ = select.select([*idle, *listeners], [], [], POLL)
        except (OSError, ValueError):
            return  # a connection closed meanwhile: the app call is over
        waiting = [sock for sock in readable if sock in listeners]
        now = time.monotonic()
        if not waiting:
            self._backlog_since = None
        elif self._backlog_since is None:
            self._backlog_since = now
        taken: list[Connection] = []
        with self.watchdog.while_busy(since) as busy:
            if busy is None:
                return
            for sock in readable:
                if sock in idle:
                    self.server.take(idle[sock])
                    taken.append(idle[sock])
            if waiting and self._backlog_since is not None and now - self._backlog_since >= HOLD:
                self._backlog_since = None
                for listener in waiting:
                    conn = accept(listener)
                    if conn is not None:
                        taken.append(conn)
        for conn in taken:
            self._serve(conn, since)

    def _serve(self, conn: Connection, since: float) -> None:
        """Answer the pings *conn* starts with; hand it back to the serving thread."""
        try:
            if not self._read_head(conn):
                conn.sock.close()
                return
            conn.sock.settimeout(READ_TIMEOUT)
            if not self.pinger.answer_pings(conn):
                conn.sock.close()
                return
        except OSError:
            conn.sock.close()
            return
        if not conn.buf:
            with self.watchdog.while_busy(since) as busy:
                if busy is not None:
                    # Still busy: watched again as an idle connection, so that the next
                    # ping on it is answered here too.
                    self.server.rewatch(conn)
                    return
        self.server.give_back(conn)

    @staticmethod
    def _read_head(conn: Connection) -> bool:
        """Read until *conn*'s buffer holds a complete request head (or :data:`HEAD_WAIT`
        passes); False when the client closed the connection."""
        deadline = time.monotonic() + HEAD_WAIT
        while b"\r\n\r\n" not in conn.buf and len(conn.buf) <= MAX_HEAD:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            conn.sock.settimeout(remaining)
            try:
                data = conn.sock.recv(65536)
            except TimeoutError:
                return True
            if not data:
                return False
            conn.buf += data
        return True
