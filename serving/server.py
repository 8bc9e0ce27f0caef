"""The gunicorn master of ``serve``: configuration, worker slots, and its entry point.

``python -m sagedock.serving.server RUNTIME_JSON`` runs gunicorn's arbiter with
:class:`~.worker.ServingWorker` workers. The supervisor starts it; it reads the settings from
the runtime file (never from the environment), so command-line overrides reach every worker.

- workers: ``SAGEMAKER_MODEL_SERVER_WORKERS``; each gets a *slot* 0 .. n-1 (its socket, its
  ``worker_id`` for hooks - stable when a crashed worker is replaced);
- the model is loaded by each worker as it boots; a worker that fails to boot halts gunicorn;
- gunicorn's heartbeat timeout (a worker stuck beyond it is killed) is the request timeout plus
  a margin: the worker's own watchdog answers 504 first;
- ``graceful_timeout`` is ``SAGEDOCK_GRACEFUL_TIMEOUT``;
- sagedock's own modules (flask, codecs, numpy) are imported before the workers are forked.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.errors import HaltServer

from .runtime import Runtime

log = logging.getLogger(__name__)

#: Seconds past the request timeout before gunicorn's arbiter kills a silent worker.
HEARTBEAT_MARGIN = 15
LOG_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"


def configure_logging(level: int) -> None:
    """Log lines to stderr in one format for every serving process."""
    root = logging.getLogger()
    if not any(getattr(h, "_sagedock", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler._sagedock = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("sagedock.serving.access").propagate = True


class ServingApplication(BaseApplication):  # type: ignore[misc]
    """gunicorn configured from a :class:`Runtime` (no config file, no gunicorn CLI)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        super().__init__()

    def load_config(self) -> None:
        runtime = self.runtime
        settings = runtime.settings
        bind = (
            f"unix:{runtime.run_dir / 'gunicorn.sock'}"  # unused: workers bind their own
            if runtime.nginx
            else f"0.0.0.0:{settings.port}"
        )
        values: dict[str, Any] = {
            "bind": [bind],
            "workers": settings.workers,
            "worker_class": "sagedock.serving.worker.ServingWorker",
            "timeout": int(settings.timeout) + HEARTBEAT_MARGIN,
            "graceful_timeout": max(1, round(settings.graceful_timeout)),
            "backlog": 2048,
            "proc_name": "sagedock-serve",
            "loglevel": logging.getLevelName(settings.log_level).lower()
            if isinstance(logging.getLevelName(settings.log_level), str)
            else "info",
            "errorlog": "-",
            "accesslog": None,
            "pre_fork": assign_slot,
            "child_exit": self._child_exit,
            "worker_tmp_dir": "/dev/shm" if Path("/dev/shm").is_dir() else None,
            # gunicorn's control socket would be created under $HOME: not wanted in a container.
            "control_socket_disable": True,
        }
        for key, value in values.items():
            if value is not None:
                self.cfg.set(key, value)

    def _child_exit(self, arbiter: Any, worker: Any) -> None:
        self.runtime.mark_gone(getattr(worker, "slot", -1))

    def load(self) -> Any:  # pragma: no cover - ServingWorker.load_wsgi builds the app
        raise RuntimeError("ServingWorker builds its own app")

    def run(self) -> None:
        ServingArbiter(self).run()


class ServingArbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's arbiter, dropping a dead worker's socket and readiness the moment it dies.

    gunicorn reaps workers in its main loop, after whatever it is doing (spawning a worker
    sleeps up to 0.1 s): until then nginx would still find the dead worker's socket and
    ``/ping`` could say ready with no worker able to answer. The SIGCHLD handler looks at which
    workers have exited without reaping them (``WNOWAIT``: gunicorn still reaps them, sees
    their exit status and calls ``child_exit``) and unlinks their files at once. A dead
    worker's slot is not given to a new worker before gunicorn reaps it, so this never touches
    a live worker's files.
    """

    def signal_chld(self, sig: int, frame: Any) -> None:
        super().signal_chld(sig, frame)
        runtime: Runtime = self.app.runtime
        for pid, worker in list(self.WORKERS.items()):
            try:
                exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                continue
            if exited is not None:
                runtime.mark_gone(getattr(worker, "slot", -1))


def assign_slot(arbiter: Any, worker: Any) -> None:
    """gunicorn ``pre_fork``: give *worker* the lowest slot no live worker holds."""
    used = {getattr(w, "slot", None) for w in arbiter.WORKERS.values()}
    slot = 0
    while slot in used:
        slot += 1
    worker.slot = slot


def preload() -> None:
    """Import what every worker needs (flask, the codecs, numpy, the modules of the framework
    defaults' entry points) once, before forking: workers then start faster and share those
    pages. Never the user's module - that is per worker."""
    import sagedock.serving.app  # noqa: F401
    from sagedock.serving.handler import default_defaults

    default_defaults()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m sagedock.serving.server RUNTIME_JSON", file=sys.stderr)
        return 2
    runtime = Runtime.load(Path(args[0]))
    configure_logging(runtime.settings.log_level)
    preload()
    try:
        ServingApplication(runtime).run()
    except HaltServer as halt:
        # gunicorn raises a second HaltServer while halting when several workers failed to
        # boot; the supervisor reports why (runtime.boot_error_file) and kills what is left.
        log.error("gunicorn stopped: %s", halt.reason)
        return int(halt.exit_status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
