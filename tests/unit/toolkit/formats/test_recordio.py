"""RecordIO framing: magic, length word with continuation flag, padding, multipart records."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagedock.toolkit.errors import UserError
from sagedock.toolkit.formats import recordio
from sagedock.toolkit.formats.recordio import (
    MAGIC_BYTES,
    RecordIOError,
    encode_record,
    encode_records,
    iter_records,
    scan_records,
    write_record,
)
from tests.fuzz import within_memory


def _part(payload: bytes, cflag: int = 0) -> bytes:
    pad = (-len(payload)) % 4
    return struct.pack("<II", recordio.MAGIC, (cflag << 29) | len(payload)) + payload + b"\0" * pad


def _read(data: bytes) -> list[bytes]:
    return list(iter_records(io.BytesIO(data)))


def _scan(data: bytes) -> list[bytes]:
    framing = scan_records(data)
    assert framing.consumed == len(data)
    return [framing.payload(data, i) for i in range(len(framing))]


def test_magic_is_written_little_endian() -> None:
    assert bytes.fromhex("0a23d7ce") == MAGIC_BYTES


def test_record_is_padded_to_four_bytes() -> None:
    framed = encode_record(b"abcde")
    assert framed == bytes.fromhex("0a23d7ce05000000") + b"abcde\0\0\0"


def test_payload_with_aligned_magic_is_split_into_parts() -> None:
    payload = b"abcd" + MAGIC_BYTES + b"xy"
    framed = encode_record(payload)
    assert framed == _part(b"abcd", 1) + _part(b"xy", 3)
    assert _read(framed) == [payload]


def test_unaligned_magic_is_not_split() -> None:
    payload = b"ab" + MAGIC_BYTES + b"cd"
    assert encode_record(payload) == _part(payload)


def test_three_part_record_is_joined_with_magic() -> None:
    data = _part(b"aaaa", 1) + _part(b"", 2) + _part(b"bb", 3) + _part(b"next")
    expected = [b"aaaa" + MAGIC_BYTES + MAGIC_BYTES + b"bb", b"next"]
    assert _read(data) == expected
    assert _scan(data) == expected


def test_missing_final_padding_loses_nothing() -> None:
    data = _part(b"abcde")[:-3]
    assert _read(data) == [b"abcde"]
    assert _scan(data) == [b"abcde"]


@given(
    st.lists(
        st.binary(max_size=64)
        | st.lists(st.sampled_from([b"\0\0\0\0", MAGIC_BYTES, b"abcd"])).map(b"".join)
    )
)
def test_round_trip_through_stream_and_buffer(payloads: list[bytes]) -> None:
    data = encode_records(payloads)
    assert len(data) % 4 == 0
    assert _read(data) == payloads
    assert _scan(data) == payloads
    out = io.BytesIO()
    for payload in payloads:
        write_record(out, payload)
    assert out.getvalue() == data


class _Trickle(io.RawIOBase):
    """A pipe that hands out at most three bytes per read."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk, self._data = self._data[: min(size, 3)], self._data[min(size, 3) :]
        return bytes(chunk)


def test_short_reads_from_a_pipe_are_completed() -> None:
    payloads = [b"x" * 10, b"", b"yz"]
    assert list(iter_records(_Trickle(encode_records(payloads)))) == payloads  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _part(b"ok") + b"\x00\x00\x00\x00\x02\x00\x00\x00ab\0\0",
            "corrupt RecordIO data: record 1 at byte offset 12: expected magic 0xced7230a, "
            "found 0x00000000",
        ),
        (
            _part(b"abcd") + _part(b"abcdefgh")[:12],
            "corrupt RecordIO data: record 1 at byte offset 12: truncated: header announces 8 "
            "payload bytes, only 4 remain",
        ),
        (
            _part(b"abcd") + MAGIC_BYTES + b"\x01",
            "corrupt RecordIO data: record 1 at byte offset 12: truncated: 5 bytes left, "
            "a part header needs 8",
        ),
        (
            _part(b"abcd", 2),
            "corrupt RecordIO data: record 0 at byte offset 0: continuation flag 2 without a "
            "preceding first part (flag 1)",
        ),
        (
            _part(b"abcd", 1) + _part(b"efgh", 0),
            "corrupt RecordIO data: record 0 at byte offset 12: multipart record interrupted "
            "by a part with continuation flag 0",
        ),
        (
            _part(b"ab") + _part(b"abcd", 1),
            "corrupt RecordIO data: record 1 at byte offset 12: stream ends inside a multipart "
            "record (no last part)",
        ),
        (
            struct.pack("<II", recordio.MAGIC, 5 << 29) + b"",
            "corrupt RecordIO data: record 0 at byte offset 0: invalid continuation flag 5 "
            "(must be 0-3)",
        ),
    ],
    ids=[
        "bad-magic",
        "truncated-payload",
        "truncated-header",
        "orphan-middle",
        "interrupted",
        "unterminated",
        "bad-flag",
    ],
)
def test_corrupt_stream_names_record_and_offset(data: bytes, message: str) -> None:
    with pytest.raises(RecordIOError) as from_stream:
        _read(data)
    assert str(from_stream.value) == message
    assert isinstance(from_stream.value, UserError)
    with pytest.raises(RecordIOError) as from_buffer:
        scan_records(data)
    assert str(from_buffer.value) == message


def test_partial_scan_leaves_the_incomplete_record_for_the_next_chunk() -> None:
    data = _part(b"abcde") + _part(b"fghij")
    framing = scan_records(data[:-2], final=False)
    assert (framing.starts.tolist(), framing.lengths.tolist(), framing.consumed) == ([8], [5], 16)
    framing = scan_records(data[16:], final=False)
    assert (framing.starts.tolist(), framing.consumed) == ([8], 16)


def test_long_runs_of_equal_records_are_framed_like_single_ones() -> None:
    payloads = [b"x" * 6] * 50 + [b"yy"] + [b"z" * 9] * 20 + [b"a" * 4 + MAGIC_BYTES] + [b"q"] * 30
    data = encode_records(payloads)
    assert _scan(data) == payloads
    framing = scan_records(data)
    assert framing.offsets().tolist()[:3] == [0, 16, 32]
    # A corrupt header deep inside a uniform run is still found and named.
    broken = bytearray(data)
    broken[16 * 40] ^= 0xFF
    with pytest.raises(RecordIOError, match="record 40 at byte offset 640: expected magic"):
        scan_records(bytes(broken))


def test_oversized_part_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recordio, "MAX_PART_LENGTH", 4)
    with pytest.raises(ValueError, match="exceeds the format's limit of 4"):
        encode_record(b"abcdef")


def test_a_header_announcing_a_huge_part_costs_no_memory_in_a_file(tmp_path: Path) -> None:
    # A buffered file's read(n) allocates n bytes up front: the reader reads in chunks, so a
    # corrupt length word (here the largest, 2**29 - 1) costs what the file holds.
    path = tmp_path / "bad.rec"
    path.write_bytes(struct.pack("<II", recordio.MAGIC, recordio.MAX_PART_LENGTH) + b"abcd")
    with path.open("rb") as fh, pytest.raises(RecordIOError, match="only 4 remain"):
        within_memory(lambda: list(iter_records(fh)), limit=8 << 20)


def test_a_record_larger_than_a_read_chunk_round_trips_through_a_file(tmp_path: Path) -> None:
    payloads = [bytes(range(256)) * 9000 + b"end", b"small"]  # over 2 MiB, then a small one
    path = tmp_path / "big.rec"
    path.write_bytes(encode_records(payloads))
    with path.open("rb") as fh:
        assert list(iter_records(fh)) == payloads
