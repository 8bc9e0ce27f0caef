"""Training script for SageMaker script mode (tensorflow).

SageMaker (and `sagedock local train`) runs it as `python train.py --epochs 200 ...`: each
hyperparameter arrives as a `--name value` flag, and the paths come from SM_* variables:
SM_MODEL_DIR (save the model there), SM_CHANNEL_TRAIN / SM_CHANNEL_VALIDATION (one directory
per input channel). The defaults below let it run by hand too: `python train.py`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import tensorflow as tf

from project_io import keep_serving_code, load_csv, rmse


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.05)
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
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.Input((x.shape[1],)), tf.keras.layers.Dense(1)])
    model.compile(optimizer=tf.keras.optimizers.Adam(args.lr), loss="mse")
    history = model.fit(x, y, epochs=args.epochs, batch_size=16, verbose=0)
    print(f"train_loss={history.history['loss'][-1]:.4f}")
    print(f"validation_rmse={rmse(model.predict(x_val, verbose=0), y_val):.4f}")
    # A SavedModel in a version folder, the layout TensorFlow Serving and sagedock expect.
    model.export(str(model_dir / "1"))

    keep_serving_code(model_dir)


if __name__ == "__main__":
    main()
