"""bench/serving runs end to end (``--quick``): every stack starts, answers, is measured and
stops cleanly, and the ratio lines are printed. No assertion on any timing."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

NEEDED_TOOLS = ("wrk", "nginx", "taskset")


def _missing() -> list[str]:
    missing = [t for t in NEEDED_TOOLS if not (shutil.which(t) or Path(f"/usr/sbin/{t}").exists())]
    if importlib.util.find_spec("gevent") is None:
        missing.append("gevent")
    return missing


@pytest.mark.skipif(bool(_missing()), reason=f"bench/serving needs {_missing()}")
def test_quick_run_completes_and_prints_the_ratios(repo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(repo_root / "bench" / "serving"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=420,
        cwd=repo_root,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    ratios = [line for line in done.stdout.splitlines() if line.startswith("ratio: ")]
    for payload in ("1 row", "100 rows"):
        for what in ("throughput ours/classic at c=32", "p99 ours at c=32", "added latency ours"):
            assert any(what in line and payload in line for line in ratios), (what, payload)
    for stack in ("ours", "classic", "bare"):
        assert any(f"first /ping 200 minus model load, {stack}" in line for line in ratios)
    # Every verdict line says met or NOT met; every stack stopped without leftovers.
    verdicts = [line for line in ratios if "target " in line and "no target" not in line]
    assert len(verdicts) == 7
    assert all(re.search(r"-> (met|NOT met)$", line) for line in verdicts)
    assert "stop problems" not in done.stdout
    assert out.is_file()
