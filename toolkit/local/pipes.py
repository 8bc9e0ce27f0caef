"""Pipe input mode: a feeder thread per host and channel writes each epoch into a FIFO.

SageMaker creates ``input/data/<channel>_<epoch>`` FIFOs one after another: epoch 0's pipe,
then, once the algorithm has read it to the end (or closed it), epoch 1's, and so on for as
long as the algorithm keeps reading. :class:`PipeFeeder` does the same on one machine. Each
epoch's content is the host's share of the channel's objects (shuffled per epoch with
``ShuffleConfig``), decompressed when ``CompressionType`` is Gzip, and with
``RecordWrapperType`` RecordIO each object (or augmented-manifest attribute) is wrapped in one
RecordIO record.
"""

from __future__ import annotations

import errno
import fcntl
import gzip
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sagedock.toolkit.errors import UserError

CHUNK = 1 << 20


@dataclass(frozen=True)
class PipeItem:
    """One thing to stream: a file's content, or inline bytes (an augmented-manifest value)."""

    path: Path | None = None
    data: bytes | None = None
    name: str = ""


class PipeFeeder(threading.Thread):
    """Feeds ``<directory>/<channel>_<epoch>`` for epoch 0, 1, ... until stopped.

    :param items: the items of an epoch, given the epoch number.
    :param on_error: called once with a message if feeding fails (bad gzip data, I/O error).
    """

    def __init__(
        self,
        directory: Path,
        channel: str,
        items: Callable[[int], list[PipeItem]],
        *,
        gzip_compressed: bool = False,
        recordio: bool = False,
        on_error: Callable[[str], None] | None = None,
        poll_interval: float = 0.02,
    ) -> None:
        super().__init__(name=f"pipe-{channel}", daemon=True)
        self.directory = directory
        self.channel = channel
        self.items = items
        self.gzip_compressed = gzip_compressed
        self.recordio = recordio
        self.on_error = on_error
        self.poll_interval = poll_interval
        self.stop_event = threading.Event()
        self.epochs_fed = 0

    def stop(self) -> None:
        self.stop_event.set()

    def fifo(self, epoch: int) -> Path:
        return self.directory / f"{self.channel}_{epoch}"

    def prepare(self) -> None:
        """Create epoch 0's FIFO, before the host starts, so that it is there when the
        algorithm first looks."""
        self._mkfifo(0)

    def _mkfifo(self, epoch: int) -> None:
        path = self.fifo(epoch)
        if not path.exists():
            os.mkfifo(path)

    def run(self) -> None:
        epoch = 0
        try:
            while not self.stop_event.is_set():
                self._mkfifo(epoch)
                fd = self._open_writer(self.fifo(epoch))
                if fd is None:
                    return
                with os.fdopen(fd, "wb", buffering=0) as pipe:
                    try:
                        for chunk in self._epoch_bytes(epoch):
                            if self.stop_event.is_set():
                                return
                            pipe.write(chunk)
                    except BrokenPipeError:
                        pass  # the reader closed the epoch early: on to the next one
                    # The next epoch's FIFO exists before this one reaches end of file, so an
                    # algorithm that opens it right after EOF finds it.
                    self._mkfifo(epoch + 1)
                self.epochs_fed = epoch + 1
                epoch += 1
        except UserError as exc:
            self._fail(exc.message)
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                self._fail(f"channel {self.channel!r}: feeding the pipe failed: {exc}")

    def _fail(self, message: str) -> None:
        if self.on_error is not None:
            self.on_error(message)

    def _open_writer(self, path: Path) -> int | None:
        # A blocking open would wait for a reader forever; poll non-blocking so that stop()
        # is honoured while the algorithm has not (yet) opened this epoch.
        while not self.stop_event.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno in (errno.ENXIO, errno.EAGAIN):
                    time.sleep(self.poll_interval)
                    continue
                raise
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
            return fd
        return None

    def _epoch_bytes(self, epoch: int) -> Iterator[bytes]:
        for item in self.items(epoch):
            if self.recordio:
                from sagedock.toolkit.formats.recordio import encode_record

                yield encode_record(b"".join(self._content(item)))
            else:
                yield from self._content(item)

    def _content(self, item: PipeItem) -> Iterator[bytes]:
        if item.data is not None:
            yield item.data
            return
        assert item.path is not None
        try:
            opener = gzip.open if self.gzip_compressed else open
            with opener(item.path, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk
        except (gzip.BadGzipFile, EOFError) as exc:
            raise UserError(
                f"channel {self.channel!r}: {item.name or item.path} is not valid gzip data "
                f"(CompressionType is Gzip): {exc}"
            ) from None
