"""Running the built-in XGBoost training in this process, on an XGBoostJob tree."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

from sagedock.containers.xgboost.train import train
from sagedock.toolkit.env import TrainingEnv
from sagedock.toolkit.paths import MlPaths
from tests.fixtures.xgboost import XGBoostJob

ROUND_LINE = re.compile(r"^\[(\d+)\]\t(.*)$")


def train_inprocess(job: XGBoostJob, **environ: str) -> None:
    """``train(env)`` for *job*, as ``sagedock train --algorithm xgboost`` calls it."""
    job.write_configs()
    env = TrainingEnv.load({"SAGEMAKER_BASE_DIR": str(job.base), **environ}, MlPaths(job.base))
    train(env)


@contextlib.contextmanager
def piped(job: XGBoostJob, channel: str, *parts: bytes) -> Iterator[None]:
    """Pipe mode: *channel*'s epoch-0 FIFO (``<channel>_0``), written *parts* one after the
    other by a thread, as the platform streams a channel's S3 objects."""
    fifo = job.channel_dir(channel).parent / f"{channel}_0"
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError), open(fifo, "wb") as pipe:
            for part in parts:
                pipe.write(part)

    writer = threading.Thread(target=feed, name=f"feed-{channel}", daemon=True)
    writer.start()
    try:
        yield
    finally:
        if writer.is_alive():
            # Training ended without opening the FIFO: open it once so the writer gets going
            # (and meets a closed pipe) instead of blocking for ever.
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(timeout=10)


def round_lines(stdout: str) -> list[tuple[int, dict[str, float]]]:
    """``[(round, {"train-rmse": v, ...})]`` of the evaluation lines in *stdout*."""
    rounds = []
    for line in stdout.splitlines():
        match = ROUND_LINE.match(line)
        if match:
            values = dict(part.rsplit(":", 1) for part in match.group(2).split("\t"))
            rounds.append((int(match.group(1)), {k: float(v) for k, v in values.items()}))
    return rounds


def load_model(path: Path):  # type: ignore[no-untyped-def]
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(str(path))
    return booster


def load_model_bytes(raw: bytes):  # type: ignore[no-untyped-def]
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(bytearray(raw))
    return booster
