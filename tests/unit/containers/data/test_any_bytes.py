"""For any bytes, every training-data reader yields batches or raises a UserError (a
ClientError naming the file), within a bounded time and memory: never another exception,
which a job would report as an AlgorithmError."""

from __future__ import annotations

import io
import json
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse
from hypothesis import given
from hypothesis import strategies as st

from sagedock.containers.data.csv import parse_csv_payload, read_csv_files, read_csv_stream
from sagedock.containers.data.image_manifest import (
    image_size_of,
    iter_manifest,
    iter_manifest_stream,
    pair_annotations,
)
from sagedock.containers.data.libsvm import parse_libsvm, read_libsvm_files
from sagedock.containers.data.mxnet_recordio import (
    ImageRecordFile,
    iter_image_records,
    read_index,
    read_mxnet_recordio,
)
from sagedock.containers.data.parquet import read_parquet_files, read_parquet_stream
from sagedock.containers.data.recordio_protobuf import (
    parse_recordio_protobuf,
    read_recordio_protobuf_files,
    read_recordio_protobuf_stream,
)
from sagedock.toolkit.errors import UserError
from sagedock.toolkit.formats import protobuf
from sagedock.toolkit.formats.recordio import MAGIC_BYTES, encode_record
from tests.fuzz import any_bytes, outcome, property_settings
from tests.unit.containers.data.test_image_manifest import jpeg, png

values = st.floats(allow_nan=False, allow_infinity=False, width=32)
tables = st.integers(1, 5).flatmap(
    lambda width: st.lists(st.lists(values, min_size=width, max_size=width), min_size=1, max_size=5)
)
delimiters = st.sampled_from([",", "\t", ";", " ", "|"])


@st.composite
def _csv(draw: st.DrawFn) -> bytes:
    rows = draw(tables.filter(lambda t: len(t[0]) >= 2))
    sep = draw(delimiters)
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return "".join(sep.join(map(repr, row)) + end for row in rows).encode()


@st.composite
def _libsvm(draw: st.DrawFn) -> bytes:
    lines = []
    for row in draw(tables):
        pairs = " ".join(f"{i}:{v!r}" for i, v in enumerate(row[1:], start=1) if v)
        lines.append(f"{row[0]!r} {pairs}".strip())
    return ("\n".join(lines) + "\n").encode()


@st.composite
def _parquet(draw: st.DrawFn) -> bytes:
    rows = np.array(draw(tables.filter(lambda t: len(t[0]) >= 2)), dtype=np.float64)
    table = pa.table({f"c{i}": rows[:, i] for i in range(rows.shape[1])})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression=draw(st.sampled_from(["none", "snappy", "zstd"])))
    return buffer.getvalue()


@st.composite
def _recordio(draw: st.DrawFn) -> bytes:
    rows = np.array(draw(tables), dtype=np.float32)
    features: Any = scipy.sparse.csr_matrix(rows) if draw(st.booleans()) else rows
    return protobuf.encode_recordio_protobuf(features, rows[:, 0])


@st.composite
def _mxnet_recordio(draw: st.DrawFn) -> bytes:
    # MXNet recordio.pack payloads: IRHeader '<IfQQ', flag float32 labels (a detection label
    # [2, 5, cls, xmin, ymin, xmax, ymax, ...]), then image bytes (sometimes holding the magic
    # word, so records split into parts).
    out = []
    for rid in range(draw(st.integers(1, 4))):
        label = [2.0, 5.0]
        for cls in range(draw(st.integers(1, 3))):
            x = sorted(draw(st.sets(st.floats(0, 1, width=32), min_size=2, max_size=2)))
            y = sorted(draw(st.sets(st.floats(0, 1, width=32), min_size=2, max_size=2)))
            label += [float(cls), x[0], y[0], x[1], y[1]]
        image = draw(st.binary(max_size=64)) + draw(st.sampled_from([b"", MAGIC_BYTES]))
        head = struct.pack("<IfQQ", len(label), 0.0, rid, 0)
        out.append(encode_record(head + struct.pack(f"<{len(label)}f", *label) + image))
    return b"".join(out)


@st.composite
def _image_header(draw: st.DrawFn) -> bytes:
    width, height = draw(st.integers(1, 4000)), draw(st.integers(1, 4000))
    return jpeg(width, height) if draw(st.booleans()) else png(width, height)


@st.composite
def _od_label(draw: st.DrawFn) -> dict[str, Any]:
    # A Ground Truth bounding-box label on a 64x48 image (the size sometimes left out).
    boxes = []
    for _ in range(draw(st.integers(1, 3))):
        left, top = draw(st.integers(0, 40)), draw(st.integers(0, 30))
        boxes.append(
            {
                "class_id": draw(st.integers(0, 2)),
                "left": left,
                "top": top,
                "width": draw(st.integers(1, 64 - left)),
                "height": draw(st.integers(1, 48 - top)),
            }
        )
    label: dict[str, Any] = {"annotations": boxes}
    if draw(st.booleans()):
        label["image_size"] = [{"width": 64, "height": 48, "depth": 3}]
    return label


_OD_ATTRS = ["source-ref", "bounding-box"]


@st.composite
def _annotation_file(draw: st.DrawFn) -> bytes:
    return json.dumps({"file": "a.jpg", **draw(_od_label())}).encode()


@st.composite
def _manifest(draw: st.DrawFn) -> bytes:
    lines = [
        json.dumps({"source-ref": f"s3://b/{i}.jpg", "bounding-box": draw(_od_label())})
        for i in range(draw(st.integers(1, 3)))
    ]
    return "\n".join(lines).encode()


@st.composite
def _manifest_pipe(draw: st.DrawFn) -> bytes:
    out = []
    for _ in range(draw(st.integers(1, 3))):
        image = jpeg(64, 48) if draw(st.booleans()) else png(64, 48)
        out += [encode_record(image), encode_record(json.dumps(draw(_od_label())).encode())]
    return b"".join(out)


def _read_annotation_file(body: bytes) -> list[Any]:
    with tempfile.TemporaryDirectory() as tmp:
        images, anns = Path(tmp) / "train", Path(tmp) / "train_annotation"
        images.mkdir()
        anns.mkdir()
        (images / "a.jpg").write_bytes(jpeg(64, 48))
        (anns / "a.json").write_bytes(body)
        return [(a.objects, a.size) for a in pair_annotations(images, anns, num_classes=3)]


def _read_manifest(body: bytes) -> list[Any]:
    entries = iter_manifest(io.BytesIO(body), _OD_ATTRS, num_classes=3)
    return [e.label.objects(e.label.size or image_size_of(jpeg(64, 48))) for e in entries]


def _read_images(records: Iterator[Any]) -> list[Any]:
    return [(r.label, r.image, r.detection_objects(num_classes=3)) for r in records]


def _read_indexed(body: bytes) -> list[Any]:
    # Random access at every 4-aligned offset an .idx could list (and one past the end).
    with tempfile.TemporaryDirectory() as tmp:
        rec, idx = Path(tmp) / "train.rec", Path(tmp) / "train.idx"
        rec.write_bytes(body)
        idx.write_text("".join(f"{k}\t{k * 4}\n" for k in range(len(body) // 4 + 2)))
        out: list[Any] = []
        with ImageRecordFile(rec, idx) as records:
            keys = records.keys()
            for key in keys:
                try:
                    out.append(records.read(key).label)
                except UserError as exc:
                    out.append(exc)
        return out


def _read_idx(body: bytes) -> dict[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.idx"
        path.write_bytes(body)
        return read_index(path)


def _in_file(body: bytes, read: Callable[[list[Path]], Iterator[Any]], suffix: str) -> list[Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"part-0{suffix}"
        path.write_bytes(body)
        return list(read([path]))


READERS: dict[str, tuple[st.SearchStrategy[bytes], Callable[[bytes], Any]]] = {
    "csv payload": (_csv(), parse_csv_payload),
    "csv file": (_csv(), lambda b: _in_file(b, read_csv_files, ".csv")),
    "csv file, weights": (
        _csv(),
        lambda b: _in_file(b, lambda f: read_csv_files(f, weight_column=True), ".csv"),
    ),
    "csv pipe": (_csv(), lambda b: list(read_csv_stream(io.BytesIO(b)))),
    "libsvm payload": (_libsvm(), lambda b: parse_libsvm(b, labelled=False)),
    "libsvm labelled": (_libsvm(), lambda b: parse_libsvm(b, labelled=True)),
    "libsvm file": (_libsvm(), lambda b: _in_file(b, read_libsvm_files, ".libsvm")),
    "parquet file": (_parquet(), lambda b: _in_file(b, read_parquet_files, ".parquet")),
    "parquet pipe": (_parquet(), lambda b: list(read_parquet_stream(io.BytesIO(b)))),
    "recordio payload": (_recordio(), parse_recordio_protobuf),
    "recordio file": (_recordio(), lambda b: _in_file(b, read_recordio_protobuf_files, ".rec")),
    "recordio pipe": (_recordio(), lambda b: list(read_recordio_protobuf_stream(io.BytesIO(b)))),
    "image recordio file": (
        _mxnet_recordio(),
        lambda b: _in_file(b, lambda f: _read_images(read_mxnet_recordio(f[0])), ".rec"),
    ),
    "image recordio pipe": (
        _mxnet_recordio(),
        lambda b: _read_images(iter_image_records(io.BytesIO(b))),
    ),
    "image recordio by idx": (_mxnet_recordio(), _read_indexed),
    "image header": (_image_header(), image_size_of),
    "image annotation json": (_annotation_file(), _read_annotation_file),
    "augmented manifest lines": (_manifest(), _read_manifest),
    "augmented manifest pipe": (
        _manifest_pipe(),
        lambda b: [(a.objects, a.size) for a in iter_manifest_stream(io.BytesIO(b), _OD_ATTRS)],
    ),
    "image recordio idx": (
        st.lists(st.tuples(st.integers(0, 99), st.integers(0, 9999))).map(
            lambda pairs: "".join(f"{k}\t{o}\n" for k, o in pairs).encode()
        ),
        _read_idx,
    ),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_any_bytes_read_to_batches_or_a_user_error(reader: str) -> None:
    valid, read = READERS[reader]

    @property_settings()
    @given(body=any_bytes(valid))
    def check(body: bytes) -> None:
        outcome(lambda: read(body), (UserError,))

    check()


@pytest.mark.parametrize(
    "reader",
    [
        "csv payload",
        "csv file",
        "libsvm file",
        "parquet file",
        "image recordio file",
        "image header",
        "image annotation json",
        "augmented manifest lines",
        "augmented manifest pipe",
    ],
)
def test_valid_documents_are_read(reader: str) -> None:
    # The generators make real documents: the properties above start from readable input.
    valid, read = READERS[reader]

    @property_settings(examples=20)
    @given(body=valid)
    def check(body: bytes) -> None:
        assert not isinstance(outcome(lambda: read(body), ()), BaseException)

    check()
