"""A one-line progress bar for staging data, drawn only when the stream is a terminal."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


class Progress:
    """Counts bytes done out of *total*; redraws at most 10 times a second on a TTY, and stays
    silent otherwise (logs and pipes get no carriage-return noise)."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(total, 0)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._lock = threading.Lock()
        self._drawn = 0.0

    def advance(self, n: int) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if self.enabled and (now - self._drawn >= 0.1 or self.done >= self.total):
                self._drawn = now
                self._draw()

    def _draw(self) -> None:
        width = 30
        frac = 1.0 if self.total == 0 else min(self.done / self.total, 1.0)
        bar = "#" * int(frac * width)
        self.stream.write(
            f"\r{self.label} [{bar:<{width}}] {frac * 100:5.1f}% "
            f"{_size(self.done)}/{_size(self.total)}"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            with self._lock:
                self._draw()
                self.stream.write("\n")
                self.stream.flush()
