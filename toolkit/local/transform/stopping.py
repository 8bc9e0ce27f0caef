"""Stopping a batch transform where stopping leaves nothing half done.

A stop signal's handler only sets a :class:`StopRequest`. The transform checks it at safe
points (before each mini-batch's output is written, while it waits for a response, before a
retry, between two published outputs) and raises :class:`TransformStopped` there, so the
withdrawal of published outputs, the model server's shutdown and the job record always run to
their end, and a job whose outputs were all published ends Completed.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence

from sagedock.toolkit.signals import signal_name


class TransformStopped(KeyboardInterrupt):
    """A transform stopped by a stop request (or a forced stop: a second Ctrl-C).

    Derived from KeyboardInterrupt so that nothing catching ``Exception`` swallows it.
    """

    def __init__(self, signum: int, still_published: Sequence[str] = ()) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum
        self.still_published = tuple(still_published)
        """Outputs published before the stop that could not be withdrawn again."""


class StopRequest:
    """Set (by a signal handler or another thread) to ask a transform to stop."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._signum: int = signal.SIGINT

    def set(self, signum: int = signal.SIGINT) -> None:
        """Ask for the stop; *signum* is the signal that asked (the first one is kept)."""
        if not self._event.is_set():
            self._signum = signum
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    @property
    def signum(self) -> int:
        """The signal that asked for the stop (SIGINT when none was named)."""
        return self._signum

    def wait(self, timeout: float) -> bool:
        """Sleep up to *timeout* seconds, less when the stop is asked for; whether it is."""
        return self._event.wait(timeout)

    def check(self) -> None:
        """Raise :class:`TransformStopped` if the stop was asked for."""
        if self._event.is_set():
            raise TransformStopped(self._signum)
