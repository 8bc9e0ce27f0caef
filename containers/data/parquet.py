"""Parquet: the first column is the label, every other column a feature.

Files written by pandas, pyarrow, Spark or Dask are read with pyarrow one row group at a
time; the index columns pandas/Dask store (``__index_level_0__``, ``__null_dask_index__``) are
not features, as ``pandas.read_parquet`` would not make them columns either. Numeric and
boolean columns become ``float32``; a null is a missing value. In Pipe mode the files arrive
concatenated in one stream: :func:`read_parquet_stream` copies each to a scratch file as it
arrives (a parquet file is read from its footer, at its end) and reads it from there.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from sagedock.toolkit.errors import UserError

from .batch import Batch

#: Columns decoded together (in parallel) while filling a batch.
_COLUMNS_PER_READ = 4

_MAGIC = b"PAR1"


def _index_columns(schema: Any) -> set[str]:
    try:
        metadata = schema.pandas_metadata or {}
    except ValueError:  # the metadata is optional: one that is not JSON names no index
        return set()
    if not isinstance(metadata, dict) or not isinstance(metadata.get("index_columns"), list):
        return set()
    return {c for c in metadata.get("index_columns", []) if isinstance(c, str)}


def _data_columns(schema: Any, name: str) -> list[str]:
    import pyarrow as pa

    skip = _index_columns(schema)
    columns = [f for f in schema if f.name not in skip]
    for f in columns:
        t = f.type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if not (
            pa.types.is_integer(t)
            or pa.types.is_floating(t)
            or pa.types.is_boolean(t)
            or pa.types.is_decimal(t)
        ):
            raise UserError(
                f"{name}: column {f.name!r} has type {f.type}; parquet training data must be "
                "numeric (the label first, then the features)"
            )
    if len(columns) < 2:
        raise UserError(
            f"{name}: has {len(columns)} data column(s); parquet training data needs the label "
            "column and at least one feature column"
        )
    return [f.name for f in columns]


def _column(values: Any) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(values.type):
        if isinstance(values, pa.ChunkedArray):
            values = pa.chunked_array([c.dictionary_decode() for c in values.chunks])
        else:
            values = values.dictionary_decode()
    return np.asarray(
        pc.cast(values, pa.float32(), safe=False).to_numpy(zero_copy_only=False),
        dtype=np.float32,
    )


def _read_parquet(parquet_file: Any, name: str) -> Iterator[Batch]:
    """One batch per row group.

    Columns are read a few at a time with pyarrow's threads and copied straight into the
    batch's float32 matrix, so beside the result only those few columns are held
    (``iter_batches`` decodes a whole row group before slicing it, and on one thread).
    """
    with _corruption_is_user_error(f"{name}: the schema"):
        schema = parquet_file.schema_arrow
    columns = _data_columns(schema, name)
    first_row = 0
    for group in range(parquet_file.num_row_groups):
        with _corruption_is_user_error(f"{name}: row group {group}"):
            batch = _read_row_group(parquet_file, group, columns, name, first_row)
        if batch is None:
            continue
        first_row += batch.num_rows
        yield batch


@contextmanager
def _corruption_is_user_error(what: str) -> Iterator[None]:
    """pyarrow's complaints about the bytes of a file (a page header that does not
    deserialize, compressed data that does not decompress) as a UserError naming *what*."""
    import pyarrow as pa

    try:
        yield
    except pa.ArrowMemoryError:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(f"{what} is corrupt: {detail}") from None


def _read_row_group(
    parquet_file: Any, group: int, columns: list[str], name: str, first_row: int
) -> Batch | None:
    """One row group as a batch (None when it has no rows)."""
    import pyarrow as pa

    step = _COLUMNS_PER_READ
    pool = pa.default_memory_pool()
    n = parquet_file.metadata.row_group(group).num_rows
    if n == 0:
        return None
    label = _column(parquet_file.read_row_group(group, columns=columns[:1]).column(0))
    missing = np.flatnonzero(np.isnan(label))
    if missing.size:
        raise UserError(
            f"{name}: row {first_row + int(missing[0])} has no label "
            f"(column {columns[0]!r} is null)"
        )
    features = np.empty((n, len(columns) - 1), dtype=np.float32, order="F")
    for start in range(1, len(columns), step):
        part = columns[start : start + step]
        table = parquet_file.read_row_group(group, columns=part, use_threads=True)
        for offset in range(len(part)):
            features[:, start - 1 + offset] = _column(table.column(offset))
        del table
        # Decoded pages are freed at once; without this the allocator keeps them cached,
        # which for a file-sized row group adds up to a second copy of the data.
        pool.release_unused()
    return Batch(features=features, label=label)


def _open(source: Any, name: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(source)
    except pa.ArrowMemoryError:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        # UnicodeDecodeError: a column name that is not UTF-8 (pyarrow decodes the footer's)
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(f"{name}: is not a parquet file: {detail}") from None


def read_parquet_files(files: Sequence[Path]) -> Iterator[Batch]:
    """Batches of the parquet *files*, in order; every file must have the same feature count."""
    width: int | None = None
    for path in files:
        with _open(str(path), path.name) as parquet_file:
            for batch in _read_parquet(parquet_file, path.name):
                if width is None:
                    width = batch.num_cols
                elif batch.num_cols != width:
                    raise UserError(
                        f"{path.name}: has {batch.num_cols} feature columns, but the first file "
                        f"of the channel has {width}; every file must have the same columns"
                    )
                yield batch


#: Bytes read from a Pipe-mode stream at a time.
STREAM_CHUNK_BYTES = 4 << 20
_FILE_END = _MAGIC + _MAGIC  # a file's closing magic, then the next file's opening one
_SMALLEST_FILE = 12  # opening magic, footer length, closing magic
_TAIL_BYTES = len(_FILE_END) - 1  # what of a file end can come in the reads before


class _ScratchFile:
    """One parquet file of a Pipe-mode stream, copied to a scratch file as its bytes arrive."""

    def __init__(self, path: Path, stream_offset: int, name: str) -> None:
        self.path = path
        self.stream_offset = stream_offset
        self.name = name
        self.size = 0
        self._handle: BinaryIO | None = path.open("wb")
        self._head = b""  # the first bytes, until the opening magic is confirmed
        self._tail = b""  # the last bytes: a closing + opening magic may straddle two reads

    def feed(self, chunk: bytes, start: int = 0) -> tuple[int, bytes] | None:
        """Append ``chunk[start:]``; ``None`` when all of it belongs to this file.

        Where this file ends (a closing magic, then the next file's opening one, and the bytes
        so far parse as parquet), the scratch file ends there and ``(kept, carried)`` is
        returned: the next file is *carried* (the part of its opening magic that came in
        earlier reads), then ``chunk[kept:]``. The bytes are written only up to each place the
        file may end before that place is checked, so each byte of the stream is written once
        (writing all of ``chunk[start:]`` first would write the rest of a read again for every
        small file in it).
        """
        assert self._handle is not None
        before = self.size
        if before < len(_MAGIC):
            self._head += chunk[start : start + len(_MAGIC) - before]
            if not _MAGIC.startswith(self._head):
                self.close()
                raise self._not_parquet()
        for end in self._possible_ends(chunk, start):
            self._write_up_to(end, chunk, start, before)
            if self._is_complete(end):
                if end < self.size:  # it ended in an earlier read: cut what came after
                    self._handle.truncate(end)
                    self.size = end
                if end < before:
                    return start, _MAGIC[: before - end]
                return start + end - before, b""
        self._write_up_to(before + len(chunk) - start, chunk, start, before)
        if len(chunk) - start >= _TAIL_BYTES:
            self._tail = chunk[-_TAIL_BYTES:]
        else:
            self._tail = (self._tail + chunk[start:])[-_TAIL_BYTES:]
        return None

    def _possible_ends(self, chunk: bytes, start: int) -> Iterator[int]:
        """The file offsets, in order, after a closing magic that the next file's opening
        magic follows: first where the two straddle the earlier reads and this one, then
        inside ``chunk[start:]`` (overlapping ones included)."""
        before = self.size
        base = before - len(self._tail)  # the file offset of self._tail[0]
        bridge = self._tail + chunk[start : start + _TAIL_BYTES]
        at = bridge.find(_FILE_END)
        while 0 <= at < len(self._tail):
            yield base + at + len(_MAGIC)
            at = bridge.find(_FILE_END, at + 1)
        at = chunk.find(_FILE_END, start)
        while at >= 0:
            yield before + at - start + len(_MAGIC)
            at = chunk.find(_FILE_END, at + 1)

    def _write_up_to(self, end: int, chunk: bytes, start: int, before: int) -> None:
        """Write the bytes of ``chunk[start:]`` (the file's bytes from offset *before* on)
        that are not written yet, up to file offset *end*."""
        assert self._handle is not None
        if end > self.size:
            self._handle.write(memoryview(chunk)[start + self.size - before : start + end - before])
            self.size = end

    def finish(self, *, at_end_of_stream: bool) -> Path:
        """Close the scratch file; at the end of the stream it must hold a whole file."""
        assert self._handle is not None
        if at_end_of_stream and not self._is_complete(self.size):
            self.close()
            if self.size < len(_MAGIC):
                raise self._not_parquet()
            raise UserError(
                f"{self.name}: the parquet file starting at byte offset {self.stream_offset} "
                "has no footer at the end of the stream (it is truncated, or followed by data "
                "that is not parquet)"
            )
        self._handle.close()
        self._handle = None
        return self.path

    def close(self) -> None:
        """Close and remove the scratch file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self.path.unlink(missing_ok=True)

    def _not_parquet(self) -> UserError:
        return UserError(
            f"{self.name}: no parquet file starts at byte offset {self.stream_offset} "
            "(expected the magic bytes 'PAR1')"
        )

    def _is_complete(self, end: int) -> bool:
        """Whether the first *end* bytes are a parquet file: the footer they end with parses
        (``PAR1`` bytes inside column data do not end a file)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        assert self._handle is not None
        if end < _SMALLEST_FILE:
            return False
        self._handle.flush()
        with pa.memory_map(str(self.path)) as mapped:
            # A mapping, not a read: only the footer's pages are touched.
            whole = mapped.read_buffer()
            (footer_len,) = struct.unpack("<I", whole.slice(end - 8, 4).to_pybytes())
            if footer_len > end - _SMALLEST_FILE:
                return False
            try:
                pq.ParquetFile(pa.BufferReader(whole.slice(0, end))).metadata  # noqa: B018
            except (pa.ArrowInvalid, OSError):
                return False
            finally:
                del whole
        return True


def _scratch_files(
    stream: BinaryIO, directory: Path, name: str, chunk_bytes: int
) -> Iterator[Path]:
    """The parquet files concatenated in *stream*, each copied to a scratch file in
    *directory* and handed out once its footer has arrived (the caller removes it)."""
    current: _ScratchFile | None = None
    offset = 0  # bytes of the stream before the current file
    count = 0
    try:
        while chunk := stream.read(chunk_bytes):
            start = 0
            while start < len(chunk):
                if current is None:
                    current = _ScratchFile(directory / f"{count}.parquet", offset, name)
                    count += 1
                cut = current.feed(chunk, start)
                if cut is None:
                    break
                start, carried = cut
                offset += current.size
                finished, current = current.finish(at_end_of_stream=False), None
                if carried:  # the next file began in an earlier read
                    current = _ScratchFile(directory / f"{count}.parquet", offset, name)
                    count += 1
                    current.feed(carried)
                yield finished
        if current is not None:
            finished, current = current.finish(at_end_of_stream=True), None
            yield finished
    finally:
        if current is not None:
            current.close()


def read_parquet_stream(
    stream: BinaryIO,
    *,
    name: str = "pipe",
    scratch_dir: Path | None = None,
    chunk_bytes: int = STREAM_CHUNK_BYTES,
) -> Iterator[Batch]:
    """Batches of the parquet files concatenated in a byte *stream* (a Pipe-mode FIFO).

    A parquet file can only be read from its end (the schema and where each row group is are
    in its footer), so each file of the stream is copied to a scratch file in *scratch_dir*
    (the system's temporary directory when ``None``) as its bytes arrive, read a row group at
    a time once its footer is in, and removed: disk holds one file of the stream at a time,
    memory a chunk of the stream and the row group being read.
    """
    width: int | None = None
    if scratch_dir is not None:
        scratch_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sagedock-parquet-", dir=scratch_dir) as tmp:
        for number, path in enumerate(_scratch_files(stream, Path(tmp), name, chunk_bytes)):
            label = f"{name} (file {number})"
            try:
                with _open(str(path), label) as parquet_file:
                    for batch in _read_parquet(parquet_file, label):
                        if width is None:
                            width = batch.num_cols
                        elif batch.num_cols != width:
                            raise UserError(
                                f"{label}: has {batch.num_cols} feature columns, but the first "
                                f"file has {width}; every file must have the same columns"
                            )
                        yield batch
            finally:
                path.unlink(missing_ok=True)
