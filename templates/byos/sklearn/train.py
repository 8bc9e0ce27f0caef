"""Training script for SageMaker script mode (sklearn).

SageMaker (and `sagedock local train`) runs it as `python train.py --epochs 200 ...`: each
hyperparameter arrives as a `--name value` flag, and the paths come from SM_* variables:
SM_MODEL_DIR (save the model there), SM_CHANNEL_TRAIN / SM_CHANNEL_VALIDATION (one directory
per input channel). The defaults below let it run by hand too: `python train.py`.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import Ridge


def load_csv(channel_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of every CSV file in a channel (label in the first column)."""
    files = sorted(Path(channel_dir).glob("*.csv"))
    if not files:
        raise SystemExit(f"no .csv files in {channel_dir}")
    data = np.vstack([np.loadtxt(path, delimiter=",", ndmin=2) for path in files])
    return data[:, 1:].astype(np.float32), data[:, 0].astype(np.float32)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "data/train"))
    parser.add_argument(
        "--validation", default=os.environ.get("SM_CHANNEL_VALIDATION", "data/validation")
    )
    return parser.parse_args()


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.ravel(predicted) - actual) ** 2)))


def keep_inference_code(model_dir: Path) -> None:
    """Ship inference.py inside the model (model.tar.gz's code/), so `serve` finds the hooks."""
    code = model_dir / "code"
    code.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).with_name("inference.py"), code / "inference.py")


def main() -> None:
    args = parse_args()
    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    x, y = load_csv(args.train)
    x_val, y_val = load_csv(args.validation)
    model = Ridge(alpha=args.alpha).fit(x, y)
    print(f"validation_rmse={rmse(model.predict(x_val), y_val):.4f}")
    joblib.dump(model, model_dir / "model.joblib")

    keep_inference_code(model_dir)


if __name__ == "__main__":
    main()
