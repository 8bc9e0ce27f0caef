"""Serving hooks (pytorch): `serve` calls model_fn once per worker, then per request
input_fn -> predict_fn -> output_fn. Any hook left out falls back to the default.
input_fn and output_fn come from project_io.py, the same for every framework.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

# The request and response formats are the project's, the same for every framework.
from project_io import input_fn, output_fn  # noqa: F401


def model_fn(model_dir: str) -> Any:
    """Load the model that train.py saved in SM_MODEL_DIR (unpacked to /opt/ml/model)."""
    model = torch.jit.load(str(Path(model_dir) / "model.pt"), map_location="cpu")
    model.eval()
    return model


def predict_fn(data: np.ndarray, model: Any) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(data)).numpy()
