"""bench/linear_learner's training part runs on small data: every row of its table (ours, one
and 32 scikit-learn fits, the job end to end) and both ratio lines are printed, the job
succeeds. No assertion on any timing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_the_training_part_prints_every_row_and_both_ratios(repo_root: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(repo_root / "bench" / "linear_learner"),
            *("--only", "train", "--rows", "5000", "--epochs", "1", "--wait-quiet", "0"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=repo_root,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    out = done.stdout
    for row in ("ours-32 cpu", "sklearn-1", "sklearn-32", "job (recordio-protobuf file)"):
        [line] = [line for line in out.splitlines() if line.startswith(row)]
        assert float(line[len(row) :].split()[0]) > 0, line
    # the job's own #throughput_metric was found (nan when the job failed or printed none)
    job = next(line for line in out.splitlines() if line.startswith("job "))
    assert "nan" not in job, job
    assert re.search(r"ratio: ours-32 / sklearn-1 time = \S+ \(goal <= 2: (met|NOT met)\)", out)
    assert re.search(r"ratio: sklearn-32 / ours-32 time = \S+ \(goal >= 10: (met|NOT met)\)", out)
