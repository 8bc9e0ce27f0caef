"""Training script for SageMaker script mode (pytorch).

SageMaker (and `sagedock local train`) runs it as `python train.py --epochs 200 ...`: each
hyperparameter arrives as a `--name value` flag, and the paths come from SM_* variables:
SM_MODEL_DIR (save the model there), SM_CHANNEL_TRAIN / SM_CHANNEL_VALIDATION (one directory
per input channel). The defaults below let it run by hand too: `python train.py`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from inference import build_model
from project_io import keep_serving_code, load_csv, rmse


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=300)
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
    torch.manual_seed(0)
    model = build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    features, labels = torch.from_numpy(x), torch.from_numpy(y).unsqueeze(1)
    for epoch in range(args.epochs):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(features), labels)
        loss.backward()
        optimizer.step()
        if epoch % 50 == 0:
            print(f"epoch={epoch} train_loss={loss.item():.4f}")
    with torch.no_grad():
        print(f"validation_rmse={rmse(model(torch.from_numpy(x_val)).numpy(), y_val):.4f}")
    # The weights only: serving rebuilds the architecture with inference.build_model().
    torch.save(model.state_dict(), model_dir / "model.pth")

    keep_serving_code(model_dir)


if __name__ == "__main__":
    main()
