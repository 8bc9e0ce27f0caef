"""LIBSVM: ``<label>[:<weight>] [qid:<id>] <index>:<value> ...`` one row per line.

Indices are used as they are written, the way SageMaker's XGBoost (XGBoost's own parser) reads
them: a file with 1-based indices gets an empty column 0, so the 8 features of the Abalone data
give 9 columns. An entry that is not written is *missing* (not zero). An index written with an
empty value (``8:``, as in upstream's own abalone-multiclass data) is a present 0: XGBoost's
parser converts the empty number to 0 (at the end of a file; elsewhere its conversion runs past
the token into the next line's label, which is a read past the token, not a format rule).

Lines are split and converted by pyarrow compute kernels on blocks of the file, several blocks
in parallel; every line is checked (XGBoost's own parser silently turns a malformed line into
wrong numbers). A file that does not parse is scanned once more only to name the line::

    ClientError: train.libsvm: line 3 is not in LIBSVM format: 'a:1' is not <index>:<value>
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from sagedock.toolkit.errors import UserError

from ._io import close_source, text_source
from ._parallel import ordered_map
from .batch import Batch, concat, csr_index_dtype

#: Bytes of text per parsed block.
DEFAULT_BLOCK_SIZE = 1 << 20
#: Parsed blocks are joined into batches of about this many bytes.
BATCH_BYTES = 32 << 20

_FORMAT = "<label>[:<weight>] <index>:<value> ..."
_MAX_INDEX = 2**31 - 1


class _BlockError(Exception):
    """A block does not parse; the slow path finds and names the line."""


def _line_reader(source: Any, block_size: int) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    return pacsv.open_csv(
        source,
        read_options=pacsv.ReadOptions(
            column_names=["line"], block_size=block_size, use_threads=False
        ),
        parse_options=pacsv.ParseOptions(
            delimiter="\x1f", quote_char=False, escape_char=False, ignore_empty_lines=True
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={"line": pa.string()},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _numbers(
    strings: Any, tolerated: np.ndarray, value_at: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """The numbers of *strings* and, when ``qid`` tokens occur, a mask of them.

    Strings at *tolerated* positions (ignored labels of inference payloads), empty strings at
    *value_at* positions (the values of pairs, see the module docstring) and the ``qid`` in
    ``qid:<n>`` are read as 0; any other non-number makes the block malformed.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return np.asarray(pc.cast(strings, pa.float64()).to_numpy(zero_copy_only=False)), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    is_qid = np.asarray(pc.equal(strings, "qid").to_numpy(zero_copy_only=False), dtype=bool)
    empty = np.asarray(pc.binary_length(strings).to_numpy(zero_copy_only=False)) == 0
    empty_value = np.zeros(len(strings), dtype=bool)
    empty_value[value_at] = empty[value_at]
    # ``qid:`` names no group: malformed, as the diagnostics say.
    if np.any(empty_value[1:] & is_qid[:-1]):
        raise _BlockError
    skip = is_qid | tolerated | empty_value
    if not skip.any():
        raise _BlockError
    try:
        nums = pc.cast(pc.if_else(pa.array(skip), "0", strings), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise _BlockError from None
    return np.asarray(nums.to_numpy(zero_copy_only=False)), (is_qid if is_qid.any() else None)


@np.errstate(over="ignore")  # a value beyond float32's range is +-inf, as in the CSV reader
def _parse_lines(lines: Any, labelled: bool) -> Batch:
    """One block of lines (an arrow string array) as a CSR batch; _BlockError if malformed."""
    import pyarrow.compute as pc
    import scipy.sparse

    tokens = pc.ascii_split_whitespace(lines)
    per_line = np.asarray(pc.list_value_length(tokens).to_numpy(zero_copy_only=False))
    token_offsets = tokens.offsets.to_numpy()
    flat = tokens.values[token_offsets[0] : token_offsets[-1]]
    token_offsets = token_offsets - token_offsets[0]
    parts = pc.split_pattern(flat, ":", max_splits=1)
    part_counts = np.asarray(pc.list_value_length(parts).to_numpy(zero_copy_only=False))
    part_offsets = parts.offsets.to_numpy()
    part_offsets = part_offsets - part_offsets[0]
    strings = parts.values[parts.offsets[0].as_py() : parts.offsets[-1].as_py()]
    rows = per_line > 0
    n_rows = int(rows.sum())
    first = token_offsets[:-1][rows]
    is_first = np.zeros(len(part_counts), dtype=bool)
    is_first[first] = True
    starts = part_offsets[:-1]

    if np.any(part_counts[~is_first] != 2):
        raise _BlockError
    tolerated = np.zeros(len(strings), dtype=bool)
    if not labelled:
        # Inference: a leading token without ':' is a label, ignored whatever it says.
        ignored = first[part_counts[first] == 1]
        tolerated[starts[ignored]] = True
    pair = ~is_first if labelled else part_counts == 2
    nums, qid_parts = _numbers(strings, tolerated, starts[pair] + 1)

    label: np.ndarray | None = None
    weight: np.ndarray | None = None
    if labelled:
        label = nums[starts[first]].astype(np.float32)
        has_weight = part_counts[first] == 2
        if has_weight.any():
            weight = np.ones(n_rows, dtype=np.float32)
            weight[has_weight] = nums[starts[first][has_weight] + 1]
    pair_starts = starts[pair]
    index = nums[pair_starts]
    values = nums[pair_starts + 1].astype(np.float32)
    line_of_pair = np.repeat(np.arange(len(per_line)), per_line)[pair]

    qid: np.ndarray | None = None
    if qid_parts is not None:
        is_qid = qid_parts[pair_starts]
        # One qid per row, carried to the batch; qid tokens are not features.
        qid = np.zeros(len(per_line), dtype=np.float64)
        qid[line_of_pair[is_qid]] = nums[pair_starts + 1][is_qid]
        qid = qid[rows].astype(np.uint32)
        keep = ~is_qid
        index, values, line_of_pair = index[keep], values[keep], line_of_pair[keep]
    if index.size and (
        index.min() < 0 or index.max() > _MAX_INDEX or np.any(index != np.floor(index))
    ):
        raise _BlockError

    counts = np.bincount(line_of_pair, minlength=len(per_line))[rows]
    width = int(index.max()) + 1 if index.size else 0
    dtype = csr_index_dtype(max(int(counts.sum()), width))
    indptr = np.zeros(n_rows + 1, dtype=dtype)
    np.cumsum(counts, out=indptr[1:])
    features = scipy.sparse.csr_matrix(
        (values, index.astype(dtype), indptr), shape=(n_rows, width), copy=False
    )
    return Batch(features=features, label=label, weight=weight, qid=qid)


# -- diagnostics -----------------------------------------------------------------------------


def _check_pair(token: str) -> str | None:
    index, sep, value = token.partition(":")
    if not sep or ":" in value:
        return f"{token[:40]!r} is not <index>:<value>"
    if index == "qid":
        return None if value.isdigit() else f"{token[:40]!r}: qid must be an integer"
    if not index.isdigit() or int(index) > _MAX_INDEX:
        return f"{token[:40]!r}: the index must be a non-negative integer"
    if not value:
        return None  # an empty value is 0 (module docstring)
    try:
        float(value)
    except ValueError:
        return f"{token[:40]!r}: the value is not a number"
    return None


def _check_line(text: str, labelled: bool) -> str | None:
    tokens = text.split()
    if not tokens:
        return None
    if labelled:
        label, sep, weight = tokens[0].partition(":")
        for what, part in (("label", label), ("weight", weight if sep else "0")):
            try:
                float(part)
            except ValueError:
                return f"the {what} in {tokens[0][:40]!r} is not a number"
        tokens = tokens[1:]
    elif ":" not in tokens[0]:
        tokens = tokens[1:]
    for token in tokens:
        problem = _check_pair(token)
        if problem:
            return problem
    return None


def _describe_problem(lines: IO[bytes], name: str, labelled: bool) -> str | None:
    for line_no, raw in enumerate(lines, start=1):
        problem = _check_line(raw.decode("utf-8", errors="replace"), labelled)
        if problem:
            return f"{name}: line {line_no} is not in LIBSVM format ({_FORMAT}): {problem}"
    return None


def _data_error(source: Path | bytes, name: str, labelled: bool) -> UserError:
    if isinstance(source, Path):
        with source.open("rb") as fh:
            problem = _describe_problem(fh, name, labelled)
    else:
        problem = _describe_problem(io.BytesIO(source), name, labelled)
    return UserError(problem or f"{name}: could not be read as LIBSVM ({_FORMAT})")


# -- public API ------------------------------------------------------------------------------


def _read(
    source: Any, name: str, diagnose: Path | bytes, labelled: bool, block_size: int
) -> Iterator[Batch]:
    import pyarrow as pa

    try:
        blocks = (rb.column(0) for rb in _line_reader(source, block_size))
        pending: list[Batch] = []
        pending_bytes = 0
        for batch in ordered_map(lambda lines: _parse_lines(lines, labelled), blocks):
            if not batch.num_rows:
                continue
            pending.append(batch)
            pending_bytes += batch.nbytes
            if pending_bytes >= BATCH_BYTES:
                yield concat(pending) if len(pending) > 1 else pending[0]
                pending, pending_bytes = [], 0
                # pyarrow's allocator caches the parsing intermediates of every thread;
                # without this they add up to more than the parsed data.
                pa.default_memory_pool().release_unused()
        if pending:
            yield concat(pending) if len(pending) > 1 else pending[0]
    except (_BlockError, pa.ArrowInvalid):
        raise _data_error(diagnose, name, labelled) from None


def read_libsvm_files(
    files: Sequence[Path], *, block_size: int = DEFAULT_BLOCK_SIZE
) -> Iterator[Batch]:
    """Batches (CSR features, labels, weights where given) of the LIBSVM *files*, in order.

    Each batch is as wide as its largest index + 1; consumers widen them to a common width.
    """
    for path in files:
        source = text_source(path)
        try:
            yield from _read(source, path.name, path, True, block_size)
        finally:
            close_source(source)


def parse_libsvm(data: bytes, *, labelled: bool, name: str = "request") -> Batch:
    """LIBSVM text in memory as one batch.

    With ``labelled=False`` (inference payloads) labels are optional: a first token without
    ``:`` is dropped, the rest are ``<index>:<value>`` pairs.
    """
    import pyarrow as pa
    import scipy.sparse

    body = bytes(data).strip()
    if not body:
        return Batch(features=scipy.sparse.csr_matrix((0, 0), dtype=np.float32))
    body += b"\n"
    batches = list(_read(pa.BufferReader(body), name, body, labelled, max(len(body), 1 << 20)))
    if not batches:
        return Batch(features=scipy.sparse.csr_matrix((0, 0), dtype=np.float32))
    if len(batches) == 1:
        return batches[0]
    return concat(batches)
