"""What train.py and inference.py share, whatever the framework: reading the CSV channels,
the validation score, shipping the serving code inside the model, and the request and response
formats of the endpoint (CSV rows or a JSON list of rows in, one number per row out).

Keep this file beside train.py and inference.py: both import it, and keep_serving_code copies
it with inference.py into the model's code/ folder, where `serve` looks for the hooks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

N_FEATURES = 2


def load_csv(channel_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of every CSV file in a channel (label in the first column)."""
    files = sorted(Path(channel_dir).glob("*.csv"))
    if not files:
        raise SystemExit(f"no .csv files in {channel_dir}")
    data = np.vstack([np.loadtxt(path, delimiter=",", ndmin=2) for path in files])
    return data[:, 1:].astype(np.float32), data[:, 0].astype(np.float32)


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.ravel(predicted) - actual) ** 2)))


def keep_serving_code(model_dir: Path) -> None:
    """Ship inference.py and this file inside the model (model.tar.gz's code/), so `serve`
    finds the hooks."""
    code = model_dir / "code"
    code.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).parent
    for name in ("inference.py", "project_io.py"):
        shutil.copy(here / name, code / name)


def input_fn(body: str | bytes, content_type: str) -> np.ndarray:
    """The request body as a 2-D float array: CSV rows or a JSON list of rows."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    if content_type == "text/csv":
        rows = [[float(v) for v in line.split(",")] for line in text.splitlines() if line.strip()]
    elif content_type == "application/json":
        rows = json.loads(text)
    else:
        raise ValueError(f"unsupported content type {content_type}: send text/csv or JSON")
    return np.asarray(rows, dtype=np.float32).reshape(-1, N_FEATURES)


def output_fn(prediction: np.ndarray, accept: str) -> tuple[str, str]:
    """One number per row: CSV lines for text/csv, else a JSON list."""
    values = [float(v) for v in np.ravel(prediction)]
    if accept == "text/csv":
        return "".join(f"{v}\n" for v in values), "text/csv"
    return json.dumps(values), "application/json"
