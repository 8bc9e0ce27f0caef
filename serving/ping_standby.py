"""Answering ``/ping`` while a worker's one serving thread is busy in the app (without nginx).

Without nginx the workers share gunicorn's listening socket and each serves its connections
from one thread, one request at a time (:mod:`.httpd`). With every worker in a long
prediction, a health check would wait in the listen backlog, or on its kept-alive connection,
until one finishes - past SageMaker's 2 s. A :class:`PingStandby` thread per worker steps in
only while that worker's serving thread has been in the app for :data:`GRACE` seconds:

- its idle kept-alive connections that become readable are taken over; body-less
  ``GET``/``HEAD /ping`` requests at the front are answered (readiness, the user's
  ``ping_fn``), and the connection is handed back with anything else it holds;
- a new connection on the shared listener is accepted only when the listener's backlog has
  held one at every probe for :data:`HOLD` seconds - an idle sibling worker takes a new
  connection within microseconds, so a backlog that stays non-empty is a sign that every
  worker is busy. It too is answered if it is a ping and handed over otherwise (that request
  then waits for this worker, as it would have waited for any).

The standby never waits on the listener: it would wake for every arriving connection and race
an idle sibling to accept it (and, with ``predict_fn`` releasing the interpreter lock, often
win, leaving that request to wait behind the long prediction). It waits on its idle
connections only, and probes the listener with a zero timeout once per look (every
:data:`POLL`); a probe that finds the backlog empty restarts that listener's clock. How long a
connection has waited is not known to anybody but the kernel (``accept()`` does not tell), so
the rule approximates it: two probes :data:`POLL` apart practically never both find a
connection an idle sibling takes at once, but when the siblings take connections late (each
saturated with short requests), the backlog may stay non-empty with ever new connections, and
the standby then takes one that may have just arrived.

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
from collections.abc import Callable, Iterable

from .httpd import READ_TIMEOUT, Connection, HttpServer, Watchdog, accept

log = logging.getLogger(__name__)

#: Seconds the serving thread is in the app before the standby steps in (shorter calls: a
#: ping just waits for them).
GRACE = 0.25
#: Seconds the standby waits for its idle connections per look, and so between its probes of
#: the listeners.
POLL = 0.1
#: Seconds a listener's backlog must stay non-empty (at every probe) before the standby takes
#: a connection from it.
HOLD = 0.1
#: Seconds the standby waits for the rest of a request head it started reading.
HEAD_WAIT = 0.5

_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR


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
        # listener fd -> when a probe first found its backlog non-empty (since the last empty
        # one, in the app call that started at _call)
        self._backlog_since: dict[int, float] = {}
        self._call: float | None = None

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="ping-standby", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        while self.alive():
            since = self.watchdog.busy_since()
            if since is None or time.monotonic() - since < GRACE:
                time.sleep(POLL)
                continue
            try:
                looked = self._step(since)  # waits up to POLL
            except Exception:  # never let a bug here end the thread silently
                log.exception("answering /ping beside a busy worker failed")
                looked = False
            if not looked:
                time.sleep(POLL)

    def _step(self, since: float) -> bool:
        """One look: wait up to :data:`POLL` for the idle connections, probe the listeners,
        take what is due and answer its pings. False when the app call that started at
        *since* was over (or answered by the watchdog) before the look began."""
        if since != self._call:
            # The serving thread went back to its loop in between: it could have accepted.
            self._backlog_since.clear()
            self._call = since
        with self.watchdog.while_busy(since) as busy:
            if busy is None:
                return False
            idle = {conn.sock.fileno(): conn for conn in self.server.idle_connections(busy)}
            listeners = {sock.fileno(): sock for sock in self.server.listeners}
        ready = _readable(idle, POLL)
        due = self._due(_readable(listeners, 0))
        taken: list[Connection] = []
        with self.watchdog.while_busy(since) as busy:
            if busy is None:
                return True
            for fd in ready:
                self.server.take(idle[fd])
                taken.append(idle[fd])
            for fd in due:
                conn = accept(listeners[fd], self.server.max_body)
                if conn is not None:
                    taken.append(conn)
        for index, conn in enumerate(taken):
            try:
                self._serve(conn, since)
            except BaseException:
                # Its state is unknown: closed; the others go to the serving thread unread.
                conn.sock.close()
                for rest in taken[index + 1 :]:
                    self.server.give_back(rest)
                raise
        return True

    def _due(self, waiting: list[int]) -> list[int]:
        """The listeners (of *waiting*, those a probe just found a connection on) whose
        backlog every probe has found non-empty for :data:`HOLD` seconds; the others' clocks
        restart."""
        now = time.monotonic()
        for fd in [fd for fd in self._backlog_since if fd not in waiting]:
            del self._backlog_since[fd]
        due = []
        for fd in waiting:
            first = self._backlog_since.setdefault(fd, now)
            if now - first >= HOLD:
                due.append(fd)
                del self._backlog_since[fd]  # the next connection is timed afresh
        return due

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
        if conn.idle:
            with self.watchdog.while_busy(since) as busy:
                if busy is not None:
                    # Still busy: watched again as an idle connection, so that the next
                    # ping on it is answered here too.
                    self.server.rewatch(conn)
                    return
        self.server.give_back(conn)

    @staticmethod
    def _read_head(conn: Connection) -> bool:
        """Read until *conn* has a complete request, or the head of one whose body is still
        arriving, or cannot be parsed (or :data:`HEAD_WAIT` passes); False when the client
        closed the connection."""
        deadline = time.monotonic() + HEAD_WAIT
        reader = conn.reader
        while not reader.ready and reader.error is None and not reader.upgraded:
            if reader.started is not None and reader.head_complete:
                return True  # a body: not a ping, for the serving thread
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
            conn.feed(data)
        return True


def _readable(fds: Iterable[int], timeout: float) -> list[int]:
    """The *fds* readable (or at end of file) within *timeout* seconds. ``poll``, since
    ``select`` refuses descriptors from 1024 on."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return [fd for fd, events in poller.poll(timeout * 1000) if events & _READABLE]
