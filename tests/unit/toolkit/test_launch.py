"""Launchers: entry-point kinds, and the exact torchrun / mpirun / process commands."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from sagedock.toolkit.config import Hyperparameters, JobConfig, ResourceConfig, read_job_config
from sagedock.toolkit.env import TrainingEnv
from sagedock.toolkit.errors import PlatformError, UserError
from sagedock.toolkit.launch.hosts import resolve_host
from sagedock.toolkit.launch.mpi import check_supported, mpirun_argv, split_custom_options
from sagedock.toolkit.launch.mpi import program_args as mpi_program_args
from sagedock.toolkit.launch.plan import choose_launcher
from sagedock.toolkit.launch.process import child_environ
from sagedock.toolkit.launch.program import EntryKind, Program, classify
from sagedock.toolkit.launch.torch_distributed import master_port, torchrun_argv
from sagedock.toolkit.launch.torch_distributed import program_args as torch_program_args
from sagedock.toolkit.paths import MlPaths


def _env(tmp_path: Path, hps: dict[str, Any], hosts: list[str], current: str,
         num_gpus: int = 0) -> TrainingEnv:  # fmt: skip
    paths = MlPaths(tmp_path)
    base = read_job_config(paths)
    job = JobConfig(
        hyperparameters=Hyperparameters.from_json(
            {k: json.dumps(v) for k, v in hps.items()}, "hp.json"
        ),
        resource_config=ResourceConfig.from_json({"current_host": current, "hosts": hosts}, "rc"),
        input_data_config=MappingProxyType({}),
        channels=MappingProxyType({}),
        checkpoint=base.checkpoint,
    )
    return TrainingEnv.from_config(job, {}, paths, num_gpus=num_gpus)


@pytest.mark.parametrize(
    ("files", "entry", "kind"),
    [
        ({"train.py": ""}, "train.py", EntryKind.PYTHON_SCRIPT),
        ({"run.sh": ""}, "run.sh", EntryKind.SHELL_SCRIPT),
        ({"setup.py": "", "train.py": ""}, "train.py", EntryKind.PYTHON_PACKAGE),
        ({"pyproject.toml": "[project]\nname='x'\n"}, "train", EntryKind.PYTHON_PACKAGE),
        ({"pyproject.toml": "[tool.ruff]\n", "t.py": ""}, "t.py", EntryKind.PYTHON_SCRIPT),
        ({"trainer": ""}, "trainer", EntryKind.EXECUTABLE),
    ],
)
def test_entry_point_kinds(
    tmp_path: Path, files: dict[str, str], entry: str, kind: EntryKind
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert classify(tmp_path, entry) is kind


def test_single_process_argv_per_kind(tmp_path: Path) -> None:
    args = ["--lr", "0.1"]
    assert Program("train.py", EntryKind.PYTHON_SCRIPT, tmp_path).argv("py", args) == [
        "py", "train.py", "--lr", "0.1",
    ]  # fmt: skip
    assert Program("train.py", EntryKind.PYTHON_PACKAGE, tmp_path).argv("py", args)[:3] == [
        "py", "-m", "train",
    ]  # fmt: skip
    assert Program("run.sh", EntryKind.SHELL_SCRIPT, tmp_path).argv("py", args) == [
        "/bin/sh", "run.sh", "--lr", "0.1",
    ]  # fmt: skip


def _shell_script(code_dir: Path, text: str) -> Program:
    (code_dir / "run.sh").write_text(text)
    return Program.find(code_dir, "run.sh")


def test_a_shell_script_with_a_shebang_runs_itself_under_every_launcher(tmp_path: Path) -> None:
    program = _shell_script(tmp_path, '#!/bin/bash\nargs=("$@")\n')
    script = str(tmp_path / "run.sh")
    assert program.argv("py", ["--k", "v"]) == [script, "--k", "v"]
    assert torch_program_args(program, ["--k", "v"]) == ["--no-python", script, "--k", "v"]
    assert mpi_program_args(program, ["--k", "v"], python="py", mpi4py=True) == [
        script, "--k", "v",
    ]  # fmt: skip


def test_a_shell_script_without_a_shebang_runs_under_bin_sh_under_every_launcher(
    tmp_path: Path,
) -> None:
    program = _shell_script(tmp_path, "echo hi\n")
    assert program.argv("py", ["--k", "v"]) == ["/bin/sh", "run.sh", "--k", "v"]
    assert torch_program_args(program, []) == ["--no-python", "/bin/sh", "run.sh"]
    assert mpi_program_args(program, [], python="py", mpi4py=True) == ["/bin/sh", "run.sh"]


def test_a_shebang_script_gets_the_owners_execute_bit_and_keeps_its_other_bits(
    tmp_path: Path,
) -> None:
    program = _shell_script(tmp_path, "#!/bin/bash\n")
    program.path.chmod(0o640)
    program.make_executable()
    assert stat.S_IMODE(program.path.stat().st_mode) == 0o740


def test_a_script_run_by_bin_sh_is_left_as_it_is(tmp_path: Path) -> None:
    program = _shell_script(tmp_path, "echo hi\n")
    program.path.chmod(0o644)
    program.make_executable()
    assert stat.S_IMODE(program.path.stat().st_mode) == 0o644


def test_a_missing_entry_point_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "other.py").write_text("")
    with pytest.raises(UserError, match=r"'train.py' is not in the code directory .* other\.py"):
        Program.find(tmp_path, "train.py")


def test_launcher_follows_the_framework_parameters(tmp_path: Path) -> None:
    hosts = ["algo-1"]
    assert choose_launcher(_env(tmp_path, {}, hosts, "algo-1")) == "process"
    torch = {"sagemaker_torch_distributed_enabled": True}
    assert choose_launcher(_env(tmp_path, torch, hosts, "algo-1")) == "torch_distributed"
    ddp = {"sagemaker_pytorch_ddp_enabled": True}
    assert choose_launcher(_env(tmp_path, ddp, hosts, "algo-1")) == "torch_distributed"
    mpi = {"sagemaker_mpi_enabled": True}
    assert choose_launcher(_env(tmp_path, mpi, hosts, "algo-1")) == "mpi"
    off = {"sagemaker_mpi_enabled": False}
    assert choose_launcher(_env(tmp_path, off, hosts, "algo-1")) == "process"


def test_torchrun_command_on_the_second_of_two_hosts(tmp_path: Path) -> None:
    env = _env(tmp_path, {"sagemaker_torch_distributed_enabled": True}, ["a1", "a2"], "a2", 4)
    program = Program("train.py", EntryKind.PYTHON_SCRIPT, tmp_path)
    argv = torchrun_argv(env, program, ["--lr", "1"], python="py", master_addr="10.0.0.1")
    assert argv == [
        "py", "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "4",
        "--master_addr", "10.0.0.1", "--master_port", "7777", "--node_rank", "1",
        "train.py", "--lr", "1",
    ]  # fmt: skip


def test_torchrun_on_one_host_is_standalone_one_process_per_cpu_host(tmp_path: Path) -> None:
    env = _env(tmp_path, {}, ["a1"], "a1")
    program = Program("train.py", EntryKind.PYTHON_PACKAGE, tmp_path)
    argv = torchrun_argv(env, program, [], python="py", master_addr="x")
    assert argv[3:] == [
        "--nnodes",
        "1",
        "--nproc_per_node",
        "1",
        "--standalone",
        "--module",
        "train",
    ]


def test_master_port_is_7777_unless_overridden() -> None:
    assert master_port({}) == 7777
    assert master_port({"SAGEDOCK_MASTER_PORT": "29501"}) == 29501
    with pytest.raises(UserError, match="SAGEDOCK_MASTER_PORT must be a TCP port"):
        master_port({"SAGEDOCK_MASTER_PORT": "http"})


def test_mpirun_uses_awss_options(tmp_path: Path) -> None:
    hps = {
        "sagemaker_mpi_enabled": True,
        "sagemaker_mpi_num_of_processes_per_host": 2,
        "sagemaker_mpi_custom_mpi_options": "--NCCL_DEBUG WARN -x FOO=1",
    }
    env = _env(tmp_path, hps, ["algo-1"], "algo-1")
    program = Program("train.py", EntryKind.PYTHON_SCRIPT, tmp_path)
    argv = mpirun_argv(
        env, program, ["--e", "1"], python="py", host_addresses={"algo-1": "localhost"},
        export=["SM_HOSTS"], interface_exists=True,
    )  # fmt: skip
    assert argv[:6] == ["mpirun", "--host", "localhost:2", "-np", "2", "--allow-run-as-root"]
    text = " ".join(argv)
    for option in (
        "-mca btl_tcp_if_include eth0", "-mca oob_tcp_if_include eth0",
        "-mca plm_rsh_no_tree_spawn 1", "-bind-to none", "-map-by slot", "-mca pml ob1",
        "-mca btl ^openib", "-mca orte_abort_on_non_zero_status 1",
        "-mca btl_vader_single_copy_mechanism none", "-x NCCL_MIN_NRINGS=4",
        "-x NCCL_SOCKET_IFNAME=eth0", "-x NCCL_DEBUG=WARN", "-x FOO=1", "-x SM_HOSTS",
    ):  # fmt: skip
        assert option in text
    assert argv[-6:] == ["py", "-m", "mpi4py", "train.py", "--e", "1"]


def test_custom_mpi_options_split_off_nccl_debug() -> None:
    assert split_custom_options("--NCCL_DEBUG=TRACE -x A=1") == ("TRACE", ["-x", "A=1"])
    assert split_custom_options("") == ("INFO", [])


def test_multi_host_mpi_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    env = _env(tmp_path, {"sagemaker_mpi_enabled": True}, ["a1", "a2"], "a1")
    with pytest.raises(PlatformError, match="MPI across several hosts is not supported"):
        check_supported(env)


def test_host_mapping_wins_over_dns() -> None:
    environ = {"SAGEDOCK_HOST_ADDRESSES": json.dumps({"algo-1": "127.0.0.1"})}
    assert resolve_host("algo-1", environ) == "127.0.0.1"
    assert resolve_host("localhost", {}, timeout=5) == "127.0.0.1"


def test_bad_host_mapping_and_unresolvable_hosts_are_named() -> None:
    with pytest.raises(UserError, match="SAGEDOCK_HOST_ADDRESSES is not valid JSON"):
        resolve_host("algo-1", {"SAGEDOCK_HOST_ADDRESSES": "{nope"})
    expected = r"'no-such-host\.invalid' did not resolve within 0\.2 s"
    with pytest.raises(PlatformError, match=expected):
        resolve_host("no-such-host.invalid", {}, timeout=0.2)


def test_child_environ_is_unbuffered_with_the_code_dir_first_on_pythonpath() -> None:
    env = child_environ({"PYTHONPATH": "/lib", "A": "1"}, {"SM_X": "2"}, Path("/opt/ml/code"))
    assert env["PYTHONPATH"] == "/opt/ml/code:/lib"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["SM_X"] == "2" and env["A"] == "1"
