"""CSV: no header, the label in column 0, optionally an instance weight in column 1.

The layout is SageMaker's (``text/csv`` for the built-in algorithms): every row is data, the
delimiter is sniffed from the first line of the first file, an empty field is a missing value.
Parsing is pyarrow's multi-threaded CSV reader, streamed in blocks, straight into ``float32``
arrays; a file that does not parse is scanned again line by line only to say where and why::

    ClientError: train/part-0.csv: line 7, column 3: 'abc' is not a number

Training data comes from :func:`read_csv_files` (File mode) or :func:`read_csv_stream` (Pipe
mode); inference payloads (features only, no label) from :func:`parse_csv_payload`.
"""

from __future__ import annotations

import csv as stdlib_csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import numpy as np

from sagedock.toolkit.errors import UserError

from ._io import PrefixedStream
from ._parallel import ordered_map
from .batch import Batch

#: Bytes of CSV text per chunk; chunks are parsed in parallel, a few in flight at a time.
DEFAULT_BLOCK_SIZE = 4 << 20
#: Blocks are joined into batches of about this many bytes of float32 values.
BATCH_BYTES = 32 << 20
#: Characters of the first line the delimiter is sniffed from.
SNIFF_CHARS = 512

# Characters that occur inside numbers, so never a delimiter of numeric CSV: csv.Sniffer
# answers e.g. '5' for the one-column line "1.5".
_NUMBER_CHARS = frozenset("0123456789.+-eEinfatINFATy")
_PREFERRED = (",", "\t", ";", "|", " ")


class _NoDelimiter(Exception):
    pass


def _sniff(line: str) -> str:
    sample = line[:SNIFF_CHARS].rstrip("\r\n")
    try:
        found = stdlib_csv.Sniffer().sniff(sample).delimiter
    except stdlib_csv.Error:
        found = ""
    if found and found not in _NUMBER_CHARS and not found.isalnum():
        return found
    for candidate in _PREFERRED:
        if candidate in sample.strip():
            return candidate
    raise _NoDelimiter


def sniff_delimiter(line: str) -> str:
    """The delimiter of a CSV *line* (training rule: a line without one is an error).

    Raises SageMaker's ``Could not determine delimiter on line ...`` UserError, which is what
    a one-column file (a label and no features) gets.
    """
    try:
        return _sniff(line)
    except _NoDelimiter:
        raise UserError(
            f"Could not determine delimiter on line {line[:50].rstrip()}:\n"
            "a row must hold the label and at least one feature, separated by a delimiter "
            "such as ','"
        ) from None


def sniff_payload_delimiter(line: str) -> str:
    """The delimiter of a CSV request *line*; ``,`` when none is found (one feature)."""
    try:
        return _sniff(line)
    except _NoDelimiter:
        return ","


def _first_line(path: Path) -> str:
    with path.open("rb") as fh:
        return fh.readline(1 << 20).decode("utf-8", errors="replace")


def _count_fields(line: str, delimiter: str) -> int:
    row = next(stdlib_csv.reader([line.rstrip("\r\n")], delimiter=delimiter), [])
    return len(row)


def _label_layout(weight_column: bool) -> tuple[int, int]:
    """(number of leading non-feature columns, minimum columns per row)."""
    lead = 2 if weight_column else 1
    return lead, lead + 1


# -- diagnostics (slow path, only after pyarrow refused the data) ---------------------------


def _describe_problem(
    lines: IO[bytes], name: str, delimiter: str, ncols: int, labelled: bool
) -> str | None:
    """Scan *lines* and describe the first row pyarrow could not have read, or ``None``."""
    for offset, raw in enumerate(lines):
        line_no = offset + 1
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not text.strip():
            continue
        fields = next(stdlib_csv.reader([text], delimiter=delimiter), [])
        if len(fields) != ncols:
            return f"{name}: line {line_no}: expected {ncols} columns, found {len(fields)}"
        for column, value in enumerate(fields, start=1):
            stripped = value.strip()
            if not stripped:
                if column == 1 and labelled:
                    return f"{name}: line {line_no}: the label (column 1) is empty"
                continue
            try:
                float(stripped)
            except ValueError:
                hint = (
                    " (CSV data must not have a header row: every row is read as data)"
                    if line_no == 1
                    else ""
                )
                return (
                    f"{name}: line {line_no}, column {column}: {value[:40]!r} is not a number{hint}"
                )
    return None


def _data_error(
    source: Path | bytes, name: str, delimiter: str, ncols: int, labelled: bool, cause: Exception
) -> UserError:
    if isinstance(source, Path):
        with source.open("rb") as fh:
            problem = _describe_problem(fh, name, delimiter, ncols, labelled)
    else:
        problem = _describe_problem(io.BytesIO(source), name, delimiter, ncols, labelled)
    if problem is None:
        problem = f"{name}: could not be read as CSV: {cause}"
    return UserError(problem)


# -- the fast path ---------------------------------------------------------------------------


def _options(delimiter: str, ncols: int) -> tuple[Any, Any, Any]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # One thread per chunk: the chunks themselves are parsed in parallel (pyarrow's streaming
    # reader parses its blocks one after the other).
    read = pacsv.ReadOptions(autogenerate_column_names=True, use_threads=False)
    parse = pacsv.ParseOptions(delimiter=delimiter, ignore_empty_lines=True)
    convert = pacsv.ConvertOptions(
        column_types={f"f{i}": pa.float32() for i in range(ncols)},
        strings_can_be_null=False,
    )
    return read, parse, convert


def _chunks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    """*stream* in pieces of about *size* bytes, each ending at a line end (a final line
    without one gets it)."""
    carry = b""
    while True:
        data = stream.read(size)
        if not data:
            if carry.strip():
                yield carry if carry.endswith(b"\n") else carry + b"\n"
            return
        data = carry + data if carry else data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry = data  # one line longer than a chunk: read on
            continue
        carry = data[cut:]
        yield data[:cut]


def _to_float32(column: Any) -> np.ndarray:
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float32)


def _to_batch(record_batches: list[Any], lead: int, labelled: bool) -> Batch:
    """Several parsed blocks as one batch, filled column by column (each arrow column is one
    contiguous copy into the column-major result)."""
    rows = sum(rb.num_rows for rb in record_batches)
    nfeat = record_batches[0].num_columns - lead
    features = np.empty((rows, nfeat), dtype=np.float32, order="F")

    def column(j: int, out: np.ndarray) -> None:
        start = 0
        for rb in record_batches:
            out[start : start + rb.num_rows] = _to_float32(rb.column(j))
            start += rb.num_rows

    for j in range(nfeat):
        column(lead + j, features[:, j])
    label = weight = None
    if labelled:
        label = np.empty(rows, dtype=np.float32)
        column(0, label)
    if lead == 2:
        weight = np.empty(rows, dtype=np.float32)
        column(1, weight)
    return Batch(features=features, label=label, weight=weight)


class _ColumnCount(Exception):
    pass


def _stream_batches(
    source: BinaryIO,
    name: str,
    delimiter: str,
    ncols: int,
    lead: int,
    labelled: bool,
    block_size: int,
    diagnose: Path | bytes | None,
) -> Iterator[Batch]:
    """Batches of the CSV byte stream *source*: chunks of *block_size* bytes parsed in
    parallel (in order), joined into batches of about :data:`BATCH_BYTES`."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read, parse, convert = _options(delimiter, ncols)

    def parse_chunk(chunk: bytes) -> Any:
        table = pacsv.read_csv(
            pa.BufferReader(chunk), read_options=read, parse_options=parse, convert_options=convert
        )
        if table.num_columns != ncols:
            raise _ColumnCount
        return table

    try:
        target_rows = max(1024, BATCH_BYTES // (4 * ncols))
        pending: list[Any] = []
        pending_rows = 0
        for table in ordered_map(parse_chunk, _chunks(source, block_size)):
            for record_batch in table.to_batches():
                pending.append(record_batch)
                pending_rows += record_batch.num_rows
            if pending_rows >= target_rows:
                yield _checked(_to_batch(pending, lead, labelled))
                pending, pending_rows = [], 0
        if pending:
            yield _checked(_to_batch(pending, lead, labelled))
    except (pa.ArrowInvalid, _MissingLabel, _ColumnCount) as exc:
        if diagnose is None:
            raise UserError(f"{name}: could not be read as CSV: {exc}") from None
        raise _data_error(diagnose, name, delimiter, ncols, labelled, exc) from None


def _checked(batch: Batch) -> Batch:
    if batch.label is not None and np.isnan(batch.label).any():
        raise _MissingLabel
    return batch


class _MissingLabel(Exception):
    def __str__(self) -> str:
        return "a row has an empty label"


def read_csv_files(
    files: Sequence[Path],
    *,
    weight_column: bool = False,
    delimiter: str | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> Iterator[Batch]:
    """Batches of the CSV *files*, in order: label column 0, weight column 1 if
    *weight_column*, features after that.

    The delimiter is sniffed from the first line of the first file unless given; every file
    must have the same number of columns. A row that does not parse raises a UserError naming
    the file, line and column.
    """
    if not files:
        return
    lead, minimum = _label_layout(weight_column)
    first = _first_line(files[0])
    if delimiter is None:
        delimiter = sniff_delimiter(first)
    ncols = _count_fields(first, delimiter)
    if ncols < minimum:
        raise UserError(
            f"{files[0].name}: line 1 has {ncols} column(s); "
            + (
                "with csv_weights=1 a row must hold the label, the weight and at least one feature"
                if weight_column
                else "a row must hold the label and at least one feature"
            )
        )
    for path in files:
        with path.open("rb") as source:
            yield from _stream_batches(
                source, path.name, delimiter, ncols, lead, True, block_size, path
            )


def read_csv_stream(
    stream: BinaryIO,
    *,
    name: str = "pipe",
    weight_column: bool = False,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> Iterator[Batch]:
    """Batches of a CSV byte *stream* (a Pipe-mode FIFO: read once, front to back).

    Files concatenated into the stream must each end with a newline. Errors name *name* and
    quote pyarrow's description (a stream cannot be re-read to find the line).
    """
    first = stream.readline(1 << 20)
    while first and not first.strip():
        first = stream.readline(1 << 20)
    if not first:
        return
    lead, minimum = _label_layout(weight_column)
    text = first.decode("utf-8", errors="replace")
    delimiter = sniff_delimiter(text)
    ncols = _count_fields(text, delimiter)
    if ncols < minimum:
        raise UserError(f"{name}: the first row has {ncols} column(s); expected at least {minimum}")
    source = cast(BinaryIO, PrefixedStream(first, stream))
    yield from _stream_batches(source, name, delimiter, ncols, lead, True, block_size, None)


def parse_csv_payload(body: bytes | str) -> np.ndarray:
    """An inference request's CSV rows (features only, no label) as a ``float32`` matrix.

    The delimiter is sniffed from the first line (``,`` when there is only one column); empty
    fields are ``NaN``. A ragged or non-numeric row raises a UserError naming the line.
    """
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    data = data.strip()
    if not data:
        return np.empty((0, 0), dtype=np.float32)
    data += b"\n"
    first = data.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    delimiter = sniff_payload_delimiter(first)
    ncols = _count_fields(first, delimiter)
    batches = list(
        _stream_batches(io.BytesIO(data), "request", delimiter, ncols, 0, False, 1 << 26, data)
    )
    if not batches:
        return np.empty((0, ncols), dtype=np.float32)
    if len(batches) == 1:
        return np.ascontiguousarray(batches[0].features)
    return np.concatenate([b.features for b in batches], axis=0)
