"""Serving hooks (pytorch): `serve` calls model_fn once per worker, then per request
input_fn -> predict_fn -> output_fn. Any hook left out falls back to the default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch


def model_fn(model_dir: str) -> Any:
    """Load the model that train.py saved in SM_MODEL_DIR (unpacked to /opt/ml/model)."""
    model = torch.jit.load(str(Path(model_dir) / "model.pt"), map_location="cpu")
    model.eval()
    return model


def input_fn(body: str | bytes, content_type: str) -> np.ndarray:
    """The request body as a 2-D float array: CSV rows or a JSON list of rows."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    if content_type == "text/csv":
        rows = [[float(v) for v in line.split(",")] for line in text.splitlines() if line.strip()]
    elif content_type == "application/json":
        rows = json.loads(text)
    else:
        raise ValueError(f"unsupported content type {content_type}: send text/csv or JSON")
    return np.asarray(rows, dtype=np.float32).reshape(-1, 2)


def predict_fn(data: np.ndarray, model: Any) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(data)).numpy()


def output_fn(prediction: np.ndarray, accept: str) -> tuple[str, str]:
    """One number per row: CSV lines for text/csv, else a JSON list."""
    values = [float(v) for v in np.ravel(prediction)]
    if accept == "text/csv":
        return "".join(f"{v}\n" for v in values), "text/csv"
    return json.dumps(values), "application/json"
