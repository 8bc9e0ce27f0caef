"""Checkpoints: which files are checkpoints, which one a restart resumes from, which ones the
rotation may delete while SageMaker's uploader copies them to S3."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sagedock.containers.xgboost import callbacks as cb
from tests.fixtures.xgboost import make_dataset

xgboost = pytest.importorskip("xgboost")


def _booster(rounds: int):  # type: ignore[no-untyped-def]
    data = make_dataset("regression", rows=60)
    return xgboost.train({"max_depth": 2}, xgboost.DMatrix(data.x, label=data.y), rounds)


def _checkpoint(directory: Path, iteration: int) -> Path:
    path = directory / f"xgboost-checkpoint.{iteration}"
    cb.save_booster(_booster(iteration + 1), path)
    return path


def test_a_restart_resumes_after_the_newest_checkpoint(tmp_path: Path) -> None:
    for iteration in (2, 3, 10):  # numeric order: .10 is newer than .3
        _checkpoint(tmp_path, iteration)
    booster, start = cb.load_checkpoint(tmp_path)
    assert booster is not None and booster.num_boosted_rounds() == 11
    assert start == 11


def test_a_checkpoint_that_does_not_load_is_passed_over_for_the_one_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _checkpoint(tmp_path, 3)
    whole = _checkpoint(tmp_path, 4).read_bytes()
    (tmp_path / "xgboost-checkpoint.5").write_bytes(whole[: len(whole) // 2])  # cut short
    (tmp_path / "xgboost-checkpoint.6").write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        booster, start = cb.load_checkpoint(tmp_path)
    assert booster is not None and booster.num_boosted_rounds() == 5
    assert start == 5
    assert "xgboost-checkpoint.6 does not load" in caplog.text
    assert "xgboost-checkpoint.5 does not load" in caplog.text


def test_only_corrupt_checkpoints_mean_a_fresh_start(tmp_path: Path) -> None:
    (tmp_path / "xgboost-checkpoint.0").write_bytes(b"not a model")
    assert cb.load_checkpoint(tmp_path) == (None, 0)
    assert cb.load_checkpoint(tmp_path / "missing") == (None, 0)
    assert cb.load_checkpoint(None) == (None, 0)


def test_upload_markers_and_temporary_files_are_not_checkpoints(tmp_path: Path) -> None:
    # SageMaker's uploader marks the file it copies with .sagemaker-uploading / -uploaded; the
    # checkpoint itself is complete (it is renamed into place once written) and is loaded.
    path = _checkpoint(tmp_path, 4)
    Path(f"{path}{cb.UPLOADING_SUFFIX}").write_bytes(b"")
    (tmp_path / f"xgboost-checkpoint.3{cb.UPLOADED_SUFFIX}").write_bytes(b"")
    (tmp_path / ".xgboost-checkpoint.5.abc.tmp").write_bytes(b"half written")
    assert [i for i, _ in cb.checkpoints(tmp_path)] == [4]
    booster, start = cb.load_checkpoint(tmp_path)
    assert booster is not None and start == 5


def test_rotation_keeps_a_checkpoint_while_it_is_uploading(tmp_path: Path) -> None:
    saver = cb.SaveCheckpoint(tmp_path, keep=2)
    model = _booster(1)

    def after_round(epoch: int) -> list[int]:
        saver.after_iteration(model, epoch, {})
        return [i for i, _ in cb.checkpoints(tmp_path)]

    assert after_round(0) == [0]
    Path(f"{tmp_path / 'xgboost-checkpoint.0'}{cb.UPLOADING_SUFFIX}").write_bytes(b"")
    assert after_round(1) == [0, 1]
    assert after_round(2) == [0, 1, 2]  # .0 is past the newest 2, but still being uploaded
    Path(f"{tmp_path / 'xgboost-checkpoint.0'}{cb.UPLOADED_SUFFIX}").write_bytes(b"")
    assert after_round(3) == [2, 3]  # uploaded: removed with .1
