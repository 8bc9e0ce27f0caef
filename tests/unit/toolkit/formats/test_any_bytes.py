"""For any bytes, the RecordIO framing and the Record protobuf decoders return records or raise a
UserError (RecordIOError, RecordFormatError: a ClientError naming the record and byte offset),
within a bounded time and memory."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given
from hypothesis import strategies as st

from sagedock.toolkit.errors import UserError
from sagedock.toolkit.formats import protobuf, recordio
from tests.fuzz import any_bytes, outcome, property_settings

values = st.floats(allow_nan=False, width=32)


@st.composite
def _records(draw: st.DrawFn) -> bytes:
    """Dense or sparse rows, with or without labels; runs of equal records take the vectorised
    path, mixed ones the per-record parser."""
    width = draw(st.integers(1, 4))
    rows = draw(st.lists(st.lists(values, min_size=width, max_size=width), min_size=1, max_size=6))
    repeat = draw(st.integers(1, 6))
    matrix = np.array(rows * repeat, dtype=np.float32)
    features: Any = scipy.sparse.csr_matrix(matrix) if draw(st.booleans()) else matrix
    labels = matrix[:, 0] if draw(st.booleans()) else None
    return protobuf.encode_recordio_protobuf(features, labels)


@st.composite
def _framed(draw: st.DrawFn) -> bytes:
    payloads = draw(st.lists(st.binary(max_size=40), max_size=6))
    return recordio.encode_records(payloads)


def _batches(body: bytes) -> list[Any]:
    return list(protobuf.iter_batches(io.BytesIO(body), batch_bytes=64))


DECODERS: dict[str, tuple[st.SearchStrategy[bytes], Callable[[bytes], Any]]] = {
    "scan_records": (_framed(), lambda b: recordio.scan_records(b, final=True)),
    "scan_records, partial": (_framed(), lambda b: recordio.scan_records(b, final=False)),
    "iter_records": (_framed(), lambda b: list(recordio.iter_records(io.BytesIO(b)))),
    "read_all_records": (_framed(), lambda b: recordio.read_all_records(io.BytesIO(b))),
    "decode_record": (_records().map(lambda b: b[8:]), protobuf.decode_record),
    "read_recordio_protobuf": (
        _records(),
        lambda b: list(protobuf.read_recordio_protobuf(io.BytesIO(b))),
    ),
    "to_arrays": (_records(), protobuf.to_arrays),
    "to_arrays float64": (_records(), lambda b: protobuf.to_arrays(b, dtype=np.float64)),
    "iter_batches": (_records(), _batches),
}


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_any_bytes_decode_to_records_or_a_user_error(decoder: str) -> None:
    valid, decode = DECODERS[decoder]

    @property_settings()
    @given(body=any_bytes(valid))
    def check(body: bytes) -> None:
        outcome(lambda: decode(body), (UserError,))

    check()
