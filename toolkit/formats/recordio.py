"""dmlc/MXNet RecordIO framing: the container format of ``application/x-recordio-protobuf``.

A stream is a sequence of parts, each::

    magic (u32 LE 0xCED7230A) | lrec (u32 LE) | payload[len] | zero padding to a multiple of 4

where ``len = lrec & (2**29 - 1)`` and the upper three bits of ``lrec`` are the continuation
flag: 0 a complete record, 1 the first part of a split record, 2 a middle part, 3 the last part.
A writer splits a payload wherever the magic word occurs at a 4-byte-aligned offset in it and
drops that word; a reader joins the parts, putting the magic word back between them.

:func:`iter_records` reads a stream incrementally (Pipe-mode FIFOs work);
:func:`scan_records` frames an in-memory buffer and returns where each payload lies (numpy
arrays; runs of equal-length records are framed in one vectorised step), which is what the
vectorised protobuf reader uses. Corruption raises :class:`RecordIOError` (a
:class:`~sagedock.toolkit.errors.UserError`) naming the record index and byte offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from sagedock.toolkit.errors import UserError

#: The magic word that starts every part.
MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
#: Largest payload one part can carry (29 bits of length).
MAX_PART_LENGTH = (1 << 29) - 1

_LENGTH_MASK = MAX_PART_LENGTH
_HEADER = struct.Struct("<II")
_HEADER_SIZE = _HEADER.size
_COMPLETE, _FIRST, _MIDDLE, _LAST = 0, 1, 2, 3
_READ_CHUNK = 1 << 20


class RecordIOError(UserError):
    """A RecordIO stream is corrupt or truncated.

    :param index: the number of the record being read (0-based; a multipart record counts once).
    :param offset: the byte offset, from the start of the stream, of the part header at fault.
    :param problem: what is wrong there.
    """

    def __init__(self, index: int, offset: int, problem: str) -> None:
        super().__init__(
            f"corrupt RecordIO data: record {index} at byte offset {offset}: {problem}"
        )
        self.index = index
        self.offset = offset
        self.problem = problem


def _padded(length: int) -> int:
    return (length + 3) & ~3


def _check_header(magic: int, lrec: int, index: int, offset: int) -> tuple[int, int]:
    if magic != MAGIC:
        raise RecordIOError(index, offset, f"expected magic 0x{MAGIC:08x}, found 0x{magic:08x}")
    return lrec & _LENGTH_MASK, lrec >> 29


def _check_flag(cflag: int, in_multipart: bool, index: int, offset: int) -> None:
    if cflag > _LAST:
        raise RecordIOError(index, offset, f"invalid continuation flag {cflag} (must be 0-3)")
    if in_multipart and cflag in (_COMPLETE, _FIRST):
        raise RecordIOError(
            index, offset, f"multipart record interrupted by a part with continuation flag {cflag}"
        )
    if not in_multipart and cflag in (_MIDDLE, _LAST):
        raise RecordIOError(
            index, offset, f"continuation flag {cflag} without a preceding first part (flag 1)"
        )


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    """Up to *size* bytes; fewer only at end of stream (handles short reads from pipes).

    Beyond :data:`_READ_CHUNK` bytes it reads a chunk at a time: a buffered file's
    ``read(n)`` allocates *n* bytes first, so a corrupt header announcing a 512 MiB part
    would otherwise cost 512 MiB whatever the file holds.
    """
    chunks: list[bytes] = []
    missing = size
    if size <= _READ_CHUNK:
        data = stream.read(size)
        if data is None:
            data = b""
        if len(data) == size or not data:
            return bytes(data)
        chunks.append(data)
        missing -= len(data)
    while missing:
        more = stream.read(min(missing, _READ_CHUNK))
        if not more:
            break
        chunks.append(more)
        missing -= len(more)
    return b"".join(chunks)


def iter_records(stream: BinaryIO) -> Iterator[bytes]:
    """Yield each record's payload from a RecordIO *stream*, multipart records joined.

    Reads incrementally, so a FIFO or socket is consumed as data arrives. A record's final
    padding may be missing at the end of the stream (no data is lost); anything else short
    or malformed raises :class:`RecordIOError`.
    """
    for _index, _offset, payload in iter_framed(stream):
        yield payload


def iter_framed(stream: BinaryIO) -> Iterator[tuple[int, int, bytes]]:
    """Like :func:`iter_records`, yielding ``(index, byte_offset, payload)`` for error messages."""
    offset = 0
    index = 0
    parts: list[bytes] = []
    record_offset = 0
    while True:
        header = _read_exact(stream, _HEADER_SIZE)
        if not header:
            if parts:
                raise RecordIOError(
                    index, record_offset, "stream ends inside a multipart record (no last part)"
                )
            return
        if len(header) < _HEADER_SIZE:
            raise RecordIOError(
                index,
                offset,
                f"truncated: {len(header)} bytes left, a part header needs {_HEADER_SIZE}",
            )
        magic, lrec = _HEADER.unpack(header)
        length, cflag = _check_header(magic, lrec, index, offset)
        _check_flag(cflag, bool(parts), index, offset)
        padded = _padded(length)
        body = _read_exact(stream, padded)
        if len(body) < length:
            raise RecordIOError(
                index,
                offset,
                f"truncated: header announces {length} payload bytes, only {len(body)} remain",
            )
        if not parts:
            record_offset = offset
        offset += _HEADER_SIZE + len(body)
        payload = body[:length] if padded != length else body
        if cflag == _COMPLETE:
            yield index, record_offset, payload
            index += 1
        elif cflag == _FIRST:
            parts = [payload]
        elif cflag == _MIDDLE:
            parts.append(payload)
        else:
            parts.append(payload)
            yield index, record_offset, MAGIC_BYTES.join(parts)
            parts = []
            index += 1
        if len(body) < padded:  # padding cut off at the very end: nothing lost
            if parts:
                raise RecordIOError(
                    index, record_offset, "stream ends inside a multipart record (no last part)"
                )
            return


@dataclass(frozen=True)
class Framing:
    """Where the records of an in-memory RecordIO buffer lie (see :func:`scan_records`).

    ``starts[i]``/``lengths[i]`` locate record *i*'s payload in the buffer. A multipart record
    has ``starts[i] == -1`` and ``lengths[i]`` = the stream offset of its first header; its
    joined payload is ``joined[i]``. ``consumed`` is the number of bytes of whole records.
    """

    starts: np.ndarray
    lengths: np.ndarray
    joined: Mapping[int, bytes]
    consumed: int

    def __len__(self) -> int:
        return len(self.starts)

    def payload(self, data: bytes, i: int) -> bytes:
        """Record *i*'s payload (a copy)."""
        start = int(self.starts[i])
        if start < 0:
            return self.joined[i]
        return bytes(data[start : start + int(self.lengths[i])])

    def offsets(self, base_offset: int = 0) -> np.ndarray:
        """The stream offset of each record's (first) header."""
        return np.where(self.starts >= 0, self.starts - _HEADER_SIZE + base_offset, self.lengths)


# Consecutive equal-length records after which a vectorised check of the rest is tried.
_RUN_TRIGGER = 8


def scan_records(
    data: bytes | bytearray | memoryview,
    *,
    final: bool = True,
    base_offset: int = 0,
    base_index: int = 0,
) -> Framing:
    """Frame an in-memory buffer without copying single-part payloads.

    Runs of equal-length records (what SageMaker's SDK writes for dense data) are framed with
    numpy in one step, so framing costs little more than one pass over the headers.

    With ``final=False`` a trailing partial record is left unconsumed, so a caller reading in
    chunks can carry it over; with ``final=True`` (the whole stream) it raises
    :class:`RecordIOError`. *base_offset* and *base_index* make error messages count from the
    start of the whole stream when *data* is a chunk of it.
    """
    view = data if isinstance(data, bytes) else memoryview(data).cast("B")
    size = len(view)
    seg_starts: list[np.ndarray] = []
    seg_lengths: list[np.ndarray] = []
    starts: list[int] = []
    lengths: list[int] = []
    count = 0  # records framed so far
    joined: dict[int, bytes] = {}
    pos = 0
    consumed = 0
    record_offset = 0
    unpack = _HEADER.unpack_from
    parts: list[bytes] = []
    same = 0
    last_length = -1
    while pos + _HEADER_SIZE <= size:
        magic, lrec = unpack(view, pos)
        if magic == MAGIC and not lrec >> 29 and not parts:
            length, cflag = lrec, _COMPLETE
        else:
            index = base_index + count
            length, cflag = _check_header(magic, lrec, index, base_offset + pos)
            _check_flag(cflag, bool(parts), index, base_offset + pos)
        start = pos + _HEADER_SIZE
        padded_end = start + ((length + 3) & ~3)
        if start + length > size or (not final and padded_end > size):
            if final:
                raise RecordIOError(
                    base_index + count,
                    base_offset + pos,
                    f"truncated: header announces {length} payload bytes, "
                    f"only {size - start} remain",
                )
            break
        if not parts:
            record_offset = pos
        if cflag == _COMPLETE:
            starts.append(start)
            lengths.append(length)
            count += 1
            pos = consumed = padded_end if padded_end <= size else size
            same = same + 1 if length == last_length else 1
            last_length = length
            if same >= _RUN_TRIGGER:
                run = _uniform_run(view, pos, length, size)
                if run:
                    stride = _HEADER_SIZE + ((length + 3) & ~3)
                    seg_starts.append(np.array(starts, dtype=np.int64))
                    seg_lengths.append(np.array(lengths, dtype=np.int64))
                    starts, lengths = [], []
                    seg_starts.append(pos + _HEADER_SIZE + stride * np.arange(run, dtype=np.int64))
                    seg_lengths.append(np.full(run, length, dtype=np.int64))
                    count += run
                    pos = consumed = pos + run * stride
                same = 0
            continue
        end = start + length
        if cflag == _LAST:
            parts.append(bytes(view[start:end]))
            joined[count] = MAGIC_BYTES.join(parts)
            starts.append(-1)
            lengths.append(base_offset + record_offset)
            count += 1
            parts = []
            consumed = min(padded_end, size)
        else:
            parts.append(bytes(view[start:end]))
        pos = min(padded_end, size)
        same = 0
    if final:
        if parts:
            raise RecordIOError(
                base_index + count,
                base_offset + record_offset,
                "stream ends inside a multipart record (no last part)",
            )
        if pos < size:
            raise RecordIOError(
                base_index + count,
                base_offset + pos,
                f"truncated: {size - pos} bytes left, a part header needs {_HEADER_SIZE}",
            )
    seg_starts.append(np.array(starts, dtype=np.int64))
    seg_lengths.append(np.array(lengths, dtype=np.int64))
    return Framing(np.concatenate(seg_starts), np.concatenate(seg_lengths), joined, consumed)


def _uniform_run(view: bytes | memoryview, pos: int, length: int, size: int) -> int:
    """How many complete records of payload *length* follow back to back from *pos*."""
    stride = _HEADER_SIZE + ((length + 3) & ~3)
    available = (size - pos) // stride
    if available == 0 or pos % 4:
        return 0
    words = np.frombuffer(view, dtype="<u4", count=available * stride // 4, offset=pos)
    words = words.reshape(available, stride // 4)
    good = (words[:, 0] == MAGIC) & (words[:, 1] == length)
    return available if good.all() else int(np.argmin(good))


def read_all_records(stream: BinaryIO) -> list[bytes]:
    """Every payload of *stream* as a list (convenience over :func:`iter_records`)."""
    return list(iter_records(stream))


def _split_points(payload: bytes) -> list[int]:
    """Aligned offsets where the magic word occurs inside *payload* (a writer must split there)."""
    points = []
    find = payload.find
    pos = find(MAGIC_BYTES)
    while pos != -1:
        if pos % 4 == 0:
            points.append(pos)
            pos = find(MAGIC_BYTES, pos + 4)
        else:
            pos = find(MAGIC_BYTES, pos + 1)
    return points


def _part(payload: bytes | memoryview, cflag: int) -> bytes:
    length = len(payload)
    if length > MAX_PART_LENGTH:
        raise ValueError(
            f"RecordIO part of {length} bytes exceeds the format's limit of {MAX_PART_LENGTH}"
        )
    pad = _padded(length) - length
    return b"".join((_HEADER.pack(MAGIC, (cflag << 29) | length), payload, b"\0" * pad))


def encode_record(payload: bytes) -> bytes:
    """One record framed as RecordIO, split where the payload contains an aligned magic word."""
    payload = bytes(payload)
    points = _split_points(payload)
    if not points:
        return _part(payload, _COMPLETE)
    pieces = []
    start = 0
    for i, point in enumerate(points):
        pieces.append(_part(payload[start:point], _FIRST if i == 0 else _MIDDLE))
        start = point + 4
    pieces.append(_part(payload[start:], _LAST))
    return b"".join(pieces)


def write_record(stream: BinaryIO, payload: bytes) -> None:
    """Write one framed record to *stream*."""
    stream.write(encode_record(payload))


def encode_records(payloads: Iterable[bytes]) -> bytes:
    """Frame every payload and concatenate them: a whole RecordIO file in memory."""
    return b"".join(encode_record(p) for p in payloads)
