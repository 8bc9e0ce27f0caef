"""text/csv: float matrices in, one row per line out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sagedock.serving.errors import BadRequest

from .helpers import decode, encode


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"1,2,3\n4,5,6\n", "text/csv", [[1, 2, 3], [4, 5, 6]]),
        (b"1,2,3", "text/csv", [[1, 2, 3]]),
        (b"0.5\n1e3\n-2\n", "text/csv", [[0.5], [1000.0], [-2.0]]),
        (b"1, 2 ,3\r\n4,5,6\r\n", "text/csv", [[1, 2, 3], [4, 5, 6]]),
        (b"\n1,2\n\n3,4\n\n", "text/csv", [[1, 2], [3, 4]]),
        (b"a,b\n1,2\n", "text/csv; header=present", [[1, 2]]),
        (b"a,b\n1,2\n", "text/csv; header=PRESENT; charset=utf-8", [[1, 2]]),
        (b"1,2\n", "text/csv; header=absent", [[1, 2]]),
        (b"1,2\n", "text/csv; label_size=1", [[1, 2]]),
    ],
)
def test_csv_decodes_to_a_float_matrix(body: bytes, content_type: str, expected: list) -> None:
    array = decode(body, content_type)
    assert isinstance(array, np.ndarray) and array.dtype == np.float64
    assert array.tolist() == expected


def test_empty_fields_are_nan() -> None:
    array = decode(b"1,,3\n,5,\n", "text/csv")
    assert np.isnan(array).tolist() == [[False, True, False], [True, False, True]]
    assert array[0, 0] == 1 and array[1, 1] == 5


def test_nan_and_inf_literals_are_numbers() -> None:
    array = decode(b"nan,inf,-inf\n", "text/csv")
    assert np.isnan(array[0, 0]) and array[0, 1] == np.inf and array[0, 2] == -np.inf


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"1,2,3\n4,5\n", "text/csv", "invalid text/csv body: line 2 has 2 columns, line 1 has 3"),
        (
            b"1,2\n\n3,4,5\n",
            "text/csv",
            "invalid text/csv body: line 3 has 3 columns, line 1 has 2",
        ),
        (
            b"1,2,3\n4,abc,6\n",
            "text/csv",
            "invalid text/csv body: line 2 column 2: 'abc' is not a number",
        ),
        (b"x,y\n1,2\n", "text/csv", "invalid text/csv body: line 1 column 1: 'x' is not a number"),
        (
            b"h\n1,2\n3,zz\n",
            "text/csv; header=present",
            "invalid text/csv body: line 3 column 2: 'zz' is not a number",
        ),
        (b'"1",2\n', "text/csv", "invalid text/csv body: line 1 column 1: '\"1\"' is not a number"),
        (b"", "text/csv", "empty text/csv body: no rows"),
        (b"a,b\n", "text/csv; header=present", "empty text/csv body: no rows"),
        (b"1,\xff\n", "text/csv", "text/csv body is not valid utf-8: byte 0xff at position 2"),
    ],
)
def test_malformed_csv_is_400_naming_line_and_column(
    body: bytes, content_type: str, message: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        decode(body, content_type)
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("value", "body"),
    [
        (np.array([0.5, 1.25]), b"0.5\n1.25\n"),
        (np.array([[1.0, 2.0], [3.0, 4.5]]), b"1.0,2.0\n3.0,4.5\n"),
        (np.array([0.1], dtype=np.float32), b"0.1\n"),
        (np.array([1, 2]), b"1\n2\n"),
        (np.array([True, False]), b"1\n0\n"),
        ([[1, 2], [3, 4]], b"1,2\n3,4\n"),
        (np.float64(0.25), b"0.25\n"),
        (3, b"3\n"),
        (np.array(["a", "b,c"]), b'a\n"b,c"\n'),
        (pd.DataFrame({"a": [1, 2], "b": [3, 4]}), b"1,3\n2,4\n"),
        (np.array([np.nan]), b"nan\n"),
    ],
)
def test_csv_encodes_one_row_per_line(value: object, body: bytes) -> None:
    assert encode(value, "text/csv") == (body, "text/csv")


@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 8), st.integers(1, 5)),
        elements=st.floats(allow_nan=False, allow_infinity=False, width=64),
    )
)
def test_csv_round_trip_is_exact(array: np.ndarray) -> None:
    body, _ = encode(array, "text/csv")
    np.testing.assert_array_equal(decode(body, "text/csv"), array)


@given(hnp.arrays(np.float32, st.integers(1, 20), elements=st.floats(width=32, allow_nan=False)))
def test_float32_csv_round_trips_through_float32(array: np.ndarray) -> None:
    body, _ = encode(array, "text/csv")
    np.testing.assert_array_equal(decode(body, "text/csv").astype(np.float32)[:, 0], array)
