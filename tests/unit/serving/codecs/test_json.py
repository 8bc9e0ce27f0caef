"""application/json and application/jsonlines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagedock.serving.codecs import _jsonlib
from sagedock.serving.errors import BadRequest

from .helpers import decode, encode

BACKENDS = ["orjson", "stdlib"]


@contextmanager
def backend(name: str) -> Iterator[None]:
    """Run with orjson, or with the stdlib fallback that hosts without orjson use."""
    saved = _jsonlib._orjson
    if name == "stdlib":
        _jsonlib._orjson = None
    try:
        yield
    finally:
        _jsonlib._orjson = saved


def test_orjson_is_installed() -> None:
    assert _jsonlib._orjson is not None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values, st.sampled_from(BACKENDS))
def test_json_round_trip(value: Any, name: str) -> None:
    with backend(name):
        body, content_type = encode(value, "application/json")
        assert content_type == "application/json"
        assert decode(body, "application/json") == value


@given(st.lists(json_values, min_size=1, max_size=6), st.sampled_from(BACKENDS))
def test_jsonlines_round_trip(values: list[Any], name: str) -> None:
    with backend(name):
        body, content_type = encode(values, "application/jsonlines")
        assert content_type == "application/jsonlines"
        assert body.endswith(b"\n") and body.count(b"\n") == len(values)
        assert decode(body, "application/jsonlines") == values


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.array([[1, 2], [3, 4]], dtype=np.int64), [[1, 2], [3, 4]]),
        (np.float32(0.5), 0.5),
        (np.int64(7), 7),
        (np.bool_(True), True),
        ({"predictions": np.array([0.25, 0.75])}, {"predictions": [0.25, 0.75]}),
        ({"score": [np.float32(0.5)]}, {"score": [0.5]}),
        ([np.array([1.0]), np.int32(2)], [[1.0], 2]),
        (pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]}), [{"a": 1, "b": 0.5}, {"a": 2, "b": 1.5}]),
        (pd.Series([1, 2]), [1, 2]),
        ({1, 2}, [1, 2]),
    ],
    ids=[
        "ndarray",
        "f32",
        "i64",
        "bool",
        "dict-array",
        "list-scalar",
        "mixed",
        "frame",
        "series",
        "set",
    ],
)
@pytest.mark.parametrize("name", BACKENDS)
def test_json_encodes_numpy_and_pandas_values(value: Any, expected: Any, name: str) -> None:
    with backend(name):
        body, _ = encode(value, "application/json")
    assert json.loads(body) == expected


@pytest.mark.parametrize("name", BACKENDS)
def test_json_writes_nan_and_infinity_as_null(name: str) -> None:
    with backend(name):
        assert encode(np.array([np.nan, 1.0, np.inf]), "application/json")[0] == b"[null,1.0,null]"
        assert encode({"s": [float("-inf")]}, "application/json")[0] == b'{"s":[null]}'


@pytest.mark.parametrize("name", BACKENDS)
def test_json_reads_what_python_clients_send(name: str) -> None:
    """NaN literals (Python's json.dumps default) and integers beyond 64 bits are accepted."""
    with backend(name):
        assert np.isnan(decode(b"[NaN]", "application/json")[0])
        assert decode(b"[18446744073709551616]", "application/json") == [2**64]
        assert encode([2**70], "application/json")[0] == b"[1180591620717411303424]"


def test_json_honours_charset() -> None:
    body = '{"name": "café"}'.encode("latin-1")
    assert decode(body, "application/json; charset=ISO-8859-1") == {"name": "café"}
    assert decode("\ufeff[1]".encode(), "application/json") == [1]


def test_jsonlines_of_an_array_and_a_frame() -> None:
    assert encode(np.array([[1, 2], [3, 4]]), "application/jsonlines")[0] == b"[1,2]\n[3,4]\n"
    frame = pd.DataFrame({"a": [1, 2]})
    assert encode(frame, "application/jsonlines")[0] == b'{"a":1}\n{"a":2}\n'
    assert encode({"a": 1}, "application/jsonlines")[0] == b'{"a":1}\n'


def test_jsonlines_skips_blank_lines() -> None:
    assert decode(b'{"a": 1}\n\n  \n[2]\n', "application/jsonlines") == [{"a": 1}, [2]]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (
            b'{"a": [1, 2}',
            "application/json",
            "invalid application/json body: Expecting ',' delimiter at line 1 column 12 (char 11)",
        ),
        (
            b'{\n  "a": 1,\n  "b": nope\n}',
            "application/json",
            "invalid application/json body: Expecting value at line 3 column 8 (char 19)",
        ),
        (b"", "application/json", "empty application/json body"),
        (b"  \n", "application/json", "empty application/json body"),
        (
            b"[1]\xff",
            "application/json",
            "application/json body is not valid utf-8: byte 0xff at position 3",
        ),
        (
            b"[1]",
            "application/json; charset=klingon",
            "unknown charset 'klingon' in Content-Type application/json",
        ),
        (
            b'{"a": 1}\n{"b": }\n',
            "application/jsonlines",
            "invalid application/jsonlines body: line 2: Expecting value at column 7",
        ),
        (b"\n\n", "application/jsonlines", "empty application/jsonlines body: no JSON lines"),
    ],
)
@pytest.mark.parametrize("name", BACKENDS)
def test_malformed_json_is_400_naming_the_position(
    body: bytes, content_type: str, message: str, name: str
) -> None:
    with backend(name), pytest.raises(BadRequest) as caught:
        decode(body, content_type)
    assert caught.value.message == message
    assert caught.value.status == 400
