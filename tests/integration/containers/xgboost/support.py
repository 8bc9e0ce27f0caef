"""Running the built-in XGBoost training in this process, on an XGBoostJob tree."""

from __future__ import annotations

import re
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
