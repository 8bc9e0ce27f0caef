"""Distributed launchers for real: a two-host torch.distributed all-reduce on CPU (gloo), run as
two `sagedock train` processes on 127.0.0.1, and MPI with two ranks on one host."""

from __future__ import annotations

import json
import socket
import subprocess
import textwrap
from pathlib import Path

import pytest

from .jobs import make_job

ALL_REDUCE = textwrap.dedent(
    """\
    import json, os
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    value = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(value)
    result = {
        "rank": dist.get_rank(),
        "world_size": dist.get_world_size(),
        "sum": value.item(),
        "host": os.environ["SM_CURRENT_HOST"],
    }
    os.makedirs(os.environ["SM_OUTPUT_DATA_DIR"], exist_ok=True)
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "result.json"), "w") as f:
        json.dump(result, f)
    dist.destroy_process_group()
    """
)

MPI_ALL_REDUCE = textwrap.dedent(
    """\
    import json, os, sys
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    total = comm.allreduce(comm.Get_rank() + 1)
    out = os.environ["SM_OUTPUT_DATA_DIR"]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"rank-{comm.Get_rank()}.json"), "w") as f:
        json.dump({"size": comm.Get_size(), "sum": total, "argv": sys.argv[1:]}, f)
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_two_host_torch_distributed_all_reduce_on_cpu(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    hosts = ["algo-1", "algo-2"]
    env = {
        "SAGEDOCK_HOST_ADDRESSES": json.dumps({h: "127.0.0.1" for h in hosts}),
        "SAGEDOCK_MASTER_PORT": str(_free_port()),
    }
    jobs = [
        make_job(
            tmp_path / host,
            code={"train.py": ALL_REDUCE},
            hyperparameters={"sagemaker_torch_distributed_enabled": True},
            resource_config={"current_host": host, "hosts": hosts},
        )
        for host in hosts
    ]
    procs = [job.popen(env=env) for job in jobs]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=240))
    finally:
        for proc in procs:
            proc.kill()
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-2000:] + err[-4000:]
    results = [json.loads((job.base / "output/data/result.json").read_text()) for job in jobs]
    assert sorted(r["rank"] for r in results) == [0, 1]
    assert [r["world_size"] for r in results] == [2, 2]
    assert [r["sum"] for r in results] == [3.0, 3.0]
    assert [r["host"] for r in results] == hosts
    assert all(job.succeeded for job in jobs)


@pytest.mark.slow
def test_mpi_runs_two_ranks_on_one_host(tmp_path: Path) -> None:
    pytest.importorskip("mpi4py")
    if subprocess.run(["which", "mpirun"], capture_output=True).returncode != 0:
        pytest.skip("mpirun (openmpi-bin) is not installed")
    job = make_job(
        tmp_path / "ml",
        code={"train.py": MPI_ALL_REDUCE},
        hyperparameters={
            "sagemaker_mpi_enabled": True,
            "sagemaker_mpi_num_of_processes_per_host": 2,
            "epochs": 2,
        },
    )
    result = job.run(timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    ranks = [json.loads((job.base / f"output/data/rank-{r}.json").read_text()) for r in range(2)]
    assert ranks == [{"size": 2, "sum": 3, "argv": ["--epochs", "2"]}] * 2
    assert "mpirun --host localhost:2 -np 2 --allow-run-as-root" in result.stderr


@pytest.mark.slow
def test_a_failing_mpi_rank_fails_the_job(tmp_path: Path) -> None:
    pytest.importorskip("mpi4py")
    if subprocess.run(["which", "mpirun"], capture_output=True).returncode != 0:
        pytest.skip("mpirun (openmpi-bin) is not installed")
    script = (
        "from mpi4py import MPI\n"
        "if MPI.COMM_WORLD.Get_rank() == 1:\n"
        "    raise ValueError('rank 1 broke')\n"
    )
    job = make_job(
        tmp_path / "ml",
        code={"train.py": script},
        hyperparameters={
            "sagemaker_mpi_enabled": True,
            "sagemaker_mpi_num_of_processes_per_host": 2,
        },
    )
    result = job.run(timeout=240)
    assert result.returncode != 0
    assert job.failure is not None
    assert "rank 1 broke" in job.failure[:1024]


def test_multi_host_mpi_fails_with_an_algorithm_error_not_blaming_the_user(tmp_path: Path) -> None:
    # A limitation of ours, not the user's input: SageMaker's failure reasons call that an
    # AlgorithmError (the PlatformError behind it is not a prefix SageMaker uses).
    job = make_job(
        tmp_path / "ml",
        code={"train.py": "raise SystemExit('must not run')\n"},
        hyperparameters={"sagemaker_mpi_enabled": True},
        resource_config={"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]},
    )
    mapping = json.dumps({"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"})
    result = job.run(env={"SAGEDOCK_HOST_ADDRESSES": mapping})
    assert result.returncode == 1
    assert job.failure is not None
    assert job.failure.startswith("AlgorithmError: MPI across several hosts is not supported")
