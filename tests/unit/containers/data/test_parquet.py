from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest

from sagedock.containers.data.batch import concat
from sagedock.containers.data.parquet import read_parquet_files, read_parquet_stream
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


class _Pipe(io.RawIOBase):
    """A FIFO's reading end: the bytes of *data* in reads of at most the asked size, with a
    record of how much was asked and read."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = memoryview(data)
        self.consumed = 0
        self.asked: list[int | None] = []

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(size)
        end = len(self._data) if size is None or size < 0 else self.consumed + size
        piece = bytes(self._data[self.consumed : end])
        self.consumed += len(piece)
        return piece


def _parquet_files(tmp_path: Path, rows: tuple[int, ...], cols: int = 3) -> list[bytes]:
    parts = []
    for i, n in enumerate(rows):
        data = make_dataset("regression", rows=n, cols=cols, seed=i)
        parts.append(write_parquet(tmp_path / f"{i}.parquet", data.x, data.y).read_bytes())
    return parts


@pytest.mark.parametrize("chunk_bytes", [1, 7, 4096, 4 << 20])
def test_concatenated_files_in_a_pipe_are_read_in_order(tmp_path: Path, chunk_bytes: int) -> None:
    # Reads of any size, file ends inside a read or across two of them.
    rows = (10, 11, 12)
    parts = _parquet_files(tmp_path, rows)
    scratch = tmp_path / "scratch"
    batches = list(
        read_parquet_stream(_Pipe(b"".join(parts)), scratch_dir=scratch, chunk_bytes=chunk_bytes)
    )
    expected = [
        make_dataset("regression", rows=n, cols=3, seed=i) for i, n in enumerate((10, 11, 12))
    ]
    assert [b.num_rows for b in batches] == [10, 11, 12]
    for batch, data in zip(batches, expected, strict=True):
        np.testing.assert_array_equal(batch.features, data.x)
        np.testing.assert_array_equal(batch.label, data.y)
    assert list(scratch.iterdir()) == []  # every scratch file removed


def test_a_pipe_is_streamed_through_scratch_files_never_read_whole(tmp_path: Path) -> None:
    parts = _parquet_files(tmp_path, (2000, 2000, 2000), cols=20)
    pipe = _Pipe(b"".join(parts))
    scratch = tmp_path / "scratch"
    batches = read_parquet_stream(pipe, scratch_dir=scratch, chunk_bytes=16 << 10)
    first = next(batches)
    # The first file's rows come while the rest of the stream is still unread, and the file
    # is on disk (memory held one read of the stream at a time).
    assert first.num_rows == 2000
    assert pipe.consumed < len(parts[0]) + len(parts[1])
    assert all(size is not None and 0 < size <= 16 << 10 for size in pipe.asked)
    (folder,) = scratch.iterdir()
    assert len(list(folder.iterdir())) == 1
    assert sum(b.num_rows for b in batches) == 4000
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("chunk_bytes", [1, 5, 4 << 20])
@pytest.mark.parametrize("magics", [2, 3])
def test_magic_bytes_inside_column_data_do_not_end_a_file(
    tmp_path: Path, chunk_bytes: int, magics: int
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Float32 values whose bytes are "PAR1" "PAR1" (and, overlapping, "PAR1" "PAR1" again),
    # stored plain and uncompressed: the bytes of a file end and the next file's start, in
    # the middle of the first file.
    (magic,) = struct.unpack("<f", b"PAR1")
    values = np.array([1.0, *[magic] * magics, 2.0], dtype=np.float32)
    path = tmp_path / "m.parquet"
    labels = pa.array([float(i % 2) for i in range(len(values))], pa.float32())
    pq.write_table(
        pa.table({"y": labels, "a": values, "b": values}),
        path,
        compression="none",
        use_dictionary=False,
    )
    raw = path.read_bytes()
    assert 8 < raw.find(b"PAR1PAR1") < len(raw) - 8
    second = _parquet_files(tmp_path, (5,), cols=2)[0]
    batches = list(
        read_parquet_stream(
            _Pipe(raw + second), scratch_dir=tmp_path / "s", chunk_bytes=chunk_bytes
        )
    )
    assert [b.num_rows for b in batches] == [len(values), 5]
    np.testing.assert_array_equal(batches[0].features[:, 0], values)


def _bytes_written_by_this_process() -> int:
    """What this process has passed to write() so far (the kernel's count, all files)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").is_file(), reason="needs Linux's /proc/self/io")
@pytest.mark.parametrize("chunk_bytes", [3, 4096, 4 << 20])
def test_each_byte_of_a_pipe_is_written_to_scratch_once(tmp_path: Path, chunk_bytes: int) -> None:
    # Many small files in one read: writing the whole rest of the read into each file before
    # finding its end wrote the stream about a hundred times over.
    parts = _parquet_files(tmp_path, tuple(range(5, 85)), cols=2)
    stream = b"".join(parts)
    pipe = _Pipe(stream)
    before = _bytes_written_by_this_process()
    rows = [
        b.num_rows
        for b in read_parquet_stream(pipe, scratch_dir=tmp_path / "s", chunk_bytes=chunk_bytes)
    ]
    written = _bytes_written_by_this_process() - before
    assert rows == list(range(5, 85))
    # At most the start of an opening magic (3 bytes) that came in the read before its file
    # was found to end is written to both files.
    assert len(stream) <= written <= len(stream) + 3 * len(parts)


def test_a_pipe_that_is_not_parquet_or_is_truncated_is_refused(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    (whole,) = _parquet_files(tmp_path, (5,))

    def read(data: bytes) -> None:
        list(read_parquet_stream(_Pipe(data), name="train_0", scratch_dir=scratch))

    with pytest.raises(UserError, match=r"^train_0: no parquet file starts at byte offset 0 "):
        read(b"garbage")
    with pytest.raises(UserError, match=r"^train_0: no parquet file starts at byte offset 0 "):
        read(b"PA")
    with pytest.raises(
        UserError,
        match=rf"^train_0: the parquet file starting at byte offset {len(whole)} has no footer",
    ):
        read(whole + whole[:-10])
    with pytest.raises(UserError, match=r"starting at byte offset 0 has no footer"):
        read(whole + b"1,2,3\n")
    assert [list(folder.iterdir()) for folder in scratch.iterdir()] == []
    assert list(read_parquet_stream(_Pipe(b""), scratch_dir=scratch)) == []
