"""The hyperparameter specs every built-in algorithm shares: what a range admits."""

from __future__ import annotations

import math

import pytest

from sagedock.containers.hyperparameters import (
    FLOAT32_MAX,
    INT32_MAX,
    Hyperparameter,
    Interval,
    LibraryLimit,
    float32,
    int32,
)
from sagedock.toolkit.errors import UserError


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    "interval",
    [Interval(), Interval(min_closed=0), Interval(max_open=1), Interval(min_open=0, max_closed=1)],
)
def test_no_interval_holds_nan_or_infinity(interval: Interval, value: float) -> None:
    assert value not in interval


def test_an_interval_holds_its_finite_numbers_and_nothing_else() -> None:
    unit = Interval(min_open=0, max_closed=1)
    assert 1 in unit and 0.5 in unit
    assert 0 not in unit and 1.0000001 not in unit
    assert True not in unit and "0.5" not in unit


def test_a_new_algorithms_float_refuses_nan_naming_key_value_and_range() -> None:
    # What Linear Learner or Object Detection get by declaring a spec: no check of their own.
    learning_rate = Hyperparameter("learning_rate", "float", Interval(min_open=0, max_closed=1))
    with pytest.raises(UserError) as info:
        learning_rate.validate_range(learning_rate.parse("nan"))
    assert info.value.message == (
        "Hyperparameter learning_rate: nan is not in (0, 1] "
        "(NaN and infinity are not numbers in a range)"
    )


def test_a_library_limit_is_checked_after_the_documented_range() -> None:
    bins = Hyperparameter(
        "bins",
        "int",
        Interval(min_closed=0),
        library_limit=LibraryLimit(
            Interval(min_closed=2, max_closed=INT32_MAX), "the library needs 2 bins"
        ),
    )
    with pytest.raises(UserError, match=r"^Hyperparameter bins: -1 is not in \[0, \+inf\)$"):
        bins.validate_range(-1)
    with pytest.raises(
        UserError, match=r"^Hyperparameter bins: 1 is not in \[2, 2147483647\]: the library needs"
    ):
        bins.validate_range(1)
    bins.validate_range(2)


def test_32_bit_limits_stop_at_the_c_types_largest_values() -> None:
    assert INT32_MAX in int32("X").range and INT32_MAX + 1 not in int32("X").range
    assert FLOAT32_MAX in float32("X").range and 1e39 not in float32("X").range
    assert float32("X", low=0).reason == "X keeps it as a 32-bit float"
