"""Serving hooks (pytorch): `serve` loads the model once per worker, then per request runs
input_fn -> predict_fn -> output_fn. Any hook left out falls back to the default.

No model_fn here: train.py saves a state dict (`model.pth`), and sagedock's default model_fn
for a state dict calls build_model() below, loads the weights into it strictly (every name and
shape must match) and switches it to eval mode; the default predict_fn runs it under
torch.no_grad(). AWS's own PyTorch containers have no such default: for them, add

    def model_fn(model_dir):
        model = build_model()
        model.load_state_dict(torch.load(f"{model_dir}/model.pth", weights_only=True))
        return model.eval()

input_fn and output_fn come from project_io.py, the same for every framework.
"""

from __future__ import annotations

import torch

# The request and response formats are the project's, the same for every framework.
from project_io import N_FEATURES, input_fn, output_fn  # noqa: F401


def build_model() -> torch.nn.Module:
    """The architecture, untrained: train.py trains it, serving loads model.pth into it."""
    return torch.nn.Linear(N_FEATURES, 1)
