"""Two-host XGBoost training: two `sagedock train` processes, one /opt/ml tree each, talking
through XGBoost's collective on 127.0.0.1 (SAGEDOCK_HOST_ADDRESSES maps the host names)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Callable, Iterable

import numpy as np
import pytest

from tests.fixtures.xgboost import XGBoostJob, make_dataset, run_hosts, write_csv

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
    return run_hosts(
        jobs, SAGEDOCK_HOST_ADDRESSES=ADDRESSES, SAGEDOCK_XGBOOST_TRACKER_PORT=str(port)
    )


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


def test_a_host_without_validation_data_leaves_the_group(
    xgboost_job: Callable[..., XGBoostJob],
) -> None:
    # Both hosts have train data; algo-2's share of the validation channel is empty. SageMaker
    # leaves such a host out (its evaluation would not match the others'): algo-1 trains alone.
    data = make_dataset("regression", rows=600)
    jobs = []
    for host, rows in zip(HOSTS, (slice(0, 300), slice(300, 600)), strict=True):
        job = xgboost_job(
            {"num_round": 5, "eval_metric": "rmse"}, name=host, current_host=host, hosts=HOSTS
        )
        channel = job.add_channel("train", "text/csv", distribution="ShardedByS3Key")
        write_csv(channel / f"{host}.csv", data.x[rows][:200], data.y[rows][:200])
        channel = job.add_channel("validation", "text/csv", distribution="ShardedByS3Key")
        if host == "algo-1":
            write_csv(channel / f"{host}.csv", data.x[rows][200:], data.y[rows][200:])
        jobs.append(job)
    master, worker = _run_hosts(jobs, _two_free_ports())
    assert master.returncode == 0, master.stderr[-3000:]
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert "Host algo-2 does not have validation data" in worker.stderr
    assert "Host algo-2 has no data and leaves the training group" in worker.stderr
    assert list(jobs[1].model_dir.iterdir()) == []
    rounds = round_lines(master.stdout)
    assert [r for r, _ in rounds] == [0, 1, 2, 3, 4]
    assert "validation-rmse" in rounds[-1][1]
    # algo-1 trained on its own rows only: the model is XGBoost's for that data alone.
    import xgboost

    own = xgboost.DMatrix(data.x[:200], label=data.y[:200])
    alone = xgboost.train({"eval_metric": "rmse"}, own, 5)
    booster = load_model(jobs[0].model_dir / "xgboost-model")
    probe = xgboost.DMatrix(data.x[300:])
    np.testing.assert_allclose(booster.predict(probe), alone.predict(probe), rtol=1e-5)


# -- stop signals while a host waits in the collective ----------------------------------------
#
# Python runs a signal handler only when the main thread is back in Python code; a host waiting
# for the tracker or for a slow host sits in one native XGBoost call for up to the bootstrap
# timeout (900 s). SageMaker's StopTrainingJob sends SIGTERM and SIGKILLs two minutes later: the
# host must stop on the SIGTERM, with a failure file saying why.

STOPPED = "the job was stopped (SIGTERM) before it finished"


def _wait_for_line(stream: Iterable[str], prefix: str) -> None:
    for line in stream:
        if prefix in line:
            return
    raise AssertionError(f"the process ended before printing {prefix!r}")


def _host_job(
    xgboost_job: Callable[..., XGBoostJob], host: str, **hyperparameters: object
) -> XGBoostJob:
    data = make_dataset("regression", rows=200, seed=HOSTS.index(host))
    job = xgboost_job(
        {"num_round": 5, **hyperparameters}, name=host, current_host=host, hosts=HOSTS
    )
    channel = job.add_channel("train", "text/csv", distribution="ShardedByS3Key")
    write_csv(channel / f"{host}.csv", data.x, data.y)
    return job


def _stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM *process* and wait for it (killed after 60 s: the test then fails); its stderr."""
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError("the host ignored SIGTERM while waiting in the collective") from None
    return stderr


def test_sigterm_stops_the_master_waiting_for_a_host_that_never_joins(
    xgboost_job: Callable[..., XGBoostJob],
) -> None:
    # Only algo-1 of two hosts starts: it runs the tracker and waits in it for algo-2.
    job = _host_job(xgboost_job, "algo-1")
    process = job.popen(
        SAGEDOCK_HOST_ADDRESSES=ADDRESSES, SAGEDOCK_XGBOOST_TRACKER_PORT=str(_two_free_ports())
    )
    assert process.stderr is not None
    _wait_for_line(process.stderr, "joining the XGBoost collective")
    stderr = _stop(process)
    assert process.returncode == 143, stderr[-3000:]
    assert job.failure is not None and STOPPED in job.failure
    assert list(job.model_dir.iterdir()) == []


def test_sigterm_stops_a_worker_waiting_for_a_tracker_that_does_not_answer(
    xgboost_job: Callable[..., XGBoostJob],
) -> None:
    # algo-1's tracker accepts algo-2's connection and never answers (a master still busy).
    job = _host_job(xgboost_job, "algo-2")
    port = _two_free_ports()
    with socket.create_server(("127.0.0.1", port)) as tracker:
        process = job.popen(
            SAGEDOCK_HOST_ADDRESSES=ADDRESSES, SAGEDOCK_XGBOOST_TRACKER_PORT=str(port)
        )
        tracker.settimeout(120)
        try:
            connection, _ = tracker.accept()
        except TimeoutError:
            process.kill()
            process.communicate()
            raise
        with connection:
            stderr = _stop(process)
    assert process.returncode == 143, stderr[-3000:]
    assert job.failure is not None and STOPPED in job.failure
    assert "Exception ignored" not in stderr


def _stall_worker_mid_training(
    jobs: list[XGBoostJob],
) -> tuple[subprocess.Popen[str], subprocess.Popen[str]]:
    """Both hosts train; once the master has logged round 5, the worker is frozen (SIGSTOP),
    so the master's next allreduce waits for it."""
    extra = {
        "SAGEDOCK_HOST_ADDRESSES": ADDRESSES,
        "SAGEDOCK_XGBOOST_TRACKER_PORT": str(_two_free_ports()),
    }
    master, worker = (job.popen(**extra) for job in jobs)
    assert master.stdout is not None
    _wait_for_line(master.stdout, "[5]")
    worker.send_signal(signal.SIGSTOP)
    return master, worker


def _end(process: subprocess.Popen[str]) -> None:
    process.kill()  # SIGKILL ends a stopped process too
    process.communicate(timeout=60)


def test_sigterm_stops_a_host_waiting_for_a_frozen_host_mid_training(
    xgboost_job: Callable[..., XGBoostJob],
) -> None:
    jobs = [_host_job(xgboost_job, host, num_round=100000, max_depth=2) for host in HOSTS]
    master, worker = _stall_worker_mid_training(jobs)
    try:
        stderr = _stop(master)
    finally:
        _end(worker)
    assert master.returncode == 143, stderr[-3000:]
    assert jobs[0].failure is not None and STOPPED in jobs[0].failure
    assert list(jobs[0].model_dir.iterdir()) == []


def test_sigterm_mid_training_keeps_the_saved_model_with_save_model_on_termination(
    xgboost_job: Callable[..., XGBoostJob],
) -> None:
    jobs = [
        _host_job(
            xgboost_job, host, num_round=100000, max_depth=2, save_model_on_termination="true"
        )
        for host in HOSTS
    ]
    (jobs[0].model_dir).mkdir(parents=True, exist_ok=True)
    (jobs[0].model_dir / "scratch.txt").write_text("not a model")
    master, worker = _stall_worker_mid_training(jobs)
    try:
        stderr = _stop(master)
    finally:
        _end(worker)
    # As on one host: the job ends successfully with the model of the last finished round.
    assert master.returncode == 0, stderr[-3000:]
    assert jobs[0].failure is None
    assert sorted(p.name for p in jobs[0].model_dir.iterdir()) == ["xgboost-model"]
    assert load_model(jobs[0].model_dir / "xgboost-model").num_boosted_rounds() >= 5
