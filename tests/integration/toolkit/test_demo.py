"""`sagedock demo`: the built-in XGBoost trained, served and batch-transformed locally."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .jobs import clean_environ


@pytest.mark.slow
def test_demo_trains_serves_and_transforms_xgboost_and_prints_a_summary() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sagedock.toolkit", "demo"],
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "status: Completed" in out
    assert re.search(r"validation:auc\s+0\.\d{4}\s+\(FinalMetricDataList\)", out)
    assert "POST /invocations text/csv -> text/csv" in out
    assert '{"predictions":[{"score":' in out
    assert re.search(r"row-0000,0\.\d+", out)  # the id joined back onto its prediction
    # 400 short rows fit in one 1 MB mini-batch: the summary says what was really sent.
    assert "400 records in 1 request(s): MultiRecord" in out
    accuracy = float(re.search(r"batch accuracy\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    assert accuracy > 0.6
    assert re.search(r"\d+\.\d\d s  total", out)
