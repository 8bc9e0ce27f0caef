"""Live logs of the hosts of a job: each line printed with its host's prefix as it arrives,
kept in a per-host log file, and fed to the metric collector."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, TextIO

from .record import now


class LogSink:
    """Where every host's lines go: one output stream shared under a lock."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def write_line(self, prefix: str, line: str) -> None:
        with self._lock:
            try:
                self.stream.write(f"{prefix}{line}\n")
                self.stream.flush()
            except (OSError, ValueError):  # closed stdout (e.g. a pipe whose reader left)
                pass

    def message(self, text: str) -> None:
        self.write_line("", text)


class LogPump(threading.Thread):
    """Reads a host's merged stdout/stderr line by line until end of stream."""

    def __init__(
        self,
        host: str,
        source: IO[bytes],
        sink: LogSink,
        log_file: Path,
        on_line: Callable[[str, str], None] | None = None,
        tail: int = 50,
    ) -> None:
        super().__init__(name=f"logs-{host}", daemon=True)
        self.host = host
        self.source = source
        self.sink = sink
        self.log_file = log_file
        self.on_line = on_line
        self.prefix = f"{host} | "
        self.last_lines: deque[str] = deque(maxlen=tail)

    def run(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "a", encoding="utf-8") as log:
            for raw in iter(self.source.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                self.last_lines.append(line)
                self.sink.write_line(self.prefix, line)
                log.write(line + "\n")
                log.flush()
                if self.on_line is not None:
                    self.on_line(line, now())
