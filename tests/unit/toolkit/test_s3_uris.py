from __future__ import annotations

import pytest

from sagedock.toolkit.errors import UserError
from sagedock.toolkit.s3 import is_s3_uri, join_uri, parse_s3_uri, relative_key


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/key", ("bucket", "key")),
        ("s3://bucket/a/b/c.csv", ("bucket", "a/b/c.csv")),
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/", ("bucket", "")),
        ("S3://my.bucket-1/p/", ("my.bucket-1", "p/")),
    ],
)
def test_parse_s3_uri_splits_bucket_and_key(uri: str, expected: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize("uri", ["http://bucket/key", "bucket/key", "s3:///key", "s3://b/k", ""])
def test_parse_s3_uri_rejects_malformed_uris_naming_them(uri: str) -> None:
    with pytest.raises(UserError) as info:
        parse_s3_uri(uri)
    assert repr(uri) in info.value.message


def test_is_s3_uri_checks_the_scheme_only() -> None:
    assert is_s3_uri("s3://b/k")
    assert not is_s3_uri("file:///tmp/x")
    assert not is_s3_uri("/data/s3://x")


def test_join_uri_puts_single_slashes_between_parts() -> None:
    assert join_uri("s3://b/out/", "job", "/output/", "model.tar.gz") == (
        "s3://b/out/job/output/model.tar.gz"
    )


@pytest.mark.parametrize(
    ("prefix", "key", "expected"),
    [
        ("data/train/", "data/train/a/b.csv", "a/b.csv"),
        ("data/train", "data/train/a.csv", "a.csv"),
        ("data/train.csv", "data/train.csv", "train.csv"),
        ("data/tr", "data/train/a.csv", "train/a.csv"),
        ("", "x/y.csv", "x/y.csv"),
    ],
)
def test_relative_key_keeps_the_layout_below_the_prefix(
    prefix: str, key: str, expected: str
) -> None:
    assert relative_key(key, prefix) == expected
