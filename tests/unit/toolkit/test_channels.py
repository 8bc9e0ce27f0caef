"""Channel readers: File mode lists files, Pipe mode yields each epoch's FIFO stream."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from sagedock.toolkit.channels import check_channel_dirs, open_channel
from sagedock.toolkit.env import TrainingEnv
from sagedock.toolkit.errors import UserError


def _env(base: Path, channels: dict[str, dict[str, str]]) -> TrainingEnv:
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    return TrainingEnv.load({"SAGEMAKER_BASE_DIR": str(base)})


def test_file_mode_lists_every_regular_file_recursively_sorted(tmp_path: Path) -> None:
    env = _env(tmp_path, {"train": {"TrainingInputMode": "File"}})
    root = tmp_path / "input/data/train"
    for rel in ("b.csv", "a/z.csv", "a/b/c.csv"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("1\n")
    files = open_channel(env, "train").files()
    assert [p.relative_to(root).as_posix() for p in files] == ["a/b/c.csv", "a/z.csv", "b.csv"]


def test_pipe_mode_yields_each_epoch_fifo_as_it_appears(tmp_path: Path) -> None:
    env = _env(tmp_path, {"train": {"TrainingInputMode": "Pipe"}})
    data = tmp_path / "input/data"
    data.mkdir(parents=True)

    def platform() -> None:  # what SageMaker does: one FIFO per epoch, written in turn
        for epoch in range(2):
            fifo = data / f"train_{epoch}"
            os.mkfifo(fifo)
            with open(fifo, "wb") as stream:
                stream.write(f"epoch {epoch}".encode())

    writer = threading.Thread(target=platform)
    writer.start()
    received = []
    for epoch, stream in enumerate(open_channel(env, "train").epochs(wait=30)):
        received.append(stream.read())
        if epoch == 1:
            break
    writer.join(timeout=30)
    assert received == [b"epoch 0", b"epoch 1"]


def test_reading_a_channel_the_wrong_way_says_how(tmp_path: Path) -> None:
    env = _env(tmp_path, {"f": {"TrainingInputMode": "File"}, "p": {"TrainingInputMode": "Pipe"}})
    with pytest.raises(UserError, match="'p' is in Pipe mode: read it with epochs"):
        open_channel(env, "p").files()
    with pytest.raises(UserError, match="'f' is in File mode: read it with files"):
        open_channel(env, "f").open_epoch(0)


def test_unknown_channel_lists_the_declared_ones(tmp_path: Path) -> None:
    env = _env(tmp_path, {"train": {}, "test": {}})
    with pytest.raises(UserError, match=r"declared channels: test, train"):
        open_channel(env, "validation")


def test_missing_channel_dir_is_named(tmp_path: Path) -> None:
    env = _env(tmp_path, {"train": {}, "p": {"TrainingInputMode": "Pipe"}})
    with pytest.raises(UserError, match=r"channel 'train' .* directory .*input/data/train"):
        check_channel_dirs(env)
    (tmp_path / "input/data/train").mkdir(parents=True)
    check_channel_dirs(env)  # Pipe channels have no directory to check
