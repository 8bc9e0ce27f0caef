from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sagedock.containers.data.files import (
    HIDDEN_FILE_MESSAGE,
    list_data_files,
    require_data,
    warn_identical_files,
)
from sagedock.toolkit.errors import UserError


def _touch(path: Path, text: str = "1,2\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_files_down_to_depth_three_are_combined_in_path_order(tmp_path: Path) -> None:
    a = _touch(tmp_path / "b.csv")
    b = _touch(tmp_path / "d1" / "a.csv")
    c = _touch(tmp_path / "d1" / "d2" / "a.csv")
    assert list_data_files(tmp_path) == sorted([a, b, c])


def test_files_deeper_than_three_levels_are_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kept = _touch(tmp_path / "d1" / "d2" / "a.csv")
    _touch(tmp_path / "d1" / "d2" / "d3" / "deep.csv")
    with caplog.at_level(logging.WARNING):
        assert list_data_files(tmp_path) == [kept]
    assert "exceeds the limit 3" in caplog.text and "deep.csv" in caplog.text


def test_data_only_below_depth_three_yields_no_data(tmp_path: Path) -> None:
    # SageMaker's own test case: abalone-subdirs/dir1/dir2/dir3/dir4/file gives no data.
    _touch(tmp_path / "dir1" / "dir2" / "dir3" / "dir4" / "abalone.train")
    assert list_data_files(tmp_path / "dir1") == []


def test_a_hidden_file_anywhere_is_refused_with_sagemakers_message(tmp_path: Path) -> None:
    _touch(tmp_path / "a.csv")
    hidden = _touch(tmp_path / "d1" / "d2" / "d3" / ".DS_Store")
    with pytest.raises(UserError) as info:
        list_data_files(tmp_path)
    assert info.value.message.startswith(HIDDEN_FILE_MESSAGE)
    assert str(hidden) in info.value.message


def test_empty_files_and_marker_files_are_not_data(tmp_path: Path) -> None:
    data = _touch(tmp_path / "part-0.csv")
    _touch(tmp_path / "_SUCCESS", "")
    _touch(tmp_path / "_committed", "x")
    _touch(tmp_path / "empty.csv", "")
    _touch(tmp_path / "dtrain.r0-1.cache", "x")
    assert list_data_files(tmp_path) == [data]


def test_a_single_file_path_is_its_own_data(tmp_path: Path) -> None:
    f = _touch(tmp_path / "train.csv")
    assert list_data_files(f) == [f]
    assert list_data_files(tmp_path / "missing") == []


@pytest.mark.parametrize(("channel", "word"), [("train", "training"), ("validation", "validation")])
def test_an_empty_channel_is_refused(tmp_path: Path, channel: str, word: str) -> None:
    with pytest.raises(UserError, match=f"^No data in {word} channel path {tmp_path}$"):
        require_data([], channel, tmp_path)


def test_same_named_same_sized_files_in_train_and_validation_are_warned_about(
    tmp_path: Path,
) -> None:
    t = [_touch(tmp_path / "train" / "data.csv"), _touch(tmp_path / "train" / "other.csv")]
    v = [_touch(tmp_path / "validation" / "data.csv")]
    warnings = warn_identical_files(t, v)
    assert len(warnings) == 1 and warnings[0].startswith("Suspected identical files found.")
    v2 = [_touch(tmp_path / "validation2" / "data.csv", "1,2,3\n")]
    assert warn_identical_files(t, v2) == []
