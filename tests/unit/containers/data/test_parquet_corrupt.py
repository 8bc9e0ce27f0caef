"""A corrupt parquet file is a ClientError naming the file (issue 11, section 4), never an
AlgorithmError traceback from pyarrow."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sagedock.containers.data.parquet import read_parquet_files, read_parquet_stream
from sagedock.toolkit.errors import UserError


def _parquet(compression: str) -> bytes:
    rng = np.random.default_rng(0)
    table = pa.table({"y": np.arange(1000.0), "a": rng.random(1000), "b": rng.random(1000)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression=compression)
    return buffer.getvalue()


def _corrupt(body: bytes, at: int) -> bytes:
    bad = bytearray(body)
    bad[at : at + 16] = b"\xff" * 16
    return bytes(bad)


# (compression, where the bytes are overwritten): the first page header (thrift), the first
# page's compressed data, a page in the middle of the file.
CASES = [
    ("snappy", 4),
    ("snappy", 60),
    ("none", 4),
    ("gzip", 60),
    ("gzip", 8000),
    ("zstd", 60),
]


@pytest.mark.parametrize(("compression", "at"), CASES)
def test_a_corrupt_page_is_a_user_error_naming_the_file(
    tmp_path: Path, compression: str, at: int
) -> None:
    body = _parquet(compression)
    at = min(at, len(body) // 3)
    path = tmp_path / "part-0.parquet"
    path.write_bytes(_corrupt(body, at))
    with pytest.raises(UserError) as caught:
        list(read_parquet_files([path]))
    message = caught.value.message
    assert message.startswith("part-0.parquet: row group 0 is corrupt: ")
    assert "\n" not in message


@pytest.mark.parametrize(("compression", "at"), CASES[:2])
def test_a_corrupt_page_in_a_pipe_names_the_stream_and_file(compression: str, at: int) -> None:
    stream = io.BytesIO(_corrupt(_parquet(compression), at))
    with pytest.raises(UserError, match=r"^train \(file 0\): row group 0 is corrupt: "):
        list(read_parquet_stream(stream, name="train"))


def _named(column: bytes, pandas_metadata: bytes | None = None) -> bytes:
    """A parquet file whose second column's name is *column* (patched into the footer, where
    pyarrow would never write bytes that are not UTF-8) and whose pandas metadata is given."""
    table = pa.table({"y": [1.0, 2.0], "zz": [3.0, 4.0]})
    if pandas_metadata is not None:
        table = table.replace_schema_metadata({b"pandas": pandas_metadata})
    buffer = io.BytesIO()
    # The file's key-value metadata (pandas' among it) is written with the Arrow schema.
    pq.write_table(table, buffer, store_schema=pandas_metadata is not None)
    return buffer.getvalue().replace(b"zz", column)


def test_a_column_name_that_is_not_utf8_is_a_user_error(tmp_path: Path) -> None:
    # Found by the any-bytes property: a UnicodeDecodeError from pyarrow, an AlgorithmError.
    path = tmp_path / "part-0.parquet"
    path.write_bytes(_named(b"z\xff"))
    with pytest.raises(UserError, match=r"^part-0\.parquet: (is not a parquet file|the schema)"):
        list(read_parquet_files([path]))


@pytest.mark.parametrize("metadata", [b"{not json", b"[1, 2]", b'{"index_columns": 3}'])
def test_pandas_metadata_that_does_not_parse_names_no_index(
    tmp_path: Path, metadata: bytes
) -> None:
    path = tmp_path / "part-0.parquet"
    path.write_bytes(_named(b"zz", metadata))
    (batch,) = read_parquet_files([path])
    np.testing.assert_array_equal(batch.features, [[3.0], [4.0]])
