"""The gunicorn worker: loads the model when it boots, then serves requests with
:class:`~.httpd.HttpServer`.

Boot, in order: import the user module and the algorithm's hooks, run ``pre_model_fn`` /
``model_fn`` / ``model_warmup_fn`` (a thread keeps gunicorn's heartbeat going meanwhile, so a
slow model is not mistaken for a stuck worker), build the flask app, then - behind nginx - bind
this worker's own unix socket and mark it ready. A failure at boot is logged with a clear
message, written to the runtime dir for the supervisor, and the worker exits with gunicorn's
``WORKER_BOOT_ERROR`` so that gunicorn stops instead of restarting it forever.

Without nginx the workers share gunicorn's TCP listener; while no worker is ready yet, a
loading worker answers every connection with 503 so that ``/ping`` never hangs.

``/ping`` never queues behind a prediction. Behind nginx it is answered by nginx from the
readiness file, or - with a user ``ping_fn`` - by a thread of each worker on a socket of its
own (``ping-<slot>.sock``), which runs ``ping_fn`` per health check: nothing on the prediction
path changes, and no ``ping_fn`` runs while nobody asks (a periodic check would run it, and
take the interpreter lock from predictions, whether asked or not, and answer with a stale
result). Without nginx a :class:`~.ping_standby.PingStandby` thread answers the pings of a
worker that is busy in a prediction.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gunicorn.workers.base import Worker

from sagedock.toolkit.errors import SagedockError

from .errors import ServiceUnavailable
from .handler import DEFAULT_PROGRAM, CodeLocation, Handler, build_handler
from .httpd import HttpServer, Watchdog, error_head_and_body, new_request_id
from .inflight import InFlight
from .ping_standby import PingStandby
from .runtime import Runtime

log = logging.getLogger(__name__)

#: gunicorn's exit status for "this worker could not boot": the master halts on it.
WORKER_BOOT_ERROR = 3
SOCKET_BACKLOG = 2048
PING_BACKLOG = 64


def _bind_unix(path: Path, backlog: int) -> socket.socket:
    """A unix socket listening at *path* (a stale file there is replaced), open to every
    user: nginx's workers may run as another one (www-data when we are root)."""
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    path.chmod(0o666)
    listener.listen(backlog)
    return listener


def code_location(runtime: Runtime) -> CodeLocation | None:
    if runtime.code_dir is None:
        return None
    program = runtime.settings.program
    return CodeLocation(runtime.code_dir, program or DEFAULT_PROGRAM, required=program is not None)


class ServingWorker(Worker):  # type: ignore[misc]
    """One model server process. ``slot`` (0 .. workers-1) is set by the master before fork."""

    slot: int = 0

    @property
    def runtime(self) -> Runtime:
        return self.app.runtime  # type: ignore[no-any-return]

    # -- boot ---------------------------------------------------------------------------------
    def handle_exit(self, sig: int, frame: Any) -> None:
        if not self.booted:
            # Nothing in flight while the model loads: stop now rather than after model_fn.
            os._exit(0)
        self.alive = False

    def load_wsgi(self) -> None:
        runtime = self.runtime
        started = time.monotonic()
        with self._heartbeat(), self._loading_responder():
            try:
                self.wsgi, self.handler = self._boot(runtime)
            except SagedockError as exc:
                self._boot_failed(
                    exc.describe() if not isinstance(exc, ServiceUnavailable) else exc.message,
                    traceback=False,
                )
            except Exception as exc:
                self._boot_failed(f"{type(exc).__name__}: {exc}", traceback=True)
        # What boot loaded (modules, the model) lives as long as the worker: keep it out of the
        # collector's full passes, the first of which would otherwise stall one request for
        # ~100 ms a few thousand requests in (bench/RESULTS.md, "Serving").
        gc.freeze()
        log.info("worker %d ready in %.2f s", self.slot, time.monotonic() - started)

    def _boot(self, runtime: Runtime) -> tuple[Any, Handler]:
        from .app import create_app

        settings = runtime.settings
        handler = build_handler(
            code_location(runtime),
            settings.algorithm,
            default_accept=settings.default_accept,
            worker_id=self.slot,
            batch=settings.batch,
            max_payload_bytes=settings.max_payload_bytes,
        )
        if handler.ping_fn is not None:
            runtime.ping_upstream_file.touch()
        if settings.multi_model:
            from .multimodel import ModelManager, ModelRegistry, default_budget_bytes

            budget = (
                int(settings.model_cache_mb * 1024 * 1024)
                if settings.model_cache_mb
                else default_budget_bytes(settings.workers)
            )
            manager = ModelManager(
                handler,
                ModelRegistry(runtime.registry_dir),
                settings.models_dir,
                budget_bytes=budget,
                unpack_dir=runtime.run_dir / "unpacked",
            )
            if self.slot == 0:
                log.info(
                    "multi-model endpoint over %s; %.0f MiB for models per worker",
                    settings.models_dir,
                    budget / 1024 / 1024,
                )
                for line in handler.describe(settings.models_dir):
                    log.info("hook %s", line)
            return create_app(settings, handler, models=manager, worker_id=self.slot), handler
        model_dir = settings.model_dir
        if self.slot == 0:
            for line in handler.describe(model_dir):
                log.info("hook %s", line)
        predictor = handler.load(model_dir)
        return create_app(settings, handler, predictor=predictor, worker_id=self.slot), handler

    def _boot_failed(self, message: str, *, traceback: bool) -> None:
        if traceback:
            log.critical("worker %d could not start: %s", self.slot, message, exc_info=True)
        else:
            log.critical("worker %d could not start: %s", self.slot, message)
        with contextlib.suppress(OSError):
            self.runtime.boot_error_file.write_text(message + "\n")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(WORKER_BOOT_ERROR)

    @contextlib.contextmanager
    def _heartbeat(self) -> Iterator[None]:
        done = threading.Event()

        def beat() -> None:
            while not done.wait(1.0):
                self.notify()

        thread = threading.Thread(target=beat, name="boot-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    @contextlib.contextmanager
    def _loading_responder(self) -> Iterator[None]:
        """Without nginx: answer 503 on the shared port while no worker is ready."""
        if self.runtime.nginx or not self.sockets:
            yield
            return
        done = threading.Event()
        thread = threading.Thread(target=self._answer_503, args=(done,), daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _answer_503(self, done: threading.Event) -> None:
        listeners = [s.sock if hasattr(s, "sock") else s for s in self.sockets]
        error = ServiceUnavailable("the model is not loaded yet")
        while not done.is_set():
            if self.runtime.ready_workers():
                done.wait(0.1)  # a sibling serves: leave the connections to it
                continue
            readable, _, _ = select.select(listeners, [], [], 0.1)
            # Checked again right before accepting: a sibling that became ready meanwhile
            # takes the connection.
            if done.is_set() or self.runtime.ready_workers():
                continue
            for listener in readable:
                try:
                    conn, _ = listener.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    continue
                with conn:
                    conn.settimeout(0.5)
                    with contextlib.suppress(OSError):
                        conn.recv(65536)
                        conn.sendall(error_head_and_body(error, new_request_id(), close=True))

    # -- serving -------------------------------------------------------------------------------
    def _listeners(self) -> list[socket.socket]:
        runtime = self.runtime
        if not runtime.nginx:
            return [s.sock if hasattr(s, "sock") else s for s in self.sockets]
        for inherited in self.sockets:
            with contextlib.suppress(OSError):
                inherited.close()
        return [_bind_unix(runtime.worker_socket(self.slot), SOCKET_BACKLOG)]

    def run(self) -> None:
        runtime = self.runtime
        settings = runtime.settings
        listeners = self._listeners()
        watchdog = Watchdog(settings.timeout)
        # Only nginx retries a request on another worker, and only behind nginx is the
        # request id (nginx's $request_id) one that no client chose.
        inflight = (
            InFlight(runtime.inflight_file, self.slot, settings.workers) if runtime.nginx else None
        )
        server = HttpServer(
            self.wsgi,
            max_body=settings.max_payload_bytes,
            server_port=str(settings.port),
            watchdog=watchdog,
            tick=self._tick,
            access_log=settings.access_log and not runtime.nginx,
            log_ping=settings.log_ping,
            inflight=inflight,
        )

        def before_504(keep: socket.socket) -> None:
            if runtime.nginx:
                runtime.worker_socket(self.slot).unlink(missing_ok=True)
                runtime.ping_socket(self.slot).unlink(missing_ok=True)
            server.abandon(keep)

        watchdog.before_answer = before_504
        ping_listener = None
        if runtime.nginx:
            if self.handler.ping_fn is not None:
                ping_listener = self._serve_pings()
        else:
            pinger = HttpServer(
                self.wsgi.ping,
                max_body=None,
                server_port=str(settings.port),
                access_log=settings.access_log,
                log_ping=settings.log_ping,
            )
            PingStandby(server, watchdog, pinger, alive=lambda: self.alive).start()
        runtime.mark_ready(self.slot)
        signal.siginterrupt(signal.SIGTERM, False)
        try:
            server.serve(listeners, alive=lambda: self.alive, wakeup_fd=self.PIPE[0])
        finally:
            # However the worker ends (SIGTERM, gunicorn's SIGQUIT/SIGABRT raising SystemExit,
            # a bug): the socket path goes first, so that nginx's next connect() fails at once
            # and moves on to another worker instead of queueing where nobody will accept.
            # (After a SIGKILL the gunicorn master drops it: Runtime.mark_gone.)
            if runtime.nginx:
                runtime.worker_socket(self.slot).unlink(missing_ok=True)
                runtime.ping_socket(self.slot).unlink(missing_ok=True)
                for listener in listeners:
                    listener.close()
                if ping_listener is not None:
                    ping_listener.close()

    def _serve_pings(self) -> socket.socket:
        """Behind nginx, with a ``ping_fn``: answer ``/ping`` on this worker's ping socket
        from a thread of its own (its listener returned). 503 until every worker has loaded
        the model, as nginx answers without a ``ping_fn``."""
        runtime = self.runtime
        app = self.wsgi
        not_ready = ServiceUnavailable("the model is not loaded in every worker yet")

        def ping_app(environ: dict[str, Any], start_response: Any) -> Any:
            if not runtime.any_ready():
                return app.error_response(not_ready, environ, start_response)
            return app.ping_app(environ, start_response)

        listener = _bind_unix(runtime.ping_socket(self.slot), PING_BACKLOG)
        pinger = HttpServer(ping_app, max_body=0, server_port=str(runtime.settings.port))
        thread = threading.Thread(
            target=pinger.serve,
            args=([listener], lambda: self.alive),
            name="ping-listener",
            daemon=True,
        )
        thread.start()
        return listener

    def _tick(self) -> None:
        self.notify()
        if self.ppid != os.getppid():
            log.info("the gunicorn master (pid %s) is gone: worker %d exits", self.ppid, self.slot)
            self.alive = False
