"""The predict code every stack of ``bench/serving`` runs: an XGBoost model answering CSV.

A plain user module (no sagedock imports), so the classic stack and the bare app run exactly
what ``sagedock serve`` runs: ``model_fn`` loads ``model.ubj``; ``input_fn`` parses CSV rows
into a float32 matrix; ``predict_fn`` calls ``inplace_predict``; ``output_fn`` writes one
score per line.

Prediction runs on one thread (``nthread=1``): each stack has one worker process per core, so
XGBoost's own thread pool would only oversubscribe the cores (same choice for every stack).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xgboost

MODEL_FILE = "model.ubj"
CSV = "text/csv"


def model_fn(model_dir: str | Path) -> xgboost.Booster:
    booster = xgboost.Booster(model_file=str(Path(model_dir) / MODEL_FILE))
    booster.set_param({"nthread": 1})
    return booster


def input_fn(body: str | bytes, content_type: str) -> np.ndarray:
    if content_type != CSV:
        raise ValueError(f"unsupported content type {content_type!r}")
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return np.loadtxt(text.splitlines(), delimiter=",", dtype=np.float32, ndmin=2)


def predict_fn(data: np.ndarray, model: xgboost.Booster) -> Any:
    return model.inplace_predict(data)


def output_fn(prediction: Any, accept: str) -> tuple[str, str]:
    return "\n".join(map(str, prediction.tolist())) + "\n", CSV
