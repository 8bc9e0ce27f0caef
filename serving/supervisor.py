"""``serve``'s main process: prepares the code, starts nginx and gunicorn, and watches them.

Start: fetch ``SAGEMAKER_SUBMIT_DIRECTORY`` (directory, ``file://``, ``.tar.gz``, ``s3://``)
when given, install the code's ``requirements.txt`` once (a failure stops here with pip's
message), write the runtime dir (settings snapshot, nginx config), then start nginx (when
wanted and installed) and the gunicorn master, each in its own process group.

Supervision, gunicorn-style: signal handlers only queue the signal; the loop dispatches.

- SIGTERM / SIGINT: drain. nginx gets SIGQUIT (it stops accepting and finishes the requests it
  is proxying), then gunicorn gets SIGTERM (its workers finish the request in hand). Whatever is
  still running ``SAGEDOCK_GRACEFUL_TIMEOUT`` seconds later is killed. Exit status 0.
  A second signal shortens the drain to a fast stop.
- nginx or the gunicorn master exiting on its own: the other is stopped and ``serve`` exits
  with status 1 (a worker that cannot load the model halts gunicorn; its message is repeated as
  the last line).
- As PID 1 of a container, every orphan that ends up a child of ours is reaped.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType

from sagedock.toolkit.errors import SagedockError

from . import nginx as nginx_config
from .runtime import Runtime
from .settings import ServingSettings

log = logging.getLogger(__name__)

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGCHLD)
#: Seconds added to the graceful timeout before the last SIGKILL.
KILL_MARGIN = 2.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent(signum: int) -> None:
    """In a child about to exec: get *signum* if ``serve`` dies (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - non-Linux
        pass


# -- preparing the code ------------------------------------------------------------------------
def prepare_code(
    settings: ServingSettings, run_dir: Path, environ: Mapping[str, str]
) -> Path | None:
    """The directory holding the user module: ``SAGEMAKER_SUBMIT_DIRECTORY`` (fetched into
    *run_dir* unless it is a local directory) or ``<model dir>/code``; its requirements
    installed.

    :raises UserError: the submit directory cannot be fetched, or pip failed.
    """
    uri = settings.submit_directory
    if uri:
        local = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
        if "://" not in uri or uri.startswith("file://"):
            if local.is_dir():
                code_dir: Path | None = local
            else:
                code_dir = _fetch(uri, run_dir / "code", environ)
        else:
            code_dir = _fetch(uri, run_dir / "code", environ)
    else:
        root = settings.models_dir if settings.multi_model else settings.model_dir
        code_dir = root / "code"
        if not code_dir.is_dir():
            return None
    assert code_dir is not None
    requirements = code_dir / "requirements.txt"
    if requirements.is_file():
        from sagedock.toolkit.install import install_requirements

        log.info("installing %s", requirements)
        started = time.monotonic()
        install_requirements(requirements, environ=environ)
        log.info("installed %s in %.1f s", requirements, time.monotonic() - started)
    return code_dir


def _fetch(uri: str, dest: Path, environ: Mapping[str, str]) -> Path:
    from sagedock.toolkit.sources import fetch_code

    log.info("fetching the code from %s", uri)
    return fetch_code(uri, dest, environ=environ)


def make_run_dir() -> Path:
    """A fresh runtime dir, readable by nginx's workers (which may run as another user)."""
    run_dir = Path(tempfile.mkdtemp(prefix="sagedock-serve-"))
    run_dir.chmod(0o755)
    # Unix socket paths are limited to 107 bytes.
    if len(str(run_dir)) > 80:
        shutil.rmtree(run_dir)
        run_dir = Path(tempfile.mkdtemp(prefix="sagedock-serve-", dir="/tmp"))
        run_dir.chmod(0o755)
    return run_dir


# -- the supervisor ----------------------------------------------------------------------------
class Supervisor:
    """Runs one model server until it is told to stop or a part of it dies.

    :param settings: the server's settings.
    :param environ: the environment children get (default ``os.environ``).
    """

    def __init__(self, settings: ServingSettings, environ: Mapping[str, str] | None = None):
        self.settings = settings
        self.environ = dict(os.environ if environ is None else environ)
        self.signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.nginx: subprocess.Popen[bytes] | None = None
        self.gunicorn: subprocess.Popen[bytes] | None = None
        self.runtime: Runtime | None = None
        self.stopping_since: float | None = None
        self.failed = False
        self._gunicorn_told = False
        self._nginx_binary: Path | None = None
        self.reap_strangers = os.getpid() == 1

    def run(self) -> int:
        """Serve until stopped; the exit status (0 after SIGTERM, 1 when a part failed)."""
        run_dir = make_run_dir()
        try:
            with self._signals():
                try:
                    self.runtime = self._prepare(run_dir)
                except SagedockError as exc:
                    log.critical("%s", exc.describe())
                    return 1
                if self.stopping_since is not None or not self.signals.empty():
                    return 0
                self._start()
                return self._loop()
        finally:
            self._kill_all()
            shutil.rmtree(run_dir, ignore_errors=True)

    # -- start ----------------------------------------------------------------------------------
    def _prepare(self, run_dir: Path) -> Runtime:
        settings = self.settings
        code_dir = prepare_code(settings, run_dir, self.environ)
        use_nginx = settings.use_nginx
        nginx = nginx_config.find_nginx() if use_nginx else None
        if use_nginx and nginx is None:
            log.warning("nginx is not installed: gunicorn binds port %d itself", settings.port)
        runtime = Runtime(settings, run_dir, code_dir, nginx is not None)
        runtime.save()
        self._nginx_binary = nginx
        return runtime

    def _start(self) -> None:
        runtime = self.runtime
        assert runtime is not None
        settings = runtime.settings
        where = (
            f"multi-model, models under {settings.models_dir}"
            if settings.multi_model
            else f"model {settings.model_dir}"
        )
        front = "nginx -> unix sockets ->" if runtime.nginx else "gunicorn on the port ->"
        log.info(
            "serving on port %d: %s %d worker(s); %s; code %s",
            settings.port,
            front,
            settings.workers,
            where,
            runtime.code_dir or "none",
        )
        env = {**self.environ, "PYTHONUNBUFFERED": "1"}
        if runtime.nginx:
            assert self._nginx_binary is not None
            config = nginx_config.write_config(runtime)
            self.nginx = subprocess.Popen(
                nginx_config.command(self._nginx_binary, config),
                env=env,
                stdin=subprocess.DEVNULL,
                process_group=0,
                preexec_fn=lambda: _die_with_parent(signal.SIGTERM),
            )
        self.gunicorn = subprocess.Popen(
            [sys.executable, "-m", "sagedock.serving.server", str(runtime.file)],
            env=env,
            stdin=subprocess.DEVNULL,
            process_group=0,
            preexec_fn=lambda: _die_with_parent(signal.SIGTERM),
        )

    # -- signals ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        def enqueue(signum: int, frame: FrameType | None) -> None:
            self.signals.put_nowait(signum)  # no logging in a handler

        previous = {sig: signal.signal(sig, enqueue) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _loop(self) -> int:
        while True:
            try:
                signum: int | None = self.signals.get(timeout=0.5)
            except queue.Empty:
                signum = None
            if signum is not None:
                name = signal.Signals(signum).name
                handler = getattr(self, f"handle_{name.lower()}", None)
                if handler is not None:
                    handler()
            self._reap()
            if self._check_children():
                return 1 if self.failed else 0

    def handle_sigterm(self) -> None:
        if self.stopping_since is None:
            log.info(
                "SIGTERM: draining requests in flight (at most %gs)", self.settings.graceful_timeout
            )
            self.stopping_since = time.monotonic()
            if self._running(self.nginx):
                assert self.nginx is not None
                self.nginx.send_signal(signal.SIGQUIT)
            else:
                self._stop_gunicorn(signal.SIGTERM)
        else:
            log.info("second stop signal: stopping now")
            self._fast_stop()

    handle_sigint = handle_sigterm

    def handle_sigquit(self) -> None:
        self.stopping_since = self.stopping_since or time.monotonic()
        self._fast_stop()

    def handle_sigchld(self) -> None:
        pass  # _reap and _check_children run after every signal

    def _fast_stop(self) -> None:
        if self._running(self.nginx):
            assert self.nginx is not None
            self.nginx.send_signal(signal.SIGTERM)
        self._stop_gunicorn(signal.SIGINT)

    def _stop_gunicorn(self, signum: int) -> None:
        self._gunicorn_told = True
        if self._running(self.gunicorn):
            assert self.gunicorn is not None
            self.gunicorn.send_signal(signum)

    @staticmethod
    def _running(proc: subprocess.Popen[bytes] | None) -> bool:
        return proc is not None and proc.poll() is None

    # -- children -------------------------------------------------------------------------------
    def _reap(self) -> None:
        """Collect our children's statuses; as PID 1, reap every other exited process."""
        for proc in (self.nginx, self.gunicorn):
            if proc is not None:
                proc.poll()
        if not self.reap_strangers:
            return
        ours = {p.pid for p in (self.nginx, self.gunicorn) if p is not None}
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid in ours:
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(info.si_pid, 0)

    def _check_children(self) -> bool:
        """Advance the stop sequence; True when ``serve`` is done."""
        nginx_done = self.nginx is None or self.nginx.returncode is not None
        gunicorn_done = self.gunicorn is None or self.gunicorn.returncode is not None
        if self.stopping_since is None:
            if nginx_done and self.nginx is not None:
                log.critical("nginx exited with status %s: stopping", self.nginx.returncode)
                self._fail()
            elif gunicorn_done:
                self._report_gunicorn_exit()
                self._fail()
            return False
        if nginx_done and not gunicorn_done and not self._gunicorn_told:
            self._stop_gunicorn(signal.SIGTERM)
        if nginx_done and gunicorn_done:
            if not self.failed:
                log.info("stopped")
            return True
        if time.monotonic() - self.stopping_since > self.settings.graceful_timeout + KILL_MARGIN:
            log.warning(
                "still running %gs after the stop signal: killing what is left",
                self.settings.graceful_timeout,
            )
            self._kill_all()
        return False

    def _fail(self) -> None:
        self.failed = True
        self.stopping_since = time.monotonic()
        self._fast_stop()

    def _report_gunicorn_exit(self) -> None:
        assert self.gunicorn is not None and self.runtime is not None
        reason = ""
        with contextlib.suppress(OSError):
            reason = self.runtime.boot_error_file.read_text().strip()
        if reason:
            log.critical("the model server could not start: %s", reason)
        else:
            log.critical("gunicorn exited with status %s: stopping", self.gunicorn.returncode)

    def _kill_all(self) -> None:
        for proc in (self.nginx, self.gunicorn):
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            if proc is not None:
                # Workers left behind by a killed gunicorn master share its process group.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
