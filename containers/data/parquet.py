"""Parquet: the first column is the label, every other column a feature.

Files written by pandas, pyarrow, Spark or Dask are read with pyarrow one row group at a
time; the index columns pandas/Dask store (``__index_level_0__``, ``__null_dask_index__``) are
not features, as ``pandas.read_parquet`` would not make them columns either. Numeric and
boolean columns become ``float32``; a null is a missing value. In Pipe mode the files arrive
concatenated in one stream: :func:`split_parquet_stream` finds where each one ends.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from sagedock.toolkit.errors import UserError

from .batch import Batch

#: Columns decoded together (in parallel) while filling a batch.
_COLUMNS_PER_READ = 4

_MAGIC = b"PAR1"


def _index_columns(schema: Any) -> set[str]:
    metadata = schema.pandas_metadata or {}
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
    import pyarrow as pa

    columns = _data_columns(parquet_file.schema_arrow, name)
    step = _COLUMNS_PER_READ
    pool = pa.default_memory_pool()
    first_row = 0
    for group in range(parquet_file.num_row_groups):
        n = parquet_file.metadata.row_group(group).num_rows
        if n == 0:
            continue
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
        first_row += n
        yield Batch(features=features, label=label)


def _open(source: Any, name: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(source)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{name}: is not a parquet file: {exc}") from None


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


def split_parquet_stream(data: bytes | memoryview) -> list[memoryview]:
    """The parquet files concatenated in *data*, each as a view (Pipe mode joins the files
    of a channel into one stream).

    A file is ``PAR1 ... <footer> <footer length: u32> PAR1``; each candidate end is checked
    by parsing the footer, so ``PAR1`` bytes inside column data do not split a file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    view = memoryview(data)
    raw = bytes(view) if not isinstance(data, bytes) else data
    files: list[memoryview] = []
    pos = 0
    while pos < len(raw):
        if raw[pos : pos + 4] != _MAGIC:
            raise UserError(
                f"parquet stream: no parquet file starts at byte offset {pos} "
                "(expected the magic bytes 'PAR1')"
            )
        search = pos + 8
        while True:
            end = raw.find(_MAGIC, search)
            if end < 0:
                raise UserError(
                    f"parquet stream: the file starting at byte offset {pos} is truncated "
                    "(no footer found)"
                )
            (footer_len,) = struct.unpack("<I", raw[end - 4 : end])
            at_boundary = end + 4 == len(raw) or raw[end + 4 : end + 8] == _MAGIC
            if at_boundary and end - 4 - footer_len >= pos + 4:
                try:
                    pq.ParquetFile(pa.BufferReader(view[pos : end + 4])).metadata  # noqa: B018
                except (pa.ArrowInvalid, OSError):
                    pass
                else:
                    break
            search = end + 1
        files.append(view[pos : end + 4])
        pos = end + 4
    return files


def read_parquet_stream(stream: BinaryIO, *, name: str = "pipe") -> Iterator[Batch]:
    """Batches of the parquet files concatenated in a byte *stream* (read to its end first:
    a parquet file's schema is in its footer)."""
    import pyarrow as pa

    data = stream.read()
    width: int | None = None
    for number, part in enumerate(split_parquet_stream(data)):
        label = f"{name} (file {number})"
        with _open(pa.BufferReader(part), label) as parquet_file:
            for batch in _read_parquet(parquet_file, label):
                if width is None:
                    width = batch.num_cols
                elif batch.num_cols != width:
                    raise UserError(
                        f"{label}: has {batch.num_cols} feature columns, but the first file "
                        f"has {width}; every file must have the same columns"
                    )
                yield batch
