"""Serving hooks (xgboost): `serve` calls model_fn once per worker, then per request
input_fn -> predict_fn -> output_fn. Any hook left out falls back to the default.
input_fn and output_fn come from project_io.py, the same for every framework.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

# The request and response formats are the project's, the same for every framework.
from project_io import input_fn, output_fn  # noqa: F401


def model_fn(model_dir: str) -> Any:
    """Load the model that train.py saved in SM_MODEL_DIR (unpacked to /opt/ml/model)."""
    booster = xgb.Booster()
    booster.load_model(str(Path(model_dir) / "xgboost-model"))
    return booster


def predict_fn(data: np.ndarray, model: Any) -> np.ndarray:
    return model.inplace_predict(data)
