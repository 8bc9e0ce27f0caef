from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from sagedock.containers.data.batch import concat
from sagedock.containers.data.parquet import (
    read_parquet_files,
    read_parquet_stream,
    split_parquet_stream,
)
from sagedock.toolkit.errors import UserError
from tests.fixtures.xgboost import make_dataset, write_parquet


def test_first_column_is_the_label_in_every_row_group(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = make_dataset("multiclass", rows=100, cols=12)
    path = tmp_path / "t.parquet"
    columns = {"label": pa.array(data.y)}
    columns.update({f"f{j}": pa.array(data.x[:, j]) for j in range(12)})
    pq.write_table(pa.table(columns), path, row_group_size=30)
    batch = concat(list(read_parquet_files([path])))
    np.testing.assert_array_equal(batch.features, data.x)
    np.testing.assert_array_equal(batch.label, data.y)


def test_shared_parquet_fixtures(shared_testdata: Path) -> None:
    base = shared_testdata / "xgboost" / "data" / "parquet"
    batch = concat(list(read_parquet_files([base / "train.parquet"])))
    assert batch.features.shape == (5, 5)
    # Dask writes its index as a column; it is not a feature.
    files = sorted((base / "multiple_files").iterdir())
    batch = concat(list(read_parquet_files(files)))
    assert batch.features.shape == (10, 5)


def test_dictionary_encoded_and_integer_columns_are_numbers(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    codes = pa.array([1.5, 2.5, 1.5]).dictionary_encode()
    pq.write_table(
        pa.table({"y": [0, 1, 0], "a": codes, "b": pa.array([1, 2, 3], pa.int8())}), path
    )
    batch = concat(list(read_parquet_files([path])))
    assert batch.features.tolist() == [[1.5, 1.0], [2.5, 2.0], [1.5, 3.0]]


def test_nulls_are_missing_features_but_a_null_label_is_refused(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "n.parquet"
    pq.write_table(pa.table({"y": [1, 0], "a": [None, 2.0], "b": [True, False]}), path)
    batch = concat(list(read_parquet_files([path])))
    assert np.isnan(batch.features[0, 0]) and batch.features[0, 1] == 1.0
    pq.write_table(pa.table({"y": [1, None], "a": [1.0, 2.0]}), path)
    with pytest.raises(UserError, match=r"^n.parquet: row 1 has no label"):
        list(read_parquet_files([path]))


def test_text_columns_are_refused_naming_the_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"y": [1.0], "city": ["Oslo"]}), path)
    with pytest.raises(UserError, match=r"^s.parquet: column 'city' has type string"):
        list(read_parquet_files([path]))


def test_a_file_that_is_not_parquet_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_text("1,2,3\n")
    with pytest.raises(UserError, match=r"^x.parquet: is not a parquet file"):
        list(read_parquet_files([path]))


def test_concatenated_files_in_a_pipe_are_split(tmp_path: Path) -> None:
    parts = []
    for i in range(3):
        data = make_dataset("regression", rows=10 + i, cols=3, seed=i)
        parts.append(write_parquet(tmp_path / f"{i}.parquet", data.x, data.y).read_bytes())
    stream = b"".join(parts)
    assert [len(v) for v in split_parquet_stream(stream)] == [len(p) for p in parts]
    batch = concat(list(read_parquet_stream(io.BytesIO(stream))))
    assert batch.num_rows == 10 + 11 + 12


def test_a_truncated_pipe_is_refused() -> None:
    with pytest.raises(UserError, match="no parquet file starts at byte offset 0"):
        split_parquet_stream(b"garbage")
    with pytest.raises(UserError, match="truncated"):
        split_parquet_stream(b"PAR1" + b"\0" * 20)
