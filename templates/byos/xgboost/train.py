"""Training script for SageMaker script mode (xgboost).

SageMaker (and `sagedock local train`) runs it as `python train.py --epochs 200 ...`: each
hyperparameter arrives as a `--name value` flag, and the paths come from SM_* variables:
SM_MODEL_DIR (save the model there), SM_CHANNEL_TRAIN / SM_CHANNEL_VALIDATION (one directory
per input channel). The defaults below let it run by hand too: `python train.py`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import xgboost as xgb

from project_io import keep_serving_code, load_csv, rmse


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-round", type=int, default=50)
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--eta", type=float, default=0.3)
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
    params = {"objective": "reg:squarederror", "max_depth": args.max_depth, "eta": args.eta}
    train, validation = xgb.DMatrix(x, label=y), xgb.DMatrix(x_val, label=y_val)
    booster = xgb.train(
        params, train, num_boost_round=args.num_round, evals=[(validation, "validation")]
    )
    print(f"validation_rmse={rmse(booster.predict(validation), y_val):.4f}")
    # UBJSON, XGBoost's own format, under the name SageMaker's XGBoost serving looks for
    # (save_model would warn that the name has no format extension).
    (model_dir / "xgboost-model").write_bytes(booster.save_raw("ubj"))

    keep_serving_code(model_dir)


if __name__ == "__main__":
    main()
