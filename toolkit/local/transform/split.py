"""Splitting a transform input file into records (``SplitType``).

Each record is yielded as the bytes that go into a request, so that a mini-batch is the plain
concatenation of its records, as SageMaker sends it:

- ``None``: the whole file is one record (an empty file gives none);
- ``Line``: each non-empty line, with its ``\\n`` (one is added to a last line without it, so
  records concatenate safely); ``\\r\\n`` endings are kept;
- ``RecordIO``: each (possibly multipart) dmlc RecordIO record, framed;
- ``TFRecord``: each TFRecord frame (length, length CRC, data, data CRC) as it is in the file;
  the length CRC is checked so misframed data is caught at its record.

Corrupt input raises :class:`SplitError` naming the record number (1-based) and byte offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

from sagedock.toolkit.errors import UserError

SPLIT_TYPES = ("None", "Line", "RecordIO", "TFRecord")


class SplitError(UserError):
    """An input file cannot be split into records of the requested SplitType."""


def split_records(stream: BinaryIO, split_type: str, *, source: str = "input") -> Iterator[bytes]:
    """Yield the records of *stream* for *split_type*; *source* names the file in errors."""
    if split_type == "None":
        data = stream.read()
        if data:
            yield data
    elif split_type == "Line":
        yield from _lines(stream)
    elif split_type == "RecordIO":
        yield from _recordio(stream, source)
    elif split_type == "TFRecord":
        yield from _tfrecords(stream, source)
    else:
        raise SplitError(
            f"unknown SplitType {split_type!r} (expected one of {', '.join(SPLIT_TYPES)})"
        )


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    for line in stream:
        if line.strip(b"\r\n") == b"":
            continue
        yield line if line.endswith(b"\n") else line + b"\n"


def _recordio(stream: BinaryIO, source: str) -> Iterator[bytes]:
    from sagedock.toolkit.formats.recordio import RecordIOError, encode_record, iter_framed

    try:
        for _index, _offset, payload in iter_framed(stream):
            yield encode_record(payload)
    except RecordIOError as exc:
        raise SplitError(
            f"{source}: record {exc.index + 1} at byte offset {exc.offset}: {exc.problem}"
        ) from exc


# -- TFRecord ------------------------------------------------------------------------------
# A TFRecord frame: u64 LE length | u32 LE masked crc32c(length bytes) | data | u32 masked crc.
_MASK_DELTA = 0xA282EAD8


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of *data*."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits and add a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def encode_tfrecord(data: bytes) -> bytes:
    """One TFRecord frame around *data* (used by tests and tools)."""
    length = struct.pack("<Q", len(data))
    return b"".join(
        (
            length,
            struct.pack("<I", masked_crc32c(length)),
            data,
            struct.pack("<I", masked_crc32c(data)),
        )
    )


def _tfrecords(stream: BinaryIO, source: str) -> Iterator[bytes]:
    offset = 0
    number = 1
    while True:
        header = stream.read(12)
        if not header:
            return
        if len(header) < 12:
            raise SplitError(
                f"{source}: TFRecord {number} at byte offset {offset}: truncated header"
            )
        length_bytes, (length_crc,) = header[:8], struct.unpack("<I", header[8:])
        if masked_crc32c(length_bytes) != length_crc:
            raise SplitError(
                f"{source}: TFRecord {number} at byte offset {offset}: bad length checksum "
                "(not TFRecord data, or corrupt)"
            )
        (length,) = struct.unpack("<Q", length_bytes)
        rest = stream.read(length + 4)
        if len(rest) < length + 4:
            raise SplitError(
                f"{source}: TFRecord {number} at byte offset {offset}: truncated, header "
                f"announces {length} bytes"
            )
        yield header + rest
        offset += 12 + length + 4
        number += 1
