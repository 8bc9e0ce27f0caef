"""Hyperparameters -> argv and SM_* values, byte for byte as AWS's training toolkit does."""

from __future__ import annotations

from typing import Any

import pytest

from sagedock.toolkit.argv import arg_name, to_cmd_args
from sagedock.toolkit.encoding import arg_value, decode_hyperparameter, env_value


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ('"train.py"', "train.py"),
        ("10", 10),
        ("0.001", 0.001),
        ("true", True),
        ("[1, 2]", [1, 2]),
        ('{"a": 1}', {"a": 1}),
        ("null", None),
        ("some words", "some words"),
        ("", ""),
        (5, 5),
    ],
)
def test_hyperparameters_decode_as_json_where_they_parse(raw: Any, decoded: Any) -> None:
    assert decode_hyperparameter(raw) == decoded


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "True"),
        (False, "False"),
        (4.0, "4.0"),
        (10, "10"),
        (None, ""),
        ("a b", "a b"),
        (["1", ["2", "3"]], "['1', ['2', '3']]"),
        ({"b": 2, "a": [1, 2]}, "a=[1, 2],b=2"),
        (b"bytes", "bytes"),
    ],
)
def test_arg_values_are_python_str_and_dicts_are_k_equals_v(value: Any, text: str) -> None:
    assert arg_value(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("/opt/ml/model", "/opt/ml/model"),
        (None, ""),
        (True, "true"),
        (20, "20"),
        ([1, "x"], '[1,"x"]'),
        ({"b": 1, "a": 2}, '{"a":2,"b":1}'),
        ("é", "é"),
        ({"k": "é"}, '{"k":"\\u00e9"}'),
    ],
)
def test_env_values_are_compact_sorted_ascii_json_except_strings(value: Any, text: str) -> None:
    assert env_value(value) == text


def test_keys_are_sorted_and_one_letter_keys_get_one_dash() -> None:
    args = to_cmd_args({"lr": 0.1, "b": True, "epochs": 10, "model-dir": "/x", "": "empty"})
    assert args == ["", "empty", "-b", "True", "--epochs", "10", "--lr", "0.1", "--model-dir", "/x"]


def test_arg_name() -> None:
    assert (arg_name("x"), arg_name("xy"), arg_name("")) == ("-x", "--xy", "")
