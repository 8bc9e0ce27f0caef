"""Stop signals that reach a host blocked in XGBoost's collective.

Python runs signal handlers only between bytecodes of the main thread. A host of a multi-host
job spends long stretches inside one native call of XGBoost's collective: ``collective.init``
waiting for the tracker or the other hosts (up to the bootstrap timeout), an allreduce of a
training round waiting for a slow or stopped host, the tracker's own wait. A SIGTERM from
``StopTrainingJob`` then never becomes the :class:`~sagedock.toolkit.signals.TrainingStopped`
that ``sagedock train`` raises, and only the platform's SIGKILL ends the job, without a failure
file. (A handler that does run inside one of XGBoost's logging callbacks is swallowed by
ctypes, so that does not help either.)

:func:`stop_when_blocked` watches from a thread: the interpreter's C-level handler writes the
number of every signal to the wakeup file descriptor whatever the main thread is doing. When the
main thread has not left the block :data:`STOP_WAIT_SECONDS` after a stop signal, the thread
writes the job's outcome (``output/failure``, or ``success`` through
:attr:`StopGuard.outcome`) and ends the process with ``os._exit`` (exit code 128 + signal).
A main thread that is running Python code handles the signal itself as before and leaves the
block, so single-host training and a healthy group behave as without the guard.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType

from sagedock.toolkit.outcome import Outcome, report
from sagedock.toolkit.paths import MlPaths
from sagedock.toolkit.signals import FORWARDED_SIGNALS, signal_name

logger = logging.getLogger(__name__)

#: Seconds the main thread gets to act on a stop signal before the process is ended for it.
STOP_WAIT_SECONDS = 2.0
_DONE = 0  # not a signal number: tells the watcher thread that the block is over


def blocked_outcome(signum: int) -> Outcome:
    """Exit ``128 + signum`` with a failure reason saying the job was stopped."""
    return Outcome(
        128 + signum,
        f"ClientError: the job was stopped ({signal_name(signum)}) before it finished, while "
        "this host was in XGBoost's collective (waiting for the tracker or the other hosts).",
    )


class StopGuard:
    """What :func:`stop_when_blocked` does when the main thread does not answer a stop signal.

    :attr:`outcome` turns the signal number into the job's outcome (default
    :func:`blocked_outcome`); training replaces it when a stop should keep a saved model.
    """

    def __init__(self, paths: MlPaths, wait: float) -> None:
        self.paths = paths
        self.wait = wait
        self.outcome: Callable[[int], Outcome] = blocked_outcome
        self._lock = threading.Lock()
        self._over = False

    def finish(self) -> None:
        """The block is over: the watcher must not end the process any more."""
        with self._lock:
            self._over = True

    def end_process(self, signum: int) -> None:
        """Report the outcome of a stop by *signum* and exit, unless the block is over."""
        with self._lock:
            if self._over:
                return
            logger.warning(
                "%s received %g s ago and training has not stopped (blocked in XGBoost's "
                "collective): ending the process",
                signal_name(signum),
                self.wait,
            )
            try:
                code = report(self.outcome(signum), self.paths)
            except BaseException:
                logger.exception("could not report the outcome of the stop")
                code = 128 + signum
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)


def _drain(fd: int) -> bytes:
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 512):
            data += chunk
    return data


def _watch(guard: StopGuard, read_fd: int, forward_fd: int) -> None:
    signum: int | None = None
    deadline = 0.0
    while True:
        timeout = None if signum is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([read_fd], [], [], timeout)
        if ready:
            received = _drain(read_fd)
            if forward_fd >= 0:  # whoever watched the wakeup fd before us still hears of it
                with contextlib.suppress(OSError):
                    os.write(forward_fd, received.replace(bytes([_DONE]), b""))
            if _DONE in received:
                return
            stops = [s for s in received if s in FORWARDED_SIGNALS]
            if stops and signum is None:
                signum, deadline = stops[0], time.monotonic() + guard.wait
            continue
        if signum is not None and time.monotonic() >= deadline:
            guard.end_process(signum)
            return


class _Watcher(contextlib.AbstractContextManager["_Watcher"]):
    def __init__(self, guard: StopGuard) -> None:
        self.guard = guard

    def __enter__(self) -> _Watcher:
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.previous_fd = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        self.thread = threading.Thread(
            target=_watch,
            args=(self.guard, self.read_fd, self.previous_fd),
            name="sagedock-stop-watcher",
            daemon=True,
        )
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.guard.finish()
        os.write(self.write_fd, bytes([_DONE]))
        self.thread.join()
        signal.set_wakeup_fd(self.previous_fd)
        os.close(self.read_fd)
        os.close(self.write_fd)


@contextlib.contextmanager
def stop_when_blocked(paths: MlPaths, *, wait: float = STOP_WAIT_SECONDS) -> Iterator[StopGuard]:
    """Within the block, a stop signal (SIGTERM, SIGINT) that the main thread has not acted on
    within *wait* seconds ends the process with ``guard.outcome(signum)`` reported in *paths*.

    Only signals with a Python handler are seen (``sagedock train`` installs one for both);
    off the main thread the guard does nothing.
    """
    guard = StopGuard(paths, wait)
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return
    with _Watcher(guard):
        yield guard
