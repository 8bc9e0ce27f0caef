"""`sagedock demo` runs a script-mode job end to end and shows what happened."""

from __future__ import annotations

import subprocess
import sys

from .jobs import clean_environ


def test_demo_trains_and_shows_env_output_model_and_success() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sagedock.toolkit", "demo"],
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "train_mse=" in out
    assert "SM_CHANNEL_TRAIN=" in out and "SM_HP_L2=0.01" in out
    assert "argv: ['--l2', '0.01', '--target-column', '0']" in out
    assert "model/model.npz" in out
    assert "output/success exists" in out
