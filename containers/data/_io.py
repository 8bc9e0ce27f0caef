"""Small stream helpers shared by the text readers."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, BinaryIO


class PrefixedStream(io.RawIOBase):
    """*prefix* bytes, then the rest of *stream*, then a newline if the data lacks a final one.

    Lets a pipe be sniffed before it is parsed, and works around pyarrow's streaming reader
    refusing a last line without a newline.
    """

    def __init__(self, prefix: bytes, stream: BinaryIO, *, owns: bool = False) -> None:
        super().__init__()
        self._prefix = memoryview(prefix)
        self._stream: BinaryIO | None = stream
        self._source = stream
        self._owns = owns
        self._last = prefix[-1:] or b"\n"

    def close(self) -> None:
        if self._owns and not self._source.closed:
            self._source.close()
        super().close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix.nbytes:
            n = min(len(view), self._prefix.nbytes)
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        if self._stream is None:
            return 0
        data = self._stream.read(len(view))
        if not data:
            self._stream = None
            if self._last != b"\n":
                self._last = b"\n"
                view[:1] = b"\n"
                return 1
            return 0
        self._last = data[-1:]
        view[: len(data)] = data
        return len(data)


def ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(0, io.SEEK_END)
        if fh.tell() == 0:
            return True
        fh.seek(-1, io.SEEK_END)
        return fh.read(1) == b"\n"


def text_source(path: Path) -> Any:
    """What to hand pyarrow's streaming CSV reader for *path*: the path itself, or a stream
    that adds the final newline the file lacks (the reader drops a last line without one)."""
    if ends_with_newline(path):
        return str(path)
    raw = PrefixedStream(b"", path.open("rb"), owns=True)
    return io.BufferedReader(raw, buffer_size=1 << 20)


def close_source(source: Any) -> None:
    """Close what :func:`text_source` opened (a path needs nothing)."""
    if not isinstance(source, str):
        source.close()
