"""application/x-npy and application/x-npz: arrays without pickles."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sagedock.serving.codecs import NpzCodec
from sagedock.serving.errors import BadRequest
from sagedock.serving.negotiation import parse_content_type

from .helpers import decode, encode

arrays = hnp.arrays(
    st.sampled_from([np.float32, np.float64, np.int8, np.int64, np.bool_, np.dtype("<U3")]),
    hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
)


@given(arrays)
def test_npy_round_trip(array: np.ndarray) -> None:
    body, content_type = encode(array, "application/x-npy")
    assert content_type == "application/x-npy"
    np.testing.assert_array_equal(decode(body, "application/x-npy"), array)


def _npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


OBJECT_MESSAGE = (
    "holds an object array, which could only be read by unpickling it (running code from the "
    "request); send a numeric, boolean or string dtype instead"
)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            _npy(np.array([1, "x"], dtype=object), allow_pickle=True),
            f"application/x-npy body {OBJECT_MESSAGE}",
        ),
        (
            b"\x80\x04\x95\x0f\x00\x00\x00\x00",
            "application/x-npy body is not a .npy file: the magic string is not correct; "
            "expected b'\\x93NUMPY', got b'\\x80\\x04\\x95\\x0f\\x00\\x00'",
        ),
        (
            b"",
            "application/x-npy body is not a .npy file: EOF: reading magic string, "
            "expected 8 bytes got 0",
        ),
        (
            _npy(np.arange(4))[:-5],
            "application/x-npy body is truncated or corrupt: its header declares shape (4,) "
            "of int64 (32 bytes), but 27 bytes of data follow",
        ),
        (
            _npy(np.arange(2)) + b"junk",
            "application/x-npy body has 4 bytes after the array "
            "(position 144); send exactly one .npy array",
        ),
    ],
    ids=["object", "pickle", "empty", "truncated", "trailing"],
)
def test_bad_npy_is_400(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode(body, "application/x-npy")
    assert caught.value.message == message


def test_object_arrays_are_never_written() -> None:
    _, content_type = encode(np.array([{"a": 1}], dtype=object), "application/x-npy, */*;q=0.1")
    assert content_type == "application/json"  # npy cannot: the next acceptable type answers


@given(
    st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), arrays, min_size=1, max_size=3)
)
def test_npz_round_trip(named: dict[str, np.ndarray]) -> None:
    body, content_type = encode(named, "application/x-npz")
    assert content_type == "application/x-npz"
    decoded = decode(body, "application/x-npz")
    assert decoded.keys() == named.keys()
    for name, array in named.items():
        np.testing.assert_array_equal(decoded[name], array)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_npz_sparse_matrices_round_trip(fmt: str) -> None:
    matrix = scipy.sparse.random(5, 7, density=0.3, format=fmt, random_state=3)
    body, _ = encode(matrix, "application/x-npz")
    decoded = decode(body, "application/x-npz")
    assert scipy.sparse.issparse(decoded) and decoded.format == fmt
    np.testing.assert_array_equal(decoded.toarray(), matrix.toarray())


def test_single_array_npz_is_named_arr_0() -> None:
    body, _ = encode(np.arange(3), "application/x-npz")
    assert list(decode(body, "application/x-npz")) == ["arr_0"]


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_bad_npz_is_400() -> None:
    cases = {
        b"not a zip": "application/x-npz body is not an .npz (zip) archive: File is not a zip file",
        _zip(
            {"x.npy": _npy(np.array([None], dtype=object), allow_pickle=True)}
        ): f"application/x-npz body: member 'x.npy' {OBJECT_MESSAGE}",
        _zip(
            {"x.npy": b"garbage!"}
        ): "application/x-npz body: member 'x.npy' is not a .npy file: the magic string is not "
        "correct; expected b'\\x93NUMPY', got b'garbag'",
    }
    for body, message in cases.items():
        with pytest.raises(BadRequest) as caught:
            decode(body, "application/x-npz")
        assert caught.value.message == message
    bomb = _zip({"zeros.npy": _npy(np.zeros(1000))})
    with pytest.raises(BadRequest) as caught:
        NpzCodec(max_payload_bytes=100).decode(bomb, parse_content_type("application/x-npz", ""))
    assert caught.value.message == (
        "application/x-npz body expands to 8128 bytes, more than the limit of 1600 "
        "(16 x SAGEMAKER_MAX_PAYLOAD_IN_MB)"
    )
