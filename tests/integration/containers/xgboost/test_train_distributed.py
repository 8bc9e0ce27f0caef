"""Two-host XGBoost training: two `sagedock train` processes, one /opt/ml tree each, talking
through XGBoost's collective on 127.0.0.1 (SAGEDOCK_HOST_ADDRESSES maps the host names)."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable

import numpy as np
import pytest

from tests.fixtures.xgboost import XGBoostJob, make_dataset, write_csv

from .support import load_model, round_lines

pytestmark = pytest.mark.slow

HOSTS = ("algo-1", "algo-2")
ADDRESSES = json.dumps({h: "127.0.0.1" for h in HOSTS})


def _two_free_ports() -> int:
    """A port N with N and N + 1 free (the two tracker rounds)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports")


def _run_hosts(jobs: list[XGBoostJob], port: int) -> list[subprocess.CompletedProcess[str]]:
    extra = {"SAGEDOCK_HOST_ADDRESSES": ADDRESSES, "SAGEDOCK_XGBOOST_TRACKER_PORT": str(port)}
    processes = [job.popen(**extra) for job in jobs]
    results = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=240)
            results.append(
                subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
            )
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def test_two_hosts_train_one_model_on_both_shards(xgboost_job: Callable[..., XGBoostJob]) -> None:
    data = make_dataset("regression", rows=1200)
    left = data.x[:, 0] < 0  # each host sees only one half of the feature space
    jobs = []
    for host, rows in zip(HOSTS, (left, ~left), strict=True):
        job = xgboost_job(
            {"num_round": 20, "max_depth": 4, "eval_metric": "rmse"},
            name=host,
            current_host=host,
            hosts=HOSTS,
        )
        idx = np.flatnonzero(rows)
        train, validation = idx[: len(idx) * 3 // 4], idx[len(idx) * 3 // 4 :]
        channel = job.add_channel("train", "text/csv", distribution="ShardedByS3Key")
        write_csv(channel / f"{host}.csv", data.x[train], data.y[train])
        channel = job.add_channel("validation", "text/csv", distribution="ShardedByS3Key")
        write_csv(channel / f"{host}.csv", data.x[validation], data.y[validation])
        jobs.append(job)
    master, worker = _run_hosts(jobs, _two_free_ports())
    assert master.returncode == 0, master.stderr[-3000:]
    assert worker.returncode == 0, worker.stderr[-3000:]
    # Only the first host logs rounds and writes the model.
    assert len(round_lines(master.stdout)) == 20
    assert round_lines(worker.stdout) == []
    assert [p.name for p in jobs[0].model_dir.iterdir()] == ["xgboost-model"]
    assert list(jobs[1].model_dir.iterdir()) == []
    # The model learned both halves: it predicts the worker's half as well as the master's.
    import xgboost

    booster = load_model(jobs[0].model_dir / "xgboost-model")
    for rows in (left, ~left):
        pred = booster.predict(xgboost.DMatrix(data.x[rows]))
        assert float(np.sqrt(np.mean((pred - data.y[rows]) ** 2))) < 1.0


def test_a_host_without_data_leaves_the_group(xgboost_job: Callable[..., XGBoostJob]) -> None:
    data = make_dataset("regression", rows=300)
    jobs = []
    for host in HOSTS:
        job = xgboost_job({"num_round": 5}, name=host, current_host=host, hosts=HOSTS)
        channel = job.add_channel("train", "text/csv", distribution="ShardedByS3Key")
        if host == "algo-1":
            write_csv(channel / "all.csv", data.x, data.y)
        jobs.append(job)
    master, worker = _run_hosts(jobs, _two_free_ports())
    assert master.returncode == 0, master.stderr[-3000:]
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert "does not have training data" in worker.stderr
    assert len(round_lines(master.stdout)) == 5
    assert load_model(jobs[0].model_dir / "xgboost-model").num_boosted_rounds() == 5
