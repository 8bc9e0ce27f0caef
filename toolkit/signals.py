"""Waiting for the user's process group: stop signals forwarded, a deadline, zombies reaped.

SageMaker stops a job (``StopTrainingJob``, spot interruption) by sending SIGTERM to the
container's PID 1, then SIGKILL two minutes later. ``train`` is often that PID 1, and the
kernel drops a default-disposition SIGTERM sent to PID 1, so unless we pass it on the user's
script never hears about it. :class:`ChildSupervisor` does, gunicorn-style: handlers only note
the signal (through :func:`signal.set_wakeup_fd`), and the wait loop forwards SIGTERM/SIGINT
to the child's process group, sends SIGKILL once the grace period has passed, and, as PID 1,
reaps every zombie that is reparented to us.

Signal handling is installed only around :meth:`ChildSupervisor.wait`, only on the main
thread, and the previous handlers are restored afterwards.

In-process training (a built-in algorithm) gets :func:`stop_signals_raise` instead: the signal
raises :class:`TrainingStopped` in the main thread. Python runs that handler at whatever
bytecode the main thread is on, and when that is inside a ctypes callback (XGBoost calls its
log callback every round) or a ``__del__``, the exception is dropped. So the handler also
records the stop, and long loops call :func:`raise_if_stopped` where raising is safe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

#: Seconds between forwarding a stop signal and killing the process group.
DEFAULT_GRACE_SECONDS = 30.0
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, ``signal 99`` for numbers without a name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def kill_group(pgid: int, signum: int) -> bool:
    """Send *signum* to the process group *pgid*; ``False`` when the group is gone."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


class TrainingStopped(BaseException):
    """Raised in the main thread when a stop signal arrives while no child is being waited for.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that ``except Exception`` in algorithm
    code does not swallow it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


#: The stop signals received inside :func:`stop_signals_raise`, first one first.
_received_stops: list[int] = []


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    _received_stops.append(signum)
    raise TrainingStopped(signum)


def stop_requested() -> int | None:
    """The first stop signal received inside :func:`stop_signals_raise`, or ``None``."""
    return _received_stops[0] if _received_stops else None


def raise_if_stopped() -> None:
    """Raise :class:`TrainingStopped` if a stop signal has arrived, even one whose exception
    was dropped where it was raised (a ctypes callback, a finalizer)."""
    signum = stop_requested()
    if signum is not None:
        raise TrainingStopped(signum)


def _quiet_about_recorded_stops(previous: Any) -> Any:
    def hook(unraisable: Any) -> object:
        # The stop is recorded and raise_if_stopped() delivers it: the "Exception ignored"
        # report with its traceback would only make a clean stop look like a crash.
        if isinstance(unraisable.exc_value, TrainingStopped):
            log.debug("a stop signal arrived inside %r; it is acted on later", unraisable.object)
            return None
        return previous(unraisable)

    return hook


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM/SIGINT raise :class:`TrainingStopped` in the main thread and
    are recorded for :func:`raise_if_stopped`.

    Without this a stop request while we download code or train in-process would either kill us
    without a failure file, or (as PID 1) be ignored by the kernel. Off the main thread this
    does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received_stops.clear()
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_about_recorded_stops(previous_hook)
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in FORWARDED_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.unraisablehook = previous_hook
        _received_stops.clear()


def _ignore(signum: int, frame: FrameType | None) -> None:
    # The wakeup fd carries the signal number to the wait loop; the handler only has to exist
    # so that the default action (terminate us) does not run.
    return None


@contextlib.contextmanager
def _wakeup_pipe() -> Iterator[int | None]:
    """A pipe that receives one byte per stop signal or SIGCHLD; ``None`` off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    watched = (*FORWARDED_SIGNALS, signal.SIGCHLD)
    previous = {sig: signal.signal(sig, _ignore) for sig in watched}
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    try:
        yield read_fd
    finally:
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(read_fd)
        os.close(write_fd)


def _drain(read_fd: int) -> list[int]:
    received: list[int] = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(read_fd, 512):
            received += chunk
    return received


def reap_orphans(keep: int | None = None) -> None:
    """Reap every exited child except *keep* (whose status its ``Popen`` collects)."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid == keep:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.si_pid, 0)
        log.debug("reaped orphaned process %d", info.si_pid)


@dataclass
class ChildSupervisor:
    """Waits for one child that leads its own process group (``start_new_session=True``)."""

    grace_period: float = DEFAULT_GRACE_SECONDS
    reap: bool = field(default_factory=lambda: os.getpid() == 1)
    """Reap zombies that are not ours: needed when we are PID 1."""
    stop_signal: int | None = None
    """The first stop signal received while waiting (``None`` if the job was not stopped)."""

    def wait(self, proc: subprocess.Popen[bytes]) -> int:
        """Wait for *proc*, forwarding stop signals; its return code (negative: killed)."""
        with _wakeup_pipe() as wakeup:
            deadline: float | None = None
            while True:
                # Signals first, then the child's state: a SIGCHLD that lands after poll()
                # stays in the pipe and ends the select() below at once.
                for signum in _drain(wakeup) if wakeup is not None else []:
                    if signum in FORWARDED_SIGNALS:
                        deadline = self._forward(proc, signum, deadline)
                if self.reap:
                    reap_orphans(keep=proc.pid)
                returncode = proc.poll()
                if returncode is not None:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    log.warning(
                        "the training process did not stop within %g s: sending SIGKILL",
                        self.grace_period,
                    )
                    kill_group(proc.pid, signal.SIGKILL)
                    deadline = None
                timeout = 1.0 if wakeup is not None else 0.1
                if deadline is not None:
                    timeout = max(0.0, min(timeout, deadline - time.monotonic()))
                if wakeup is not None:
                    select.select([wakeup], [], [], timeout)
                else:
                    time.sleep(timeout)
        # Whatever the script left running in its group (data loader workers, a forgotten
        # server) would keep our output pipes open; the job is over, so end it.
        kill_group(proc.pid, signal.SIGKILL)
        if self.reap:
            reap_orphans()
        return returncode

    def _forward(self, proc: subprocess.Popen[bytes], signum: int, deadline: float | None) -> float:
        log.info("received %s: forwarding it to the training process group", signal_name(signum))
        self.stop_signal = self.stop_signal or signum
        kill_group(proc.pid, signum)
        return deadline if deadline is not None else time.monotonic() + self.grace_period
