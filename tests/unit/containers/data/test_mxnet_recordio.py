"""MXNet image RecordIO (.rec/.idx) reader and the Object Detection label parser.

mxnet is not installed and no im2rec-made .rec fixture exists, so the files here come from a
small writer written from the documented format (reference §2.1, §2.5: MXNet's
``recordio.pack`` and dmlc's ``RecordIOWriter``), independent of
``sagedock.toolkit.formats.recordio``'s own encoder (which is checked to agree with it).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagedock.containers.data.mxnet_recordio import (
    NOT_ENOUGH_ANNOTATION,
    NOT_ENOUGH_LABEL,
    ImageRecordFile,
    iter_image_records,
    parse_detection_label,
    read_index,
    read_mxnet_recordio,
    unpack_image_record,
)
from sagedock.toolkit.errors import UserError
from sagedock.toolkit.formats.recordio import encode_record
from tests.fuzz import property_settings

MAGIC = b"\x0a\x23\xd7\xce"  # 0xced7230a little-endian, as on disk
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(40)) + b"\xff\xd9"


# --- the test-side writer (documented format only) --------------------------------------


def pack(label: float | list[float], image: bytes, id: int = 0, id2: int = 0) -> bytes:
    """MXNet's recordio.pack: a list label sets flag = its length and a zero scalar label."""
    if isinstance(label, list):
        head = struct.pack("<IfQQ", len(label), 0.0, id, id2)
        return head + struct.pack(f"<{len(label)}f", *label) + image
    return struct.pack("<IfQQ", 0, label, id, id2) + image


def _part(data: bytes, cflag: int) -> bytes:
    pad = b"\0" * (-len(data) % 4)
    return MAGIC + struct.pack("<I", (cflag << 29) | len(data)) + data + pad


def frame(payload: bytes) -> bytes:
    """dmlc RecordIOWriter::WriteRecord: split at each 4-aligned magic word, dropping it."""
    pieces: list[bytes] = []
    start = 0
    for i in range(0, len(payload) - 3, 4):
        if payload[i : i + 4] == MAGIC:
            pieces.append(payload[start:i])
            start = i + 4
    if not pieces:
        return _part(payload, 0)
    out = [_part(p, 1 if n == 0 else 2) for n, p in enumerate(pieces)]
    return b"".join(out) + _part(payload[start:], 3)


def write_rec(tmp_path: Path, payloads: list[bytes], keys: list[int] | None = None) -> Path:
    """A .rec file of *payloads* and its .idx (MXIndexedRecordIO: key, offset of the header)."""
    rec = tmp_path / "train.rec"
    keys = list(range(len(payloads))) if keys is None else keys
    lines = []
    body = b""
    for key, payload in zip(keys, payloads, strict=True):
        lines.append(f"{key}\t{len(body)}\n")
        body += frame(payload)
    rec.write_bytes(body)
    (tmp_path / "train.idx").write_text("".join(lines))
    return rec


def detection(*objects: list[float], header: list[float] | None = None) -> list[float]:
    head = header if header is not None else [2.0, float(len(objects[0]) if objects else 5)]
    return head + [v for obj in objects for v in obj]


# --- the writer agrees with the framing's own encoder -----------------------------------


@pytest.mark.parametrize(
    "payload",
    [b"", b"abc", b"abcd", MAGIC, b"abcd" + MAGIC + b"xy", MAGIC + MAGIC, b"a" + MAGIC + b"bcd"],
)
def test_test_writer_frames_as_the_toolkit_encoder(payload: bytes) -> None:
    assert frame(payload) == encode_record(payload)


# --- reading ----------------------------------------------------------------------------


def test_records_round_trip_with_ids_labels_and_image_bytes(tmp_path: Path) -> None:
    labels = [detection([0, 0.1, 0.2, 0.5, 0.6]), detection([1, 0, 0, 1, 1], [2, 0.5, 0.5, 0.9, 1])]
    payloads = [pack(lab, JPEG + bytes([i]), id=i, id2=7) for i, lab in enumerate(labels)]
    records = list(read_mxnet_recordio(write_rec(tmp_path, payloads)))
    assert [r.id for r in records] == [0, 1] and [r.id2 for r in records] == [7, 7]
    for record, lab, i in zip(records, labels, range(2), strict=True):
        assert record.label.dtype == np.float32
        np.testing.assert_array_equal(record.label, np.array(lab, dtype=np.float32))
        assert record.image == JPEG + bytes([i])


def test_a_scalar_label_is_one_value(tmp_path: Path) -> None:
    rec = write_rec(tmp_path, [pack(3.5, JPEG, id=2**63 + 5)])
    (record,) = read_mxnet_recordio(rec)
    assert record.label.tolist() == [3.5] and record.id == 2**63 + 5 and record.image == JPEG


def test_many_records_stream_in_order(tmp_path: Path) -> None:
    payloads = [pack([float(i), 1.0], bytes([i % 256]) * (i % 13), id=i) for i in range(300)]
    records = list(read_mxnet_recordio(write_rec(tmp_path, payloads)))
    assert [r.id for r in records] == list(range(300))
    assert all(r.image == bytes([r.id % 256]) * (r.id % 13) for r in records)
    assert [r.label[0] for r in records] == list(range(300))


def test_multipart_records_are_joined(tmp_path: Path) -> None:
    # 24-byte header + 2 labels = 32 bytes: image offsets 0, 8, ... are 4-aligned in the payload.
    image = b"\xff\xd8" + b"xy" + MAGIC + b"12345678" + MAGIC + MAGIC + b"tail!"
    payload = pack([1.0, 2.0], image, id=9)
    framed = frame(payload)
    assert framed.count(MAGIC) == 4  # one complete record would hold a single magic word
    assert struct.unpack_from("<I", framed, 4)[0] >> 29 == 1  # the first part: cflag 1
    rec = write_rec(tmp_path, [pack(0.0, JPEG), payload, pack(1.0, JPEG)])
    records = list(read_mxnet_recordio(rec))
    assert records[1].image == image and records[1].label.tolist() == [1.0, 2.0]
    assert records[2].image == JPEG
    with ImageRecordFile(rec, tmp_path / "train.idx") as f:
        assert f.read(1).image == image and f.read(2).image == JPEG


def test_a_label_whose_bits_are_the_magic_word_survives(tmp_path: Path) -> None:
    (magic_float,) = struct.unpack("<f", MAGIC)
    rec = write_rec(tmp_path, [pack([magic_float, magic_float], JPEG)])
    (record,) = read_mxnet_recordio(rec)
    assert record.label.tobytes() == MAGIC * 2 and record.image == JPEG


def test_a_stream_reads_like_a_file(tmp_path: Path) -> None:
    rec = write_rec(tmp_path, [pack([1.0], JPEG, id=i) for i in range(5)])
    records = list(iter_image_records(io.BytesIO(rec.read_bytes())))
    assert [r.id for r in records] == list(range(5))


def test_an_empty_file_has_no_records(tmp_path: Path) -> None:
    (tmp_path / "e.rec").write_bytes(b"")
    assert list(read_mxnet_recordio(tmp_path / "e.rec")) == []


# --- .idx random access -----------------------------------------------------------------


def test_idx_gives_random_access_by_key(tmp_path: Path) -> None:
    keys = [10, 3, 42, 7]
    payloads = [pack([float(k)], JPEG * (k % 3 + 1), id=k) for k in keys]
    rec = write_rec(tmp_path, payloads, keys)
    idx = tmp_path / "train.idx"
    assert list(read_index(idx)) == keys
    with ImageRecordFile(rec, idx) as f:
        assert f.keys() == keys
        for k in [42, 3, 10, 7, 42]:
            record = f.read(k)
            assert record.id == k and record.label.tolist() == [float(k)]
            assert record.image == JPEG * (k % 3 + 1)
        assert [r.id for r in f] == keys  # sequential iteration beside random access
        with pytest.raises(UserError, match="no record with key 5 in its index"):
            f.read(5)


def test_idx_tolerates_blank_lines_and_whitespace(tmp_path: Path) -> None:
    idx = tmp_path / "a.idx"
    idx.write_bytes(b"0\t0\r\n\n 1\t48 \n")
    assert read_index(idx) == {0: 0, 1: 48}


@pytest.mark.parametrize(
    "line", ["0 0", "a\t0", "0\t-4", "0\t1\t2", "0\t1.5", "-1\t0", "0"], ids=repr
)
def test_a_malformed_idx_line_names_the_line(tmp_path: Path, line: str) -> None:
    idx = tmp_path / "a.idx"
    idx.write_text(f"5\t0\n{line}\n")
    with pytest.raises(UserError, match=r"a\.idx: line 2: expected 'key<TAB>byte offset'"):
        read_index(idx)


def test_a_repeated_idx_key_is_an_error(tmp_path: Path) -> None:
    idx = tmp_path / "a.idx"
    idx.write_text("1\t0\n1\t40\n")
    with pytest.raises(UserError, match="line 2: key 1 appears twice"):
        read_index(idx)


def test_an_idx_offset_off_a_record_names_key_and_offset(tmp_path: Path) -> None:
    rec = write_rec(tmp_path, [pack([1.0], JPEG), pack([2.0], JPEG)])
    idx = tmp_path / "bad.idx"
    idx.write_text("0\t4\n1\t100000\n")
    with ImageRecordFile(rec, idx) as f:
        with pytest.raises(UserError, match=r"train\.rec: record with key 0 at byte offset 4: "):
            f.read(0)
        with pytest.raises(UserError, match=r"key 1 at byte offset 100000: .*past the end"):
            f.read(1)


def test_random_access_needs_the_idx(tmp_path: Path) -> None:
    rec = write_rec(tmp_path, [pack([1.0], JPEG)])
    with ImageRecordFile(rec) as f:
        assert len(list(f)) == 1
        assert f.read_at(0).label.tolist() == [1.0]
        with pytest.raises(UserError, match=r"random access needs the \.idx file"):
            f.keys()


# --- corrupt records: UserErrors naming file, record and offset ------------------------


def test_a_payload_shorter_than_the_header(tmp_path: Path) -> None:
    rec = write_rec(tmp_path, [pack([1.0], JPEG), b"short"])
    first = len(frame(pack([1.0], JPEG)))
    with pytest.raises(
        UserError, match=rf"train\.rec: record 1 at byte offset {first}: 5 bytes, shorter"
    ):
        list(read_mxnet_recordio(rec))


def test_labels_past_the_payload(tmp_path: Path) -> None:
    payload = struct.pack("<IfQQ", 1000, 0.0, 0, 0) + b"\0" * 40
    with pytest.raises(UserError, match=r"record 0 at byte offset 0: .*1000 float32 labels"):
        list(read_mxnet_recordio(write_rec(tmp_path, [payload])))


def test_broken_framing_names_the_file(tmp_path: Path) -> None:
    rec = write_rec(tmp_path, [pack([1.0], JPEG), pack([2.0], JPEG)])
    data = rec.read_bytes()
    rec.write_bytes(data[:-10])
    with pytest.raises(UserError, match=r"train\.rec: corrupt RecordIO data: record 1 at byte"):
        list(read_mxnet_recordio(rec))
    rec.write_bytes(b"JFIF" + data)
    with pytest.raises(UserError, match=r"train\.rec: .*record 0 at byte offset 0: expected magic"):
        list(read_mxnet_recordio(rec))


def test_unpack_names_where(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^here: 3 bytes"):
        unpack_image_record(b"abc", where="here")


# --- detection labels -------------------------------------------------------------------


def test_detection_label_gives_objects_by_five() -> None:
    label = np.array(detection([0, 0.1, 0.2, 0.3, 0.4], [2, 0, 0, 1, 1]), dtype=np.float32)
    objects = parse_detection_label(label, num_classes=3)
    assert objects.dtype == np.float32 and objects.shape == (2, 5)
    np.testing.assert_array_equal(objects, label[2:].reshape(2, 5))


def test_detection_label_with_a_wider_header_and_objects() -> None:
    label = detection([1, 0.1, 0.2, 0.3, 0.4, 9, 8], header=[4, 7, 640, 480])
    objects = parse_detection_label(np.array(label))
    assert objects.shape == (1, 7)
    np.testing.assert_allclose(objects[0], [1, 0.1, 0.2, 0.3, 0.4, 9, 8], rtol=1e-6)


def test_a_record_gives_its_objects(tmp_path: Path) -> None:
    rec = write_rec(tmp_path, [pack(detection([0, 0.1, 0.2, 0.3, 0.4]), JPEG)])
    (record,) = read_mxnet_recordio(rec)
    assert record.detection_objects(num_classes=1).shape == (1, 5)
    bad = write_rec(tmp_path, [pack(detection([3, 0.1, 0.2, 0.3, 0.4]), JPEG)])
    (record,) = read_mxnet_recordio(bad)
    with pytest.raises(UserError, match=r"^train\.rec: record 0 at byte offset 0: object 0 has"):
        record.detection_objects(num_classes=2)


OBJ = [0.0, 0.1, 0.2, 0.3, 0.4]


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ([], "Not enough label packed in img_list or rec file. The label has 0 value"),
        ([2.0], "Not enough label packed in img_list or rec file. The label has 1 value"),
        ([1.0, 5.0, *OBJ], r"header width \(its first value\) is 1.0; .* at least 2"),
        ([2.5, 5.0, *OBJ], r"header width \(its first value\) is 2.5"),
        ([float("nan"), 5.0, *OBJ], r"header width \(its first value\) is nan"),
        ([2.0, 4.0, 0, 0.1, 0.2, 0.3], "Not enough annotation packed in the list file"),
        ([2.0, 5.5, *OBJ], r"Not enough annotation .* object width \(its second value\) is 5.5"),
        ([2.0, 5.0], "Not enough label packed .* fewer than its header"),
        ([4.0, 5.0, 1.0, 2.0], "Not enough label packed .* fewer than its header"),
        ([2.0, 5.0, *OBJ, 1.0], "has 8 values, not the header width 2 plus a whole number"),
        ([2.0, 5.0, -1.0, 0.1, 0.2, 0.3, 0.4], "object 0 has class id -1.0; class ids are whole"),
        ([2.0, 5.0, *OBJ, 0.5, 0.1, 0.2, 0.3, 0.4], "object 1 has class id 0.5"),
        ([2.0, 5.0, float("inf"), 0.1, 0.2, 0.3, 0.4], "object 0 has class id inf"),
        ([2.0, 5.0, 0.0, -0.1, 0.2, 0.3, 0.4], r"box \[-0.1, 0.2, 0.3, 0.4\]; .*normalised"),
        ([2.0, 5.0, 0.0, 0.1, 0.2, 0.3, 1.5], r"box \[0.1, 0.2, 0.3, 1.5\]; .*\[0, 1\]"),
        ([2.0, 5.0, 0.0, 0.1, float("nan"), 0.3, 0.4], r"box \[0.1, nan, 0.3, 0.4\]"),
        ([2.0, 5.0, 0.0, 0.3, 0.2, 0.3, 0.4], "xmin must be below xmax and ymin below ymax"),
        ([2.0, 5.0, *OBJ, 0.0, 0.5, 0.6, 0.7, 0.2], "object 1 has box .*ymin below ymax"),
    ],
)
def test_bad_detection_labels(label: list[float], message: str) -> None:
    with pytest.raises(UserError, match=f"^rec 3: (.* )?{message}"):
        parse_detection_label(np.array(label, dtype=np.float32), where="rec 3")


def test_class_ids_at_or_over_num_classes() -> None:
    label = np.array(detection(OBJ, [2, 0.1, 0.2, 0.3, 0.4]), dtype=np.float32)
    assert parse_detection_label(label, num_classes=3).shape == (2, 5)
    with pytest.raises(UserError, match=r"object 1 has class id 2, outside 0 to 1 \(num_classes"):
        parse_detection_label(label, num_classes=2)


def test_a_label_wider_than_label_width() -> None:
    label = np.array(detection(OBJ, OBJ), dtype=np.float32)
    assert parse_detection_label(label, label_width=12).shape == (2, 5)
    with pytest.raises(UserError, match=r"^Invalid parameter value 'label_width'\. x: .* 12 "):
        parse_detection_label(label, label_width=11, where="x")


def test_sagemakers_texts_are_quoted() -> None:
    assert NOT_ENOUGH_LABEL == "Not enough label packed in img_list or rec file."
    assert NOT_ENOUGH_ANNOTATION.startswith("Not enough annotation packed in the list file or")


# two distinct coordinates per axis, sorted: every box is valid without filtering (a filter
# on four free floats threw away too many examples: hypothesis's filter_too_much health check)
_span = st.lists(st.floats(0, 1, width=32), min_size=2, max_size=2, unique=True).map(sorted)
boxes = st.tuples(_span, _span).map(lambda xy: (xy[0][0], xy[1][0], xy[0][1], xy[1][1]))


@property_settings(examples=50)
@given(objects=st.lists(st.tuples(st.integers(0, 19), boxes), min_size=1, max_size=8))
def test_valid_detection_labels_round_trip(objects: list[tuple[int, tuple[float, ...]]]) -> None:
    rows = [[float(c), *b] for c, b in objects]
    label = np.array(detection(*rows), dtype=np.float32)
    got = parse_detection_label(label, num_classes=20)
    np.testing.assert_array_equal(got, np.array(rows, dtype=np.float32))
