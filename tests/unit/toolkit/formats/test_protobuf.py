"""recordio-protobuf: the aialgs.data.Record schema, to/from numpy and scipy."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sagedock.toolkit.errors import UserError
from sagedock.toolkit.formats import protobuf, recordio
from sagedock.toolkit.formats.protobuf import (
    BytesValue,
    Record,
    RecordFormatError,
    Tensor,
    decode_record,
    encode_record,
    encode_recordio_protobuf,
    read_recordio_protobuf,
    to_arrays,
    write_recordio_protobuf,
)

# The byte-level example of the reference: features [1.5, 16.0] (float32), label 1.0.
DENSE_EXAMPLE = bytes.fromhex(
    "0a23d7ce2c000000"
    "0a160a0676616c756573120c120a0a080000c03f00008041"
    "12120a0676616c75657312081206"
    "0a040000803f"
)
# Sparse: keys [0, 3], values [2, 7], shape [5], label 0: 51-byte payload, 1 padding byte.
SPARSE_EXAMPLE = bytes.fromhex(
    "0a23d7ce33000000"
    "0a1d0a0676616c756573"  # features entry, key "values"
    "1213"
    "1211"
    "0a08"
    "00000040"
    "0000e040"  # Value.float32_tensor.values = [2, 7]
    "12020003"
    "1a0105"  # keys = [0, 3], shape = [5]
    "12120a0676616c756573"
    "1208"
    "1206"
    "0a04"
    "00000000"  # label["values"] = [0.0]
    "00"  # padding
)


def test_dense_byte_level_example_decodes() -> None:
    features, labels = to_arrays(DENSE_EXAMPLE)
    assert features.dtype == np.float32
    assert features.tolist() == [[1.5, 16.0]]
    assert labels is not None and labels.tolist() == [1.0]


def test_dense_byte_level_example_is_what_we_write() -> None:
    written = encode_recordio_protobuf(
        np.array([[1.5, 16.0]], dtype=np.float32), np.array([1.0], dtype=np.float32)
    )
    assert written == DENSE_EXAMPLE


def test_sparse_byte_level_example_round_trips() -> None:
    assert len(SPARSE_EXAMPLE) == 8 + 51 + 1
    features, labels = to_arrays(SPARSE_EXAMPLE)
    assert scipy.sparse.issparse(features)
    assert features.toarray().tolist() == [[2.0, 0.0, 0.0, 7.0, 0.0]]
    assert labels is not None and labels.tolist() == [0.0]
    matrix = scipy.sparse.csr_matrix(np.array([[2, 0, 0, 7, 0]], dtype=np.float32))
    assert encode_recordio_protobuf(matrix, np.array([0.0], dtype=np.float32)) == SPARSE_EXAMPLE


FIXTURES = Path("xgboost/data/recordio_protobuf")
ONE_HOT = [[1, 0, 0, 0, 0]] * 4 + [[0, 1, 0, 0, 0]]


@pytest.mark.parametrize(
    ("name", "sparse", "features", "labels"),
    [
        ("train.pb", False, ONE_HOT, [0, 0, 0, 0, 1]),
        ("pb_files/train.pb", False, ONE_HOT, [0, 0, 0, 0, 1]),
        ("sparse/train.pb", True, ONE_HOT, [0, 0, 0, 0, 1]),
        ("single_feature_label.pb", True, [[0]], [0]),
        ("sparse_edge_cases/diagonal.pbr", True, np.eye(3).tolist(), [1, 1, 1]),
        ("sparse_edge_cases/dense_as_sparse.pbr", True, np.ones((3, 3)).tolist(), [1, 1, 1]),
        ("sparse_edge_cases/rectangular_sparse.pbr", True, [[1, 0, 0]] * 4, [1, 1, 1, 1]),
        (
            "sparse_edge_cases/single_value_top_left.pbr",
            True,
            [[1, 0, 0], [0] * 3, [0] * 3],
            [1] * 3,
        ),
        (
            "sparse_edge_cases/single_value_top_right.pbr",
            True,
            [[0, 0, 1], [0] * 3, [0] * 3],
            [1] * 3,
        ),
        ("sparse_edge_cases/single_value_center.pbr", True, [[0] * 3, [0, 1, 0], [0] * 3], [1] * 3),
        (
            "sparse_edge_cases/single_value_bot_left.pbr",
            True,
            [[0] * 3, [0] * 3, [1, 0, 0]],
            [1] * 3,
        ),
        (
            "sparse_edge_cases/single_value_bot_right.pbr",
            True,
            [[0] * 3, [0] * 3, [0, 0, 1]],
            [1] * 3,
        ),
    ],
)
def test_shared_fixtures_decode(
    shared_testdata: Path, name: str, sparse: bool, features: list, labels: list
) -> None:
    with open(shared_testdata / FIXTURES / name, "rb") as stream:
        x, y = to_arrays(stream)
    assert scipy.sparse.issparse(x) == sparse
    dense = x.toarray() if sparse else x
    assert dense.dtype == np.float32
    assert dense.tolist() == features
    assert y is not None and y.tolist() == labels


def test_fixture_records_keep_their_tensor_types(shared_testdata: Path) -> None:
    with open(shared_testdata / FIXTURES / "train.pb", "rb") as stream:
        records = list(read_recordio_protobuf(stream))
    assert len(records) == 5
    first = records[0].features["values"]
    assert isinstance(first, Tensor) and first.dtype == "int32"
    assert first.values.tolist() == [1, 0, 0, 0, 0]
    with open(shared_testdata / FIXTURES / "single_feature_label.pb", "rb") as stream:
        (single,) = read_recordio_protobuf(stream)
    value = single.features["values"]
    assert isinstance(value, Tensor)
    assert (value.dtype, value.shape, value.is_sparse) == ("float64", (1,), True)
    assert value.to_dense().tolist() == [0.0]


dense_arrays = st.sampled_from([np.float32, np.float64, np.int32]).flatmap(
    lambda dtype: hnp.arrays(
        dtype,
        st.tuples(st.integers(0, 40), st.integers(0, 6)),
        elements=hnp.from_dtype(np.dtype(dtype), allow_nan=False, allow_infinity=True)
        if dtype != np.int32
        else st.integers(-(2**31), 2**31 - 1),
    )
)


@settings(max_examples=60, deadline=None)
@given(features=dense_arrays, with_labels=st.booleans())
def test_dense_round_trip(features: np.ndarray, with_labels: bool) -> None:
    labels = np.arange(features.shape[0], dtype=np.float64) if with_labels else None
    data = encode_recordio_protobuf(features, labels)
    x, y = to_arrays(data, dtype=np.float64)
    if features.shape[0]:
        np.testing.assert_array_equal(x, features.astype(np.float64))
    if with_labels and features.shape[0]:
        assert y is not None
        np.testing.assert_array_equal(y, labels)
    else:
        assert y is None
    records = list(read_recordio_protobuf(io.BytesIO(data)))
    assert len(records) == features.shape[0]
    if records:
        tensor = records[0].features["values"]
        assert isinstance(tensor, Tensor)
        assert tensor.dtype == {"f": f"float{features.dtype.itemsize * 8}", "i": "int32"}.get(
            features.dtype.kind
        )


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 30),
    cols=st.integers(1, 300),
    density=st.floats(0, 1),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([np.float32, np.float64, np.int32]),
)
def test_sparse_round_trip(rows: int, cols: int, density: float, seed: int, dtype: type) -> None:
    rng = np.random.default_rng(seed)
    matrix = scipy.sparse.random(rows, cols, density=density, format="csr", random_state=rng)
    matrix.data = (matrix.data * 100).astype(dtype)
    labels = rng.integers(0, 5, rows).astype(np.float32)
    x, y = to_arrays(encode_recordio_protobuf(matrix, labels))
    assert scipy.sparse.issparse(x)
    assert x.shape == (rows, cols)
    np.testing.assert_array_equal(x.toarray(), matrix.toarray().astype(np.float32))
    assert y is not None and y.tolist() == labels.tolist()


def test_many_uniform_rows_take_the_vectorised_path_and_match_per_record_decoding() -> None:
    rng = np.random.default_rng(7)
    features = rng.normal(size=(5000, 13)).astype(np.float32)
    labels = rng.normal(size=(5000, 2))
    data = encode_recordio_protobuf(features, labels)
    x, y = to_arrays(data)
    np.testing.assert_array_equal(x, features)
    assert y is not None and y.shape == (5000, 2)
    np.testing.assert_array_equal(y, labels.astype(np.float32))
    records = list(read_recordio_protobuf(io.BytesIO(data)))
    assert [r.features["values"].values.tolist() for r in records[:3]] == x[:3].tolist()  # type: ignore[union-attr]


def test_mixed_layouts_keep_row_order() -> None:
    rng = np.random.default_rng(3)
    parts = []
    expected = []
    for i in range(30):
        width = 4
        row = rng.normal(size=(1, width))
        dtype = [np.float32, np.float64, np.int32][i % 3]
        parts.append(encode_recordio_protobuf(row.astype(dtype) * 10, [float(i)]))
        expected.append((row.astype(dtype) * 10).astype(np.float32)[0])
    x, y = to_arrays(b"".join(parts))
    np.testing.assert_array_equal(x, np.array(expected))
    assert y is not None and y.tolist() == list(range(30))


def test_dense_rows_inside_a_sparse_file_become_csr_rows() -> None:
    dense = encode_recordio_protobuf(np.array([[1.0, 2.0]], dtype=np.float32))
    sparse = encode_recordio_protobuf(
        scipy.sparse.csr_matrix(np.array([[0, 0, 3.0]], dtype=np.float32))
    )
    x, y = to_arrays(dense + sparse)
    assert scipy.sparse.issparse(x)
    assert x.toarray().tolist() == [[1, 2, 0], [0, 0, 3]]
    assert y is None


def test_magic_word_inside_values_is_split_and_rejoined() -> None:
    magic_float = np.frombuffer(recordio.MAGIC_BYTES, dtype="<f4")[0]
    features = np.full((6, 3), magic_float, dtype=np.float32)
    features[::2] = 1.0
    data = encode_recordio_protobuf(features)
    assert recordio.scan_records(data).joined, (
        "rows holding the magic word must be written as multipart records"
    )
    x, _ = to_arrays(data)
    np.testing.assert_array_equal(x.view(np.uint32), features.view(np.uint32))


def test_record_objects_round_trip() -> None:
    record = Record(
        features={
            "values": Tensor("float64", np.array([1.0, -2.5])),
            "image": BytesValue((b"\x89PNG", b""), "image/png"),
        },
        label={"values": Tensor("int32", np.array([-1], dtype=np.int32))},
        uid="row-1",
        metadata='{"source": "s3"}',
        configuration="",
    )
    assert decode_record(encode_record(record)) == record


def test_write_to_a_stream() -> None:
    out = io.BytesIO()
    write_recordio_protobuf(out, np.ones((2, 2), dtype=np.float32))
    x, y = to_arrays(io.BytesIO(out.getvalue()))
    assert x.tolist() == [[1, 1], [1, 1]] and y is None


def _record(features: dict, label: dict | None = None) -> bytes:
    return recordio.encode_record(encode_record(Record(features=features, label=label or {})))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _record({"values": Tensor("float32", np.ones(2, np.float32))})
            + _record({"values": Tensor("float32", np.ones(3, np.float32))}),
            "invalid recordio-protobuf data: record 1 at byte offset 32: has 3 features while "
            "record 0 has 2 (dense records must all have the same number of features)",
        ),
        (
            _record({"other": Tensor("float32", np.ones(2, np.float32))}),
            "invalid recordio-protobuf data: record 0 at byte offset 0: no features['values'] "
            "tensor (feature keys: 'other')",
        ),
        (
            _record({"values": BytesValue((b"x",))}),
            "invalid recordio-protobuf data: record 0 at byte offset 0: features['values'] holds "
            "bytes, not a numeric tensor",
        ),
        (
            _record(
                {"values": Tensor("float32", np.ones(1, np.float32))},
                {"values": Tensor("float32", np.ones(1, np.float32))},
            )
            + _record({"values": Tensor("float32", np.ones(1, np.float32))}),
            "invalid recordio-protobuf data: record 1 at byte offset 48: has no label['values'] "
            "while record 0 does",
        ),
        (
            _record(
                {
                    "values": Tensor(
                        "float32", np.ones(1, np.float32), np.array([7], np.uint64), (5,)
                    )
                }
            ),
            "invalid recordio-protobuf data: record 0 at byte offset 0: sparse key 7 is outside "
            "the tensor's shape [5]",
        ),
        (
            recordio.encode_record(b"\x0a\x20\x0a"),
            "invalid recordio-protobuf data: record 0 at byte offset 0: malformed protobuf: "
            "length-delimited field of 32 bytes runs past the end of its message at payload byte 2",
        ),
        (
            recordio.encode_record(b"\x0a\x05\x12\x03\x12\x01\x0a"),
            "invalid recordio-protobuf data: record 0 at byte offset 0: malformed protobuf: "
            "truncated varint at payload byte 7",
        ),
        (
            recordio.encode_record(bytes.fromhex("0a0b0a0676616c75657312011b")),
            "invalid recordio-protobuf data: record 0 at byte offset 0: malformed protobuf: "
            "unsupported wire type 3 at payload byte 13",
        ),
        (
            recordio.encode_record(bytes.fromhex("0a0f0a0676616c756573120512030a0101")),
            "invalid recordio-protobuf data: record 0 at byte offset 0: malformed protobuf: "
            "packed float32 values of 1 bytes (not a multiple of 4) at payload byte 16",
        ),
    ],
    ids=[
        "ragged",
        "no-values",
        "bytes-values",
        "label-missing",
        "key-outside",
        "overrun",
        "truncated-varint",
        "bad-wiretype",
        "bad-packed-length",
    ],
)
def test_malformed_records_name_record_and_offset(data: bytes, message: str) -> None:
    with pytest.raises(RecordFormatError) as caught:
        to_arrays(data)
    assert str(caught.value) == message
    assert isinstance(caught.value, UserError)


def test_truncated_stream_is_a_recordio_error() -> None:
    data = encode_recordio_protobuf(np.ones((3, 2), dtype=np.float32))
    with pytest.raises(recordio.RecordIOError, match=r"record 2 at byte offset \d+: truncated"):
        to_arrays(data[:-5])
    with pytest.raises(recordio.RecordIOError, match="record 2"):
        list(read_recordio_protobuf(io.BytesIO(data[:-5])))


@pytest.mark.parametrize(
    ("features", "error", "message"),
    [
        (np.ones(3), ValueError, "features must be 2-D"),
        (np.ones((2, 2), dtype=np.int64) * 2**40, ValueError, "outside int32"),
        (np.array([["a"]]), TypeError, "cannot be written as recordio-protobuf"),
    ],
)
def test_unwritable_features_are_refused(features: np.ndarray, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        encode_recordio_protobuf(features)


def test_empty_stream_gives_empty_arrays() -> None:
    x, y = to_arrays(b"")
    assert x.shape == (0, 0) and y is None
    assert protobuf.CONTENT_TYPE == "application/x-recordio-protobuf"


def test_uniform_files_are_decoded_without_the_per_record_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SDK's dense and sparse output is read in bulk (bench/recordio measures why)."""

    def per_record(*args: object, **kwargs: object) -> None:
        raise AssertionError("per-record fallback used for a uniform file")

    monkeypatch.setattr(protobuf, "_single_block", per_record)
    rng = np.random.default_rng(11)
    dense = rng.normal(size=(300, 9))
    x, y = to_arrays(encode_recordio_protobuf(dense, dense[:, 0]), dtype=np.float64)
    np.testing.assert_array_equal(x, dense)
    np.testing.assert_array_equal(y, dense[:, 0])  # type: ignore[arg-type]
    sparse = scipy.sparse.csr_matrix(np.where(np.arange(60).reshape(20, 3) % 2, 1.5, 0.0))
    matrix, _ = to_arrays(encode_recordio_protobuf(sparse))
    np.testing.assert_array_equal(matrix.toarray(), sparse.toarray())


@pytest.mark.parametrize("batch_bytes", [7, 64, 1000, 1 << 20])
def test_batches_cover_the_stream_in_order(batch_bytes: int) -> None:
    rng = np.random.default_rng(5)
    features = rng.normal(size=(50, 4)).astype(np.float32)
    features[3, 1] = np.frombuffer(recordio.MAGIC_BYTES, dtype="<f4")[0]  # one multipart record
    labels = np.arange(50, dtype=np.float32)
    data = encode_recordio_protobuf(features, labels)
    batches = list(protobuf.iter_batches(io.BytesIO(data), batch_bytes=batch_bytes))
    x = np.vstack([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])  # type: ignore[misc]
    np.testing.assert_array_equal(x.view(np.uint32), features.view(np.uint32))
    np.testing.assert_array_equal(y, labels)


def test_batch_errors_count_from_the_start_of_the_stream() -> None:
    data = encode_recordio_protobuf(np.ones((10, 2), dtype=np.float32))
    record = len(data) // 10
    broken = data[: 7 * record] + b"\0" * 4 + data[7 * record + 4 :]
    with pytest.raises(recordio.RecordIOError, match=f"record 7 at byte offset {7 * record}:"):
        list(protobuf.iter_batches(io.BytesIO(broken), batch_bytes=2 * record + 3))


@pytest.mark.parametrize("records", [1, 5])  # one record: parsed alone; five: vectorised
def test_float64_values_beyond_float32_read_as_inf_without_warnings(records: int) -> None:
    # What XGBoost's own float32 matrices hold (and refuse); numpy warned on every batch.
    x = np.tile([[1e300, 1.0, -1e300]], (records, 1))
    data = encode_recordio_protobuf(x, np.full(records, 1e300))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        features, labels = protobuf.to_arrays(data)
    np.testing.assert_array_equal(features, np.tile([[np.inf, 1, -np.inf]], (records, 1)))
    np.testing.assert_array_equal(labels, np.full(records, np.inf))
