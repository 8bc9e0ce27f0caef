"""Streaming readers for the training data formats the built-in algorithms accept.

One module per format (:mod:`.csv`, :mod:`.libsvm`, :mod:`.parquet`,
:mod:`.recordio_protobuf`), each yielding :class:`~.batch.Batch` objects (numpy / scipy
arrays, a block of rows at a time); :mod:`.files` decides which files of a channel are data and
:mod:`.content_types` which format a content type names. Framework adapters (an
``xgboost.DataIter``, a torch dataset) live with their algorithm. Nothing here imports a
framework; pyarrow and scipy are imported when a reader runs.

    files = list_data_files(channel_dir)
    for batch in read_files("csv", files, csv_weights=True): ...
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from sagedock.toolkit.errors import UserError

from .batch import Batch as Batch
from .content_types import ContentType as ContentType
from .content_types import DataFormat as DataFormat
from .content_types import parse_content_type as parse_content_type
from .files import list_data_files as list_data_files
from .files import require_data as require_data
from .files import warn_identical_files as warn_identical_files

#: Formats that can be read from a Pipe-mode stream.
PIPE_FORMATS: tuple[DataFormat, ...] = ("csv", "parquet", "recordio-protobuf")


def read_files(
    fmt: DataFormat, files: Sequence[Path], *, csv_weights: bool = False
) -> Iterator[Batch]:
    """Batches of *files* in format *fmt* (``csv_weights``: CSV column 1 is the weight)."""
    if fmt == "csv":
        from .csv import read_csv_files

        return read_csv_files(files, weight_column=csv_weights)
    if fmt == "libsvm":
        from .libsvm import read_libsvm_files

        return read_libsvm_files(files)
    if fmt == "parquet":
        from .parquet import read_parquet_files

        return read_parquet_files(files)
    if fmt == "recordio-protobuf":
        from .recordio_protobuf import read_recordio_protobuf_files

        return read_recordio_protobuf_files(files)
    raise ValueError(f"unknown data format {fmt!r}")


def read_stream(
    fmt: DataFormat,
    stream: BinaryIO,
    *,
    name: str = "pipe",
    csv_weights: bool = False,
    scratch_dir: Path | None = None,
) -> Iterator[Batch]:
    """Batches of a Pipe-mode byte *stream* in format *fmt* (csv, parquet, recordio-protobuf).

    Parquet is copied to scratch files in *scratch_dir* (default: the system's temporary
    directory) one file of the stream at a time, as it can only be read from its end.
    """
    if fmt == "csv":
        from .csv import read_csv_stream

        return read_csv_stream(stream, name=name, weight_column=csv_weights)
    if fmt == "parquet":
        from .parquet import read_parquet_stream

        return read_parquet_stream(stream, name=name, scratch_dir=scratch_dir)
    if fmt == "recordio-protobuf":
        from .recordio_protobuf import read_recordio_protobuf_stream

        return read_recordio_protobuf_stream(stream, name=name)
    raise UserError(f"Pipe mode is not supported for {fmt} data; use File mode")
