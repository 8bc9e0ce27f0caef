"""Training script for SageMaker script mode (numpy, in your own image).

SageMaker (and `sagedock local train`) runs it as `python train.py --epochs 200 ...`: each
hyperparameter arrives as a `--name value` flag, and the paths come from SM_* variables:
SM_MODEL_DIR (save the model there), SM_CHANNEL_TRAIN / SM_CHANNEL_VALIDATION (one directory
per input channel). The defaults below let it run by hand too: `python train.py`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

# The image serves with SAGEMAKER_PROGRAM=train.py: the hooks live in inference.py.
from inference import input_fn, model_fn, output_fn, predict_fn  # noqa: F401
from project_io import keep_serving_code, load_csv, rmse


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--l2", type=float, default=0.0)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "data/train"))
    parser.add_argument(
        "--validation", default=os.environ.get("SM_CHANNEL_VALIDATION", "data/validation")
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    x, y = load_csv(args.train)
    x_val, y_val = load_csv(args.validation)
    design = np.hstack([x, np.ones((len(x), 1), np.float32)])
    gram = design.T @ design + args.l2 * np.eye(design.shape[1], dtype=np.float32)
    weights = np.linalg.solve(gram, design.T @ y)
    predicted = np.hstack([x_val, np.ones((len(x_val), 1), np.float32)]) @ weights
    print(f"validation_rmse={rmse(predicted, y_val):.4f}")
    np.save(model_dir / "weights.npy", weights)

    keep_serving_code(model_dir)


if __name__ == "__main__":
    main()
