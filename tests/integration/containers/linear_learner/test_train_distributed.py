"""Two-host Linear Learner: two ``sagedock train`` processes, one /opt/ml tree each, a gloo
group on 127.0.0.1 (``SAGEDOCK_HOST_ADDRESSES`` maps the host names), each host reading its
own ``ShardedByS3Key`` share. The model must be as good as one host's on all the rows."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.xgboost import XGBoostJob, make_dataset, run_hosts, write_csv

from .support import final_metrics, linear_learner_job, load_scorer

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

HOSTS = ("algo-1", "algo-2")
HPS: dict[str, object] = {
    "predictor_type": "regressor",
    "epochs": 4,
    "mini_batch_size": 50,
    # one model: the hosts select on their own rows, one host on all of them
    "num_models": 1,
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(jobs: list[XGBoostJob]) -> list[subprocess.CompletedProcess[str]]:
    addresses = json.dumps({h: "127.0.0.1" for h in HOSTS})
    return run_hosts(
        jobs, SAGEDOCK_HOST_ADDRESSES=addresses, SAGEDOCK_MASTER_PORT=str(_free_port())
    )


def test_two_hosts_train_the_model_one_host_trains(tmp_path: Path) -> None:
    data = make_dataset("regression", rows=1225, cols=4)
    test = make_dataset("regression", rows=300, cols=4, seed=1)
    size = int(str(HPS["mini_batch_size"]))
    # shares of different sizes: in the last round only the first host has rows
    shares = (np.arange(625), np.arange(625, 1225))
    jobs = []
    for host, rows in zip(HOSTS, shares, strict=True):
        job = linear_learner_job(tmp_path / host, HPS, current_host=host, hosts=HOSTS)
        channel = job.add_channel("train", "text/csv", distribution="ShardedByS3Key")
        write_csv(channel / f"{host}.csv", data.x[rows], data.y[rows])
        write_csv(job.add_channel("test", "text/csv") / "test.csv", test.x, test.y)
        jobs.append(job)
    master, worker = _run(jobs)
    assert master.returncode == 0, master.stderr[-4000:]
    assert worker.returncode == 0, worker.stderr[-4000:]
    # the first host writes the model and logs the final scores
    assert (jobs[0].model_dir / "model_algo-1").is_file()
    assert not (jobs[1].model_dir / "model_algo-1").exists()
    assert "mse" in final_metrics(master.stderr, "test")
    assert not final_metrics(worker.stderr, "test")

    # One host, the same rows in the order of the rounds (a mini-batch of each host in turn)
    # and mini-batches of both hosts' size: every update is the same update.
    order = []
    first, second = shares
    for start in range(0, len(first), size):
        order += [*first[start : start + size], *second[start : start + size]]
    single = linear_learner_job(tmp_path / "single", {**HPS, "mini_batch_size": 2 * size})
    write_csv(single.add_channel("train", "text/csv") / "all.csv", data.x[order], data.y[order])
    result = single.run(timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    two_hosts, one_host = load_scorer(jobs[0]), load_scorer(single)
    np.testing.assert_allclose(two_hosts.weights, one_host.weights, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(two_hosts.bias, one_host.bias, rtol=1e-4, atol=1e-5)
    # and it is a model that learnt the signal (label = 10 + 3 * (2 x0 + x1) + noise)
    np.testing.assert_allclose(two_hosts.weights[:2, 0], [6.0, 3.0], rtol=0.1)
