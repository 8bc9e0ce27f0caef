"""For any bytes, every training-data reader yields batches or raises a UserError (a
ClientError naming the file), within a bounded time and memory: never another exception,
which a job would report as an AlgorithmError."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse
from hypothesis import given
from hypothesis import strategies as st

from sagedock.containers.data.csv import parse_csv_payload, read_csv_files, read_csv_stream
from sagedock.containers.data.libsvm import parse_libsvm, read_libsvm_files
from sagedock.containers.data.parquet import read_parquet_files, read_parquet_stream
from sagedock.containers.data.recordio_protobuf import (
    parse_recordio_protobuf,
    read_recordio_protobuf_files,
    read_recordio_protobuf_stream,
)
from sagedock.toolkit.errors import UserError
from sagedock.toolkit.formats import protobuf
from tests.fuzz import any_bytes, outcome, property_settings

values = st.floats(allow_nan=False, allow_infinity=False, width=32)
tables = st.integers(1, 5).flatmap(
    lambda width: st.lists(st.lists(values, min_size=width, max_size=width), min_size=1, max_size=5)
)
delimiters = st.sampled_from([",", "\t", ";", " ", "|"])


@st.composite
def _csv(draw: st.DrawFn) -> bytes:
    rows = draw(tables.filter(lambda t: len(t[0]) >= 2))
    sep = draw(delimiters)
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return "".join(sep.join(map(repr, row)) + end for row in rows).encode()


@st.composite
def _libsvm(draw: st.DrawFn) -> bytes:
    lines = []
    for row in draw(tables):
        pairs = " ".join(f"{i}:{v!r}" for i, v in enumerate(row[1:], start=1) if v)
        lines.append(f"{row[0]!r} {pairs}".strip())
    return ("\n".join(lines) + "\n").encode()


@st.composite
def _parquet(draw: st.DrawFn) -> bytes:
    rows = np.array(draw(tables.filter(lambda t: len(t[0]) >= 2)), dtype=np.float64)
    table = pa.table({f"c{i}": rows[:, i] for i in range(rows.shape[1])})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression=draw(st.sampled_from(["none", "snappy", "zstd"])))
    return buffer.getvalue()


@st.composite
def _recordio(draw: st.DrawFn) -> bytes:
    rows = np.array(draw(tables), dtype=np.float32)
    features: Any = scipy.sparse.csr_matrix(rows) if draw(st.booleans()) else rows
    return protobuf.encode_recordio_protobuf(features, rows[:, 0])


def _in_file(body: bytes, read: Callable[[list[Path]], Iterator[Any]], suffix: str) -> list[Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"part-0{suffix}"
        path.write_bytes(body)
        return list(read([path]))


READERS: dict[str, tuple[st.SearchStrategy[bytes], Callable[[bytes], Any]]] = {
    "csv payload": (_csv(), parse_csv_payload),
    "csv file": (_csv(), lambda b: _in_file(b, read_csv_files, ".csv")),
    "csv file, weights": (
        _csv(),
        lambda b: _in_file(b, lambda f: read_csv_files(f, weight_column=True), ".csv"),
    ),
    "csv pipe": (_csv(), lambda b: list(read_csv_stream(io.BytesIO(b)))),
    "libsvm payload": (_libsvm(), lambda b: parse_libsvm(b, labelled=False)),
    "libsvm labelled": (_libsvm(), lambda b: parse_libsvm(b, labelled=True)),
    "libsvm file": (_libsvm(), lambda b: _in_file(b, read_libsvm_files, ".libsvm")),
    "parquet file": (_parquet(), lambda b: _in_file(b, read_parquet_files, ".parquet")),
    "parquet pipe": (_parquet(), lambda b: list(read_parquet_stream(io.BytesIO(b)))),
    "recordio payload": (_recordio(), parse_recordio_protobuf),
    "recordio file": (_recordio(), lambda b: _in_file(b, read_recordio_protobuf_files, ".rec")),
    "recordio pipe": (_recordio(), lambda b: list(read_recordio_protobuf_stream(io.BytesIO(b)))),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_any_bytes_read_to_batches_or_a_user_error(reader: str) -> None:
    valid, read = READERS[reader]

    @property_settings()
    @given(body=any_bytes(valid))
    def check(body: bytes) -> None:
        outcome(lambda: read(body), (UserError,))

    check()


@pytest.mark.parametrize("reader", ["csv payload", "csv file", "libsvm file", "parquet file"])
def test_valid_documents_are_read(reader: str) -> None:
    # The generators make real documents: the properties above start from readable input.
    valid, read = READERS[reader]

    @property_settings(examples=20)
    @given(body=valid)
    def check(body: bytes) -> None:
        assert not isinstance(outcome(lambda: read(body), ()), BaseException)

    check()
