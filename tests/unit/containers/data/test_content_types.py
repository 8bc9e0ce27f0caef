from __future__ import annotations

import pytest

from sagedock.containers.data.content_types import ACCEPTED_CONTENT_TYPES, parse_content_type
from sagedock.toolkit.errors import UserError


@pytest.mark.parametrize(
    ("value", "fmt"),
    [
        (None, "libsvm"),
        ("", "libsvm"),
        ("csv", "csv"),
        ("text/csv", "csv"),
        ("TEXT/CSV", "csv"),
        ("text/csv; label_size=1", "csv"),
        ("text/csv;charset=utf-8", "csv"),
        ("libsvm", "libsvm"),
        ("text/libsvm", "libsvm"),
        ("text/x-libsvm", "libsvm"),
        ("text/libsvm ;charset=utf8", "libsvm"),
        ("parquet", "parquet"),
        ("application/x-parquet", "parquet"),
        ("recordio-protobuf", "recordio-protobuf"),
        ("application/x-recordio-protobuf", "recordio-protobuf"),
    ],
)
def test_content_types_name_their_format(value: str | None, fmt: str) -> None:
    assert parse_content_type(value).format == fmt


def test_missing_content_type_means_libsvm() -> None:
    parsed = parse_content_type(None)
    assert (parsed.format, parsed.media_type) == ("libsvm", "text/libsvm")


@pytest.mark.parametrize(
    "value",
    ["text/csv; label_size=2", "text/csv; label_size=1=1", "text/csv; label_size=1; label_size=1"],
)
def test_csv_label_size_must_be_one(value: str) -> None:
    with pytest.raises(UserError, match=r"label_size|repeated"):
        parse_content_type(value)


@pytest.mark.parametrize("value", ["application/json", "label_size=1; text/csv", "image/png"])
def test_unknown_content_type_lists_the_accepted_ones(value: str) -> None:
    with pytest.raises(UserError) as info:
        parse_content_type(value)
    assert info.value.message == (
        f"{value} is not an accepted ContentType: " + ", ".join(ACCEPTED_CONTENT_TYPES) + "."
    )
