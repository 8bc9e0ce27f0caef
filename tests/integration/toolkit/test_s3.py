"""toolkit.s3 against a real S3 API (moto's server on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagedock.toolkit import s3
from sagedock.toolkit.errors import UserError
from tests.fixtures.s3 import S3Server


def test_client_honours_aws_endpoint_url_s3_from_the_given_environ(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="k", Body=b"v")
    assert s3.list_objects(f"s3://{bucket}/", environ=s3_server.environ) == [f"s3://{bucket}/k"]


def test_upload_then_download_round_trips_bytes(s3_env: S3Server, tmp_path: Path) -> None:
    bucket = s3_env.new_bucket()
    src = tmp_path / "model.tar.gz"
    src.write_bytes(b"\x00\x01payload" * 1000)
    uri = f"s3://{bucket}/out/job/model.tar.gz"
    assert s3.upload_file(src, uri) == uri
    dest = tmp_path / "back" / "m.tgz"
    assert s3.download_file(uri, dest) == dest
    assert dest.read_bytes() == src.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["m.tgz"]  # no temp file left behind


def test_download_of_a_missing_object_is_a_user_error_naming_it(
    s3_env: S3Server, tmp_path: Path
) -> None:
    bucket = s3_env.new_bucket()
    uri = f"s3://{bucket}/nope.csv"
    with pytest.raises(UserError, match=r"nope\.csv: no such object"):
        s3.download_file(uri, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert list(tmp_path.iterdir()) == []


def test_missing_bucket_is_a_user_error(s3_env: S3Server, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"does not exist|no such object"):
        s3.download_file("s3://no-such-bucket-here/k", tmp_path / "x")


def test_list_objects_returns_sorted_uris_without_folder_markers(s3_env: S3Server) -> None:
    bucket = s3_env.new_bucket()
    c = s3_env.client()
    for key in ["train/b.csv", "train/a.csv", "train/sub/c.csv", "train/", "other/x"]:
        c.put_object(Bucket=bucket, Key=key, Body=b"1")
    assert s3.list_objects(f"s3://{bucket}/train/") == [
        f"s3://{bucket}/train/a.csv",
        f"s3://{bucket}/train/b.csv",
        f"s3://{bucket}/train/sub/c.csv",
    ]


def test_list_objects_pages_through_more_than_a_thousand_keys(s3_env: S3Server) -> None:
    bucket = s3_env.new_bucket()
    c = s3_env.client()
    for i in range(1005):
        c.put_object(Bucket=bucket, Key=f"p/{i:05d}", Body=b"")
    uris = s3.list_objects(f"s3://{bucket}/p/")
    assert len(uris) == 1005
    assert uris[-1] == f"s3://{bucket}/p/01004"


def test_download_prefix_keeps_the_layout_below_the_prefix(
    s3_env: S3Server, tmp_path: Path
) -> None:
    bucket = s3_env.new_bucket()
    c = s3_env.client()
    c.put_object(Bucket=bucket, Key="data/train/a.csv", Body=b"a")
    c.put_object(Bucket=bucket, Key="data/train/sub/b.csv", Body=b"b")
    c.put_object(Bucket=bucket, Key="data/validation/c.csv", Body=b"c")
    files = s3.download_prefix(f"s3://{bucket}/data/train", tmp_path / "ch")
    assert files == [tmp_path / "ch" / "a.csv", tmp_path / "ch" / "sub" / "b.csv"]
    assert (tmp_path / "ch" / "sub" / "b.csv").read_bytes() == b"b"


def test_download_prefix_of_a_single_object_key_gives_that_file(
    s3_env: S3Server, tmp_path: Path
) -> None:
    bucket = s3_env.new_bucket()
    s3_env.client().put_object(Bucket=bucket, Key="d/train.csv", Body=b"x")
    assert s3.download_prefix(f"s3://{bucket}/d/train.csv", tmp_path) == [tmp_path / "train.csv"]


def test_download_prefix_with_nothing_under_it_is_a_user_error(
    s3_env: S3Server, tmp_path: Path
) -> None:
    bucket = s3_env.new_bucket()
    with pytest.raises(UserError, match="no objects found under"):
        s3.download_prefix(f"s3://{bucket}/empty/", tmp_path)


def test_download_prefix_refuses_keys_that_escape_the_destination(
    s3_env: S3Server, tmp_path: Path
) -> None:
    bucket = s3_env.new_bucket()
    s3_env.client().put_object(Bucket=bucket, Key="p/../../evil", Body=b"x")
    with pytest.raises(UserError, match="safe local path"):
        s3.download_prefix(f"s3://{bucket}/p/", tmp_path / "d")
    assert not (tmp_path / "evil").exists()


def test_upload_dir_mirrors_the_tree_under_the_prefix(s3_env: S3Server, tmp_path: Path) -> None:
    bucket = s3_env.new_bucket()
    (tmp_path / "ck" / "sub").mkdir(parents=True)
    (tmp_path / "ck" / "a").write_bytes(b"1")
    (tmp_path / "ck" / "sub" / "b").write_bytes(b"2")
    uris = s3.upload_dir(tmp_path / "ck", f"s3://{bucket}/checkpoints/")
    assert uris == [f"s3://{bucket}/checkpoints/a", f"s3://{bucket}/checkpoints/sub/b"]
    assert s3.list_objects(f"s3://{bucket}/checkpoints/") == uris


def test_upload_of_a_missing_file_is_a_user_error(s3_env: S3Server, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a file"):
        s3.upload_file(tmp_path / "missing", "s3://some-bucket/k")
