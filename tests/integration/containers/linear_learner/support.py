"""Linear Learner job trees run through the real ``sagedock train``, and the log they print."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from sagedock.containers.linear_learner.inference import model_fn
from sagedock.containers.linear_learner.model import Scorer
from tests.fixtures.xgboost import XGBoostJob

ALGORITHM = "linear-learner"
_QUALITY = re.compile(
    r"#quality_metric: host=(?P<host>\S+),(?: epoch=(?P<epoch>\d+),)? (?P<dataset>\S+) "
    r"(?P<name>\S+) <(?:loss|score)>=(?P<value>\S+)"
)


def linear_learner_job(base: Path, hyperparameters: dict[str, Any], **kw: Any) -> XGBoostJob:
    """An /opt/ml tree whose ``train`` runs the built-in Linear Learner."""
    return XGBoostJob(base, hyperparameters=hyperparameters, algorithm=ALGORITHM, **kw)


def final_metrics(log: str, dataset: str) -> dict[str, float]:
    """The final model's ``#quality_metric`` values for *dataset* (no ``epoch=``)."""
    found = {}
    for match in _QUALITY.finditer(log):
        if match["epoch"] is None and match["dataset"] == dataset:
            found[match["name"]] = float(match["value"])
    return found


def epoch_metrics(log: str, dataset: str) -> list[float]:
    """The per-epoch objective values for *dataset*, in order."""
    return [
        float(m["value"])
        for m in _QUALITY.finditer(log)
        if m["epoch"] is not None and m["dataset"] == dataset
    ]


def metric_models(log: str) -> set[int]:
    """The ``model`` dimension of every ``#metrics`` line."""
    return {
        json.loads(line.split("#metrics ", 1)[1])["Dimensions"]["model"]
        for line in log.splitlines()
        if "#metrics {" in line
    }


def load_scorer(job: XGBoostJob) -> Scorer:
    """The trained model, loaded by the serving hooks."""
    return model_fn(job.model_dir)


def split(x: np.ndarray, y: np.ndarray, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """A fixed shuffled 60/20/20 split: train, validation, test."""
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order].astype(np.float32), y[order].astype(np.float32)
    a, b = int(0.6 * len(y)), int(0.8 * len(y))
    return [(x[:a], y[:a]), (x[a:b], y[a:b]), (x[b:], y[b:])]
