"""DataProcessing: the JSONPath subset, InputFilter, JoinSource and OutputFilter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sagedock.toolkit.local.transform.dataprocessing import (
    DataProcessing,
    DataProcessingError,
    format_of,
)
from sagedock.toolkit.local.transform.jsonpath import JsonPathError, parse_jsonpath


@pytest.mark.parametrize(
    ("expr", "value", "expected"),
    [
        ("$", [1, 2], [1, 2]),
        ("$[1:]", ["id", "a", "b"], ["a", "b"]),
        ("$[0,5:]", list(range(8)), [0, 5, 6, 7]),
        ("$[:2]", ["a", "b", "c"], ["a", "b"]),
        ("$[-1]", [1, 2, 3], 3),
        ("$[1,3]", [0, 1, 2, 3], [1, 3]),
        ("$.features", {"features": [1, 2], "id": 7}, [1, 2]),
        (
            "$['id','SageMakerOutput']",
            {"id": 1, "x": 2, "SageMakerOutput": 3},
            {"id": 1, "SageMakerOutput": 3},
        ),
        ("$.a.*", {"a": {"x": 1, "y": 2}}, [1, 2]),
        ("$.f.['a','b']", {"f": {"a": 1, "b": 2, "c": 3}}, {"a": 1, "b": 2}),
        ('$["quoted"]', {"quoted": True}, True),
    ],
)
def test_supported_jsonpath_operators_select_as_sagemaker_documents(
    expr: str, value: Any, expected: Any
) -> None:
    assert parse_jsonpath(expr).apply(value) == expected


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("features", "must start with '$'"),
        ("$..a", "deep scan"),
        ("$[a]", "expected an index, a slice or a quoted name"),
        ("$['a.b']", "nested paths inside brackets"),
        ("$[1:2:3]", "malformed slice"),
        ("$[1", "missing ']'"),
        ("$[?(@.x)]", "expected an index"),
    ],
)
def test_unsupported_or_malformed_expressions_are_refused(expr: str, problem: str) -> None:
    with pytest.raises(JsonPathError, match=problem.replace("[", r"\[").replace("$", r"\$")):
        parse_jsonpath(expr)


def test_an_index_outside_the_record_is_an_error() -> None:
    with pytest.raises(JsonPathError, match="index 5 is outside a record of 3"):
        parse_jsonpath("$[5]").apply([1, 2, 3])


def test_content_types_map_to_record_formats() -> None:
    assert format_of("text/csv; charset=utf-8") == "csv"
    assert format_of("application/jsonlines") == "json"
    assert format_of("application/x-recordio-protobuf") is None


def csv_dp(**kw: Any) -> DataProcessing:
    return DataProcessing.create(content_type="text/csv", accept="text/csv", **kw)


def test_input_filter_drops_the_id_column_of_csv_records() -> None:
    dp = csv_dp(input_filter="$[1:]")
    assert dp.filter_input(b"id7,1.5,2.5\n", "f record 1") == b"1.5,2.5\n"


def test_csv_join_appends_the_prediction_and_output_filter_picks_columns() -> None:
    dp = csv_dp(input_filter="$[1:]", join_source="Input", output_filter="$[0,-1]")
    assert dp.join(b"id7,1.5,2.5\n", b"0.93", "w") == b"id7,0.93\n"


def test_json_join_adds_sagemaker_output_to_objects() -> None:
    dp = DataProcessing.create(
        input_filter="$.features",
        join_source="Input",
        output_filter="$['id','SageMakerOutput']",
        content_type="application/jsonlines",
        accept="application/jsonlines",
    )
    assert dp.filter_input(b'{"id": 1, "features": [3, 4]}\n', "w") == b"[3,4]\n"
    joined = dp.join(b'{"id": 1, "features": [3, 4]}\n', b'{"score": 0.5}', "w")
    assert json.loads(joined) == {"id": 1, "SageMakerOutput": {"score": 0.5}}


def test_json_join_of_a_non_object_wraps_input_and_output() -> None:
    dp = DataProcessing.create(
        join_source="Input", content_type="application/json", accept="application/json"
    )
    assert json.loads(dp.join(b"[1, 2]", b"0.1", "w")) == {
        "SageMakerInput": [1, 2],
        "SageMakerOutput": 0.1,
    }


def test_responses_split_into_one_output_per_record() -> None:
    dp = csv_dp(join_source="Input")
    assert dp.split_response(b"0.1\n0.2\n0.3\n", 3, "w") == [b"0.1", b"0.2", b"0.3"]
    jdp = DataProcessing.create(
        join_source="Input", content_type="application/jsonlines", accept="application/json"
    )
    assert jdp.split_response(b'{"predictions": [{"s": 1}, {"s": 2}]}', 2, "w") == [
        b'{"s": 1}',
        b'{"s": 2}',
    ]
    assert jdp.split_response(b"[0.5, 0.7]", 2, "w") == [b"0.5", b"0.7"]


def test_a_prediction_count_mismatch_names_the_records() -> None:
    with pytest.raises(
        DataProcessingError, match=r"f records 1-3: the model returned 2 record\(s\) for 3"
    ):
        csv_dp(join_source="Input").split_response(b"1\n2\n", 3, "f records 1-3")


def test_filters_need_csv_or_json_content_types() -> None:
    dp = DataProcessing.create(input_filter="$[1:]", content_type="application/x-npy")
    with pytest.raises(DataProcessingError, match="needs CSV or JSON input"):
        dp.check_formats()


def test_a_filter_that_does_not_fit_a_record_names_it() -> None:
    dp = csv_dp(input_filter="$[9]")
    with pytest.raises(DataProcessingError, match="f record 4: InputFilter"):
        dp.filter_input(b"a,b\n", "f record 4")
