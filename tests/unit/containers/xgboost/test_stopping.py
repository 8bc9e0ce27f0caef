"""What a stop signal that the main thread cannot act on (a host blocked in XGBoost's
collective) turns into. The process-level behaviour (SIGTERM to a blocked host) is tested in
tests/integration/containers/xgboost/test_train_distributed.py."""

from __future__ import annotations

import signal
from pathlib import Path

import xgboost

from sagedock.containers.xgboost import callbacks as cb
from sagedock.containers.xgboost.stopping import StopGuard, blocked_outcome
from sagedock.containers.xgboost.train import _keep_saved_model
from sagedock.toolkit.outcome import SUCCESS
from sagedock.toolkit.paths import MlPaths


def test_blocked_stop_exits_128_plus_the_signal_saying_the_job_was_stopped() -> None:
    outcome = blocked_outcome(signal.SIGTERM)
    assert outcome.exit_code == 143
    assert outcome.failure is not None
    assert outcome.failure.startswith("ClientError: the job was stopped (SIGTERM)")
    assert "collective" in outcome.failure


def test_guard_does_nothing_once_the_block_is_over(tmp_path: Path) -> None:
    guard = StopGuard(MlPaths(tmp_path), wait=0)
    guard.finish()
    guard.end_process(signal.SIGTERM)  # would os._exit otherwise
    assert not (tmp_path / "output").exists()


def _booster() -> xgboost.Booster:
    dtrain = xgboost.DMatrix([[0.0], [1.0]], label=[0.0, 1.0])
    return xgboost.train({"max_depth": 1}, dtrain, num_boost_round=1)


def test_stop_before_any_saved_round_is_a_failure(tmp_path: Path) -> None:
    saver = cb.SaveModelEachRound(tmp_path)
    assert _keep_saved_model(saver, tmp_path, signal.SIGTERM) == blocked_outcome(signal.SIGTERM)


def test_stop_after_a_saved_round_succeeds_keeping_only_the_model(tmp_path: Path) -> None:
    saver = cb.SaveModelEachRound(tmp_path)
    saver.after_iteration(_booster(), 0, {})
    (tmp_path / "scratch.txt").write_text("not a model")
    assert _keep_saved_model(saver, tmp_path, signal.SIGTERM) == SUCCESS
    assert [p.name for p in tmp_path.iterdir()] == ["xgboost-model"]
