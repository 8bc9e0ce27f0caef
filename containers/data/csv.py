"""CSV: no header, the label in column 0, optionally an instance weight in column 1.

The layout is SageMaker's (``text/csv`` for the built-in algorithms): every row is data, the
delimiter is sniffed from the first line of the first file, an empty field is a missing value.
The text is read in chunks cut at line ends, and each chunk is parsed by pyarrow and copied
into row-major ``float32`` arrays on a worker thread, several chunks at a time; a file that
does not parse is scanned again line by line only to say where and why::

    ClientError: train/part-0.csv: line 7, column 3: 'abc' is not a number

Training data comes from :func:`read_csv_files` (File mode) or :func:`read_csv_stream` (Pipe
mode); inference payloads (features only, no label) from :func:`parse_csv_payload`.
"""

from __future__ import annotations

import csv as stdlib_csv
import io
import re
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
#: Rows at least this wide are parsed as one column of values (:func:`_wide_batch`): pyarrow's
#: cost is per column, ~30 us each, so a request of one 1.6M-column row took 53 s.
WIDE_COLUMNS = 1024
#: Bytes read at a time while looking for the end of the first row.
_FIRST_ROW_READ = 1 << 20
# What ends a row for pyarrow, and so for us: \n, \r\n and a bare \r.
_ROW_END = re.compile(rb"\r\n|\r|\n")

# Characters that occur inside numbers, so never a delimiter of numeric CSV: csv.Sniffer
# answers e.g. '5' for the one-column line "1.5".
_NUMBER_CHARS = frozenset("0123456789.+-eEinfatINFATy")
_PREFERRED = (",", "\t", ";", "|", " ")


class _NoDelimiter(Exception):
    pass


#: What a row of numbers separated by commas is made of.
_NUMBERS_AND_COMMAS = frozenset(_NUMBER_CHARS | {","})


def _sniff(line: str) -> str:
    sample = line[:SNIFF_CHARS].rstrip("\r\n")
    # Numbers and commas only: the sniffer can find nothing else (every other character is
    # one a number holds, which is never the answer), and it costs ~0.7 ms per request row.
    if "," in sample and _NUMBERS_AND_COMMAS.issuperset(sample):
        return ","
    return _sniff_sample(sample)


def _sniff_sample(sample: str) -> str:
    try:
        found = stdlib_csv.Sniffer().sniff(sample).delimiter
    except stdlib_csv.Error:
        found = ""
    # pyarrow takes a one-byte delimiter and no control character but tab: the sniffer may
    # answer any character (it finds '§' in '1§"2"§3', '\x00' in a NUL byte).
    usable = found.isascii() and (found.isprintable() or found == "\t")
    if found and usable and found not in _NUMBER_CHARS and not found.isalnum():
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


def _first_row(stream: BinaryIO) -> tuple[bytes, bytes]:
    """The first non-blank row of *stream*, whole however long, and every byte read from the
    stream from that row's start on (for the parser, which must see them again)."""
    data = bytearray()
    start = 0  # where the current row starts
    scanned = 0  # data[start:scanned] holds no row end
    at_end = False
    while True:
        found = _ROW_END.search(data, scanned)
        # A \r as the last byte read may be the first half of \r\n.
        if found is None or (found.end() == len(data) and data[-1:] == b"\r" and not at_end):
            if at_end:
                row = bytes(data[start:])
                return (row, row) if row.strip() else (b"", b"")
            scanned = max(start, len(data) - 1)
            block = stream.read(_FIRST_ROW_READ)
            at_end = not block
            data += block
            continue
        row = bytes(data[start : found.start()])
        if row.strip():
            return row, bytes(data[start:])
        start = scanned = found.end()


def _split_rows(text: bytes, maxsplit: int = -1) -> list[bytes]:
    """*text* cut at row ends (\n, \r\n, \r), at most *maxsplit* times."""
    if b"\r" not in text:  # the common case, without the regular expression's cost
        return text.split(b"\n", maxsplit)
    return _ROW_END.split(text, maxsplit=max(maxsplit, 0))


def _first_line(path: Path) -> str:
    with path.open("rb") as fh:
        return _first_row(cast(BinaryIO, fh))[0].decode("utf-8", errors="replace")


def _fields(row: str, delimiter: str) -> list[str]:
    """The fields of one *row* (no row end in it), quotes read as pyarrow reads them.

    :raises csv.Error: a quoted field the stdlib's reader refuses (longer than its field size
        limit, 128 KiB); an unquoted row is split directly, so has no such limit.
    """
    if '"' not in row:
        return row.split(delimiter)
    return next(stdlib_csv.reader([row], delimiter=delimiter), [])


def _count_fields(line: str, delimiter: str, name: str) -> int:
    try:
        return len(_fields(line, delimiter))
    except stdlib_csv.Error as exc:
        raise UserError(f"{name}: line 1 is not CSV: {exc}") from None


def _label_layout(weight_column: bool) -> tuple[int, int]:
    """(number of leading non-feature columns, minimum columns per row)."""
    lead = 2 if weight_column else 1
    return lead, lead + 1


# -- diagnostics (slow path, only after pyarrow refused the data) ---------------------------


def _rows(lines: IO[bytes]) -> Iterator[bytes]:
    """The rows of *lines* as pyarrow cuts them (a bare \r ends a row too), without ends."""
    for raw in lines:
        body = raw[:-2] if raw.endswith(b"\r\n") else raw.rstrip(b"\n")
        yield from body.split(b"\r")


def _describe_problem(
    lines: IO[bytes], name: str, delimiter: str, ncols: int, labelled: bool
) -> str | None:
    """Scan *lines* and describe the first row pyarrow could not have read, or ``None``."""
    for line_no, raw in enumerate(_rows(lines), start=1):
        text = raw.decode("utf-8", errors="replace")
        if not text.strip():
            continue
        try:
            fields = _fields(text, delimiter)
        except stdlib_csv.Error as exc:
            return f"{name}: line {line_no} is not CSV: {exc}"
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


def _options(delimiter: str, ncols: int, block_size: int) -> tuple[Any, Any, Any]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # One thread per chunk: the chunks themselves are parsed in parallel (pyarrow's streaming
    # reader parses its blocks one after the other). A block as large as the chunk gives one
    # record batch per chunk.
    read = pacsv.ReadOptions(
        autogenerate_column_names=True, use_threads=False, block_size=block_size + (1 << 20)
    )
    parse = pacsv.ParseOptions(delimiter=delimiter, ignore_empty_lines=True)
    # Parsed as float64 and rounded to float32 when copied out (as pandas does): pyarrow's
    # float64 conversion takes ~10% less CPU than its float32 one.
    convert = pacsv.ConvertOptions(
        column_types={f"f{i}": pa.float64() for i in range(ncols)},
        strings_can_be_null=False,
    )
    return read, parse, convert


def _last_piece(data: memoryview) -> memoryview | bytes:
    # A final line without a line end gets one (a copy of this last piece only).
    return data if data[-1:].tobytes() == b"\n" else bytes(data) + b"\n"


def _fill(stream: BinaryIO, view: memoryview) -> int:
    """Read into *view* until it is full or the stream ends; the bytes read."""
    readinto = getattr(stream, "readinto", None)
    total = 0
    while total < len(view):
        if readinto is not None:
            count = readinto(view[total:])
        else:
            data = stream.read(len(view) - total)
            count = len(data)
            view[total : total + count] = data
        if not count:
            break
        total += count
    return total


def _chunks(stream: BinaryIO, size: int) -> Iterator[memoryview | bytes]:
    """*stream* in pieces of about *size* bytes, each ending at a line end (a final line
    without one gets it). Each piece is a view of its own buffer, which the stream is read
    into: the text is not copied again on its way to the parser."""
    carry = b""
    while True:
        buffer = bytearray(len(carry) + size)
        buffer[: len(carry)] = carry
        filled = len(carry) + _fill(stream, memoryview(buffer)[len(carry) :])
        if filled == len(carry):
            if carry.strip():
                yield _last_piece(memoryview(carry))
            return
        # A bare \r ends a row too (pyarrow's rule), so a file of old Mac line ends is cut.
        cut = max(buffer.rfind(b"\n", 0, filled), buffer.rfind(b"\r", 0, filled)) + 1
        if cut == 0:
            carry = bytes(buffer[:filled])  # one line longer than a chunk: read on
            continue
        carry = bytes(buffer[cut:filled])
        yield memoryview(buffer)[:cut]


# A value beyond float32's range ("1e300") is +-inf, as in XGBoost's own float32 matrices (which
# refuse it: "Input data contains `inf` or a value too large"), without numpy's warning per chunk.
@np.errstate(over="ignore")
def _to_batch(table: Any, lead: int, labelled: bool) -> Batch:
    """A parsed chunk as a row-major batch (the order XGBoost reads rows in, in each of its
    passes over the data): each arrow column is copied into its column of the result."""
    rows = table.num_rows

    def column(j: int) -> np.ndarray:
        # float64 values (NaN where a field was empty), rounded to float32 by the caller
        values = table.column(j)
        array = values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()
        return np.asarray(array.to_numpy(zero_copy_only=False))

    features = np.empty((rows, table.num_columns - lead), dtype=np.float32)
    for j in range(lead, table.num_columns):
        features[:, j - lead] = column(j)
    label = column(0).astype(np.float32) if labelled else None
    weight = column(1).astype(np.float32) if lead == 2 else None
    if label is not None and np.isnan(label).any():
        raise _MissingLabel
    return Batch(features=features, label=label, weight=weight)


@np.errstate(over="ignore")  # as _to_batch
def _wide_batch(text: bytes, delimiter: str, ncols: int, lead: int, labelled: bool) -> Batch | None:
    """Rows of *ncols* unquoted fields, parsed as one column of values.

    pyarrow spends ~30 us per column of a chunk whatever its rows, so a few rows of many
    columns are read as one value per line (the delimiter made a row end) and reshaped: the
    same parser converts each field, with the same rules for empty fields and missing values.

    :raises _ColumnCount: a row has another number of fields (the caller names its line).
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rows = [row for row in _split_rows(text) if row]  # pyarrow skips empty lines only
    if not rows:
        return None
    separator = delimiter.encode()
    if any(row.count(separator) != ncols - 1 for row in rows):
        raise _ColumnCount
    values_text = b"\n".join(rows).replace(separator, b"\n") + b"\n"
    table = pacsv.read_csv(
        pa.BufferReader(pa.py_buffer(values_text)),
        read_options=pacsv.ReadOptions(autogenerate_column_names=True, use_threads=False),
        # The delimiter no longer occurs; empty lines are now empty fields, so they count.
        parse_options=pacsv.ParseOptions(delimiter=delimiter, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types={"f0": pa.float64()}, strings_can_be_null=False
        ),
    )
    if table.num_columns != 1 or table.num_rows != len(rows) * ncols:
        raise _ColumnCount
    column = table.column(0)
    array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    matrix = np.asarray(array.to_numpy(zero_copy_only=False)).reshape(len(rows), ncols)
    label = matrix[:, 0].astype(np.float32) if labelled else None
    if label is not None and np.isnan(label).any():
        raise _MissingLabel
    return Batch(
        features=matrix[:, lead:].astype(np.float32),
        label=label,
        weight=matrix[:, 1].astype(np.float32) if lead == 2 else None,
    )


def _join(pieces: list[Batch]) -> Batch:
    if len(pieces) == 1:
        return pieces[0]

    def joined(name: str) -> np.ndarray | None:
        values = [getattr(p, name) for p in pieces]
        return None if values[0] is None else np.concatenate(values)

    return Batch(
        features=np.concatenate([p.features for p in pieces]),
        label=joined("label"),
        weight=joined("weight"),
    )


class _ColumnCount(Exception):
    pass


def _stream_batches(
    chunks: Iterator[memoryview | bytes],
    name: str,
    delimiter: str,
    ncols: int,
    lead: int,
    labelled: bool,
    block_size: int,
    diagnose: Path | bytes | None,
    *,
    workers: int | None = None,
) -> Iterator[Batch]:
    """Batches of the CSV text *chunks* (each ending at a line end, about *block_size*
    bytes): parsed and converted to float32 arrays in parallel (in order), joined into
    batches of about :data:`BATCH_BYTES`."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # Built on first use: for a wide row they are a dict of a million column types, which
    # take seconds to build and which the wide path does not need.
    options: list[tuple[Any, Any, Any]] = []

    def parse_chunk(chunk: memoryview | bytes) -> Batch | None:
        if ncols >= WIDE_COLUMNS:
            text = bytes(chunk)
            if b'"' not in text:  # quoted fields may hold the delimiter: columns then
                return _wide_batch(text, delimiter, ncols, lead, labelled)
        if not options:
            options.append(_options(delimiter, ncols, block_size))
        read, parse, convert = options[0]
        try:
            table = pacsv.read_csv(
                pa.BufferReader(pa.py_buffer(chunk)),
                read_options=read,
                parse_options=parse,
                convert_options=convert,
            )
        except pa.ArrowInvalid:
            if not bytes(chunk).strip():
                return None  # only blank lines
            raise
        if table.num_columns != ncols:
            raise _ColumnCount
        return _to_batch(table, lead, labelled)

    try:
        target_rows = max(1024, BATCH_BYTES // (4 * ncols))
        pending: list[Batch] = []
        pending_rows = 0
        for piece in ordered_map(parse_chunk, chunks, workers=workers):
            if piece is None or not piece.num_rows:
                continue
            pending.append(piece)
            pending_rows += piece.num_rows
            if pending_rows >= target_rows:
                yield _join(pending)
                pending, pending_rows = [], 0
        if pending:
            yield _join(pending)
    except (pa.ArrowInvalid, _MissingLabel, _ColumnCount) as exc:
        if diagnose is None:
            raise UserError(f"{name}: could not be read as CSV: {exc}") from None
        raise _data_error(diagnose, name, delimiter, ncols, labelled, exc) from None


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
    ncols = _count_fields(first, delimiter, files[0].name)
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
        with path.open("rb", buffering=0) as source:
            chunks = _chunks(source, block_size)
            yield from _stream_batches(
                chunks, path.name, delimiter, ncols, lead, True, block_size, path
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
    first, consumed = _first_row(stream)
    if not first:
        return
    lead, minimum = _label_layout(weight_column)
    text = first.decode("utf-8", errors="replace")
    delimiter = sniff_delimiter(text)
    ncols = _count_fields(text, delimiter, name)
    if ncols < minimum:
        raise UserError(f"{name}: the first row has {ncols} column(s); expected at least {minimum}")
    source = cast(BinaryIO, PrefixedStream(consumed, stream))
    chunks = _chunks(source, block_size)
    yield from _stream_batches(chunks, name, delimiter, ncols, lead, True, block_size, None)


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
    first = _split_rows(data, 1)[0].decode("utf-8", errors="replace")
    delimiter = sniff_payload_delimiter(first)
    ncols = _count_fields(first, delimiter, "request")
    # One chunk, parsed on the thread that serves the request.
    batches = list(
        _stream_batches(
            iter([data]), "request", delimiter, ncols, 0, False, len(data), data, workers=1
        )
    )
    if not batches:
        return np.empty((0, ncols), dtype=np.float32)
    if len(batches) == 1:
        return np.ascontiguousarray(batches[0].features)
    return np.concatenate([b.features for b in batches], axis=0)
