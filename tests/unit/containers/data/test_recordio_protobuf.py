from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from sagedock.containers.data.batch import concat
from sagedock.containers.data.recordio_protobuf import (
    parse_recordio_protobuf,
    read_recordio_protobuf_files,
    read_recordio_protobuf_stream,
)
from sagedock.toolkit.errors import UserError
from sagedock.toolkit.formats import protobuf
from sagedock.toolkit.formats.protobuf import Record, Tensor
from tests.fixtures.xgboost import make_dataset, write_recordio_protobuf


def test_shared_dense_and_sparse_fixtures_give_five_by_five(shared_testdata: Path) -> None:
    base = shared_testdata / "xgboost" / "data" / "recordio_protobuf"
    dense = concat(list(read_recordio_protobuf_files([base / "train.pb"])))
    sparse = concat(list(read_recordio_protobuf_files([base / "sparse" / "train.pb"])))
    assert dense.features.shape == sparse.features.shape == (5, 5)
    np.testing.assert_array_equal(dense.features, sparse.features.toarray())
    np.testing.assert_array_equal(dense.label, sparse.label)


def test_sparse_edge_cases_give_25_rows_of_3_columns(shared_testdata: Path) -> None:
    base = shared_testdata / "xgboost" / "data" / "recordio_protobuf" / "sparse_edge_cases"
    batch = concat(list(read_recordio_protobuf_files(sorted(base.iterdir()))))
    assert batch.features.shape == (25, 3)


def test_float64_features_with_shape_only(shared_testdata: Path) -> None:
    path = shared_testdata / "xgboost" / "data" / "recordio_protobuf" / "single_feature_label.pb"
    batch = concat(list(read_recordio_protobuf_files([path])))
    assert batch.features.shape == (1, 1) and batch.label.tolist() == [0.0]  # type: ignore[union-attr]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("sparse", [False, True])
def test_generated_files_round_trip(tmp_path: Path, dtype: type, sparse: bool) -> None:
    data = make_dataset("multiclass", rows=60, cols=4)
    x = (data.x * 10).astype(dtype)
    path = write_recordio_protobuf(tmp_path / "d.pb", x, data.y.astype(dtype), sparse=sparse)
    batch = concat(list(read_recordio_protobuf_files([path], batch_bytes=512)))
    got = batch.features.toarray() if batch.is_sparse else batch.features
    np.testing.assert_allclose(got, x.astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(batch.label, data.y)


def test_a_stream_reads_like_a_file(tmp_path: Path) -> None:
    data = make_dataset("binary", rows=30, cols=3)
    path = write_recordio_protobuf(tmp_path / "s.pb", data.x, data.y)
    batch = concat(list(read_recordio_protobuf_stream(io.BytesIO(path.read_bytes()))))
    np.testing.assert_array_equal(batch.features, data.x)


def test_corruption_names_the_file_and_record(tmp_path: Path) -> None:
    data = make_dataset("binary", rows=5, cols=3)
    path = write_recordio_protobuf(tmp_path / "c.pb", data.x, data.y)
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 0xFF
    raw[-21] ^= 0xFF
    path.write_bytes(bytes(raw[:-3]))
    with pytest.raises(UserError, match=r"^c.pb: .*record"):
        list(read_recordio_protobuf_files([path]))


def test_payload_keeps_labels_when_present() -> None:
    data = make_dataset("regression", rows=4, cols=2)
    buffer = io.BytesIO()
    from sagedock.toolkit.formats.protobuf import write_recordio_protobuf

    write_recordio_protobuf(buffer, data.x)
    batch = parse_recordio_protobuf(buffer.getvalue())
    assert batch.label is None and batch.features.shape == (4, 2)


@pytest.mark.parametrize("width", [2**31 + 1, 2**40])
def test_a_declared_width_beyond_xgboosts_is_a_user_error_naming_the_file(
    tmp_path: Path, width: int
) -> None:
    # Two records with one value each, whose sparse shape says 2**40 columns: XGBoost died of
    # std::bad_alloc or a segfault building the matrix.
    one = np.array([1.0], dtype=np.float32)
    tensor = Tensor("float32", one, np.array([2], dtype=np.uint64), (width,))
    path = tmp_path / "train.rec"
    path.write_bytes(bytes(protobuf.records_to_bytes([Record(features={"values": tensor})] * 2)))
    with pytest.raises(UserError, match=rf"^train.rec: records declare {width} features"):
        list(read_recordio_protobuf_files([path]))


def test_the_widest_declared_width_xgboost_takes_is_read(tmp_path: Path) -> None:
    one = np.array([1.0], dtype=np.float32)
    tensor = Tensor("float32", one, np.array([2**31 - 1], dtype=np.uint64), (2**31,))
    path = tmp_path / "train.rec"
    path.write_bytes(bytes(protobuf.records_to_bytes([Record(features={"values": tensor})] * 2)))
    (batch,) = read_recordio_protobuf_files([path])
    assert batch.features.shape == (2, 2**31)
