"""Our wire-format codec agrees with the protobuf runtime on the same schema.

The runtime's message classes come from ``bench/recordio`` (built from record.proto's schema
with descriptor_pb2, no generated code). protobuf is in the ``dev`` extra, not a sagedock
dependency: without it these tests fail to import instead of skipping, so a dev install that
lacks it is noticed.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path
from typing import Any

import google.protobuf  # noqa: F401  (the dev extra; never a skip)
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagedock.toolkit.formats import protobuf, recordio
from sagedock.toolkit.formats.protobuf import BytesValue, Record, Tensor


@pytest.fixture(scope="module")
def record_class(repo_root: Path) -> Any:
    path = repo_root / "bench" / "recordio" / "__main__.py"
    spec = importlib.util.spec_from_file_location("sagedock_bench_recordio", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.runtime_record_class()


_NUMPY = {"float32": np.float32, "float64": np.float64, "int32": np.int32}


@st.composite
def tensors(draw: st.DrawFn) -> Tensor:
    dtype = draw(st.sampled_from(["float32", "float64", "int32"]))
    n = draw(st.integers(0, 6))
    if dtype == "int32":
        values = draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=n, max_size=n))
    else:
        width = 32 if dtype == "float32" else 64
        values = draw(st.lists(st.floats(width=width, allow_nan=False), min_size=n, max_size=n))
    array = np.array(values, dtype=_NUMPY[dtype])
    if draw(st.booleans()) and n:
        keys = np.array(sorted(draw(st.sets(st.integers(0, 2**40), min_size=n, max_size=n))))
        return Tensor(dtype, array, keys.astype(np.uint64), (int(keys.max()) + 1,))
    shape = tuple(draw(st.lists(st.integers(0, 300), max_size=2)))
    return Tensor(dtype, array, shape=shape)


values = tensors() | st.builds(
    BytesValue,
    st.lists(st.binary(max_size=8), max_size=3).map(tuple),
    st.none() | st.text(max_size=8),
)
records = st.builds(
    Record,
    features=st.dictionaries(st.text(max_size=6), values, max_size=3),
    label=st.dictionaries(st.text(max_size=6), values, max_size=2),
    uid=st.none() | st.text(max_size=8),
    metadata=st.none() | st.text(max_size=8),
    configuration=st.none() | st.text(max_size=8),
)


def _to_runtime(record: Record, record_class: Any) -> Any:
    message = record_class()
    for field_name in ("features", "label"):
        target = getattr(message, field_name)
        for key, value in getattr(record, field_name).items():
            entry = target[key]
            if isinstance(value, BytesValue):
                entry.bytes.value.extend(value.values)
                if value.content_type is not None:
                    entry.bytes.content_type = value.content_type
                else:
                    entry.bytes.SetInParent()
                continue
            tensor = getattr(entry, f"{value.dtype}_tensor")
            tensor.SetInParent()
            tensor.values.extend(value.values.tolist())
            tensor.keys.extend(value.keys.tolist())
            tensor.shape.extend(value.shape)
    for name in ("uid", "metadata", "configuration"):
        if getattr(record, name) is not None:
            setattr(message, name, getattr(record, name))
    return message


@settings(max_examples=80, deadline=None)
@given(record=records)
def test_runtime_reads_what_we_write(record: Record, record_class: Any) -> None:
    parsed = record_class()
    parsed.ParseFromString(protobuf.encode_record(record))
    assert parsed == _to_runtime(record, record_class)


@settings(max_examples=80, deadline=None)
@given(record=records)
def test_we_read_what_the_runtime_writes(record: Record, record_class: Any) -> None:
    payload = _to_runtime(record, record_class).SerializeToString()
    assert protobuf.decode_record(payload) == record


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 8),
    dtype=st.sampled_from(["float32", "float64", "int32"]),
)
def test_to_arrays_matches_the_runtime_on_sdk_style_files(
    rows: int, cols: int, dtype: str, record_class: Any
) -> None:
    rng = np.random.default_rng(rows * 31 + cols)
    features = (rng.normal(size=(rows, cols)) * 1000).astype(_NUMPY[dtype])
    labels = rng.integers(0, 3, rows).astype(np.float32)
    payloads = []
    for row, label in zip(features, labels, strict=True):
        message = _to_runtime(
            Record(
                features={"values": Tensor(dtype, row)},  # type: ignore[arg-type]
                label={"values": Tensor("float32", np.array([label], np.float32))},
            ),
            record_class,
        )
        payloads.append(message.SerializeToString())
    x, y = protobuf.to_arrays(recordio.encode_records(payloads))
    np.testing.assert_array_equal(x, features.astype(np.float32))
    assert y is not None
    np.testing.assert_array_equal(y, labels)


def test_unpacked_repeated_fields_are_read() -> None:
    """proto2 parsers must accept repeated scalars written one tag per value."""
    tensor = b"".join(b"\x0d" + struct.pack("<f", v) for v in (1.5, -2.0))  # values, fixed32
    tensor += b"\x10\x00\x10\x03"  # keys 0 and 3, one varint each
    tensor += b"\x18\x05"  # shape [5]
    value = b"\x12" + bytes([len(tensor)]) + tensor
    entry = b"\x0a\x06values\x12" + bytes([len(value)]) + value
    payload = b"\x0a" + bytes([len(entry)]) + entry
    record = protobuf.decode_record(payload)
    assert record.features["values"] == Tensor(
        "float32", np.array([1.5, -2.0], np.float32), np.array([0, 3], np.uint64), (5,)
    )
    matrix, _ = protobuf.to_arrays(recordio.encode_records([payload] * 5))
    assert matrix.toarray().tolist() == [[1.5, 0, 0, -2.0, 0]] * 5
