"""bench/xgboost (b) runs end to end on a small CSV: both processes run, the ratio and the
time of every phase of each are printed. No assertion on any timing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_end_to_end_part_prints_the_ratio_and_every_phase(repo_root: Path) -> None:
    small = ["--rows", "0", "--e2e-rows", "3000", "--rounds", "3", "--repeat", "1"]
    done = subprocess.run(
        [sys.executable, str(repo_root / "bench" / "xgboost"), *small],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=repo_root,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    lines = done.stdout.splitlines()
    assert any(line.strip().startswith("overhead ratio (median):") for line in lines)
    expected = {
        "bare": ("start", "import", "load", "train", "save", "exit"),
        "sagedock": ("start", "import", "read", "matrix", "train", "save", "exit"),
    }
    for side, phases in expected.items():
        [line] = [line for line in lines if line.strip().startswith(f"{side} phases")]
        named = line.split(":", 1)[1].split()[::2]
        assert tuple(named) == phases, line
