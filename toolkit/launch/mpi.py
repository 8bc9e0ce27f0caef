"""MPI: ``mpirun`` with the options AWS's training toolkit uses.

Chosen by the ``sagemaker_mpi_enabled`` framework parameter. Processes per host come from
``sagemaker_mpi_num_of_processes_per_host`` (else one per GPU, Neuron core, or one), the total
from ``sagemaker_mpi_num_processes`` (else per-host x hosts), extra mpirun options from
``sagemaker_mpi_custom_mpi_options``. Python programs run as ``python -m mpi4py ...`` so that an
uncaught exception in one rank aborts the whole job; without mpi4py installed they run as plain
``python ...`` (said in the log).

Only single-host jobs are supported: across hosts mpirun needs sshd and a worker protocol that
sagedock does not provide yet (:func:`check_supported` says so).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from ..env import TrainingEnv
from ..errors import PlatformError
from .program import EntryKind, Program
from .torch_distributed import is_true

ENABLE_PARAM = "sagemaker_mpi_enabled"
NUM_PROCESSES_PARAM = "sagemaker_mpi_num_processes"
CUSTOM_OPTIONS_PARAM = "sagemaker_mpi_custom_mpi_options"
#: Credentials AWS's toolkit exports to every rank when they are set.
CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def is_enabled(env: TrainingEnv) -> bool:
    return is_true(env.framework_params.get(ENABLE_PARAM))


def check_supported(env: TrainingEnv) -> None:
    """:raises PlatformError: for multi-host MPI jobs, which sagedock cannot run yet."""
    if len(env.distribution_hosts or env.hosts) > 1:
        raise PlatformError(
            "MPI across several hosts is not supported by sagedock yet (it needs sshd on every "
            "host); run MPI on one host, or use torch.distributed"
        )


def split_custom_options(text: str) -> tuple[str, list[str]]:
    """``sagemaker_mpi_custom_mpi_options`` -> (NCCL_DEBUG value, the other options)."""
    nccl_debug = "INFO"
    rest: list[str] = []
    words = shlex.split(text)
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--NCCL_DEBUG" and index + 1 < len(words):
            nccl_debug = words[index + 1]
            index += 2
            continue
        if word.startswith("--NCCL_DEBUG="):
            nccl_debug = word.split("=", 1)[1]
        else:
            rest.append(word)
        index += 1
    return nccl_debug, rest


def program_args(program: Program, args: list[str], *, python: str, mpi4py: bool) -> list[str]:
    """The part of the mpirun command line that runs the user's program in each rank."""
    runner = [python, "-m", "mpi4py"] if mpi4py else [python]
    if program.kind is EntryKind.PYTHON_SCRIPT:
        return [*runner, program.entry, *args]
    if program.kind is EntryKind.PYTHON_PACKAGE:
        return [*runner, "-m", program.module, *args]
    return [*program.command_argv(), *args]


def mpirun_argv(
    env: TrainingEnv,
    program: Program,
    args: list[str],
    *,
    python: str,
    host_addresses: dict[str, str],
    export: Iterable[str],
    interface_exists: bool,
    mpi4py: bool = True,
) -> list[str]:
    """The mpirun command (run on the master host).

    *host_addresses* maps each host to what mpirun should call it (``localhost`` for this
    one); *export* names the variables passed to every rank with ``-x``.
    """
    hosts = env.distribution_hosts or list(env.hosts)
    per_host = env.processes_per_host()
    names = [host_addresses.get(h, h) for h in hosts]
    host_list = names if per_host == 1 else [f"{name}:{per_host}" for name in names]
    total = env.framework_params.get(NUM_PROCESSES_PARAM) or per_host * len(hosts)
    nccl_debug, custom = split_custom_options(
        str(env.framework_params.get(CUSTOM_OPTIONS_PARAM) or "")
    )
    interface = env.network_interface_name
    argv = ["mpirun", "--host", ",".join(host_list), "-np", str(total)]
    argv += ["--allow-run-as-root", "--display-map", "--tag-output"]
    if interface_exists:
        argv += ["-mca", "btl_tcp_if_include", interface, "-mca", "oob_tcp_if_include", interface]
    argv += ["-mca", "plm_rsh_no_tree_spawn", "1", "-bind-to", "none", "-map-by", "slot"]
    argv += ["-mca", "pml", "ob1", "-mca", "btl", "^openib"]
    argv += ["-mca", "orte_abort_on_non_zero_status", "1"]
    argv += ["-mca", "btl_vader_single_copy_mechanism", "none"]
    argv += ["-x", "NCCL_MIN_NRINGS=4"]
    if interface_exists:
        argv += ["-x", f"NCCL_SOCKET_IFNAME={interface}"]
    argv += ["-x", f"NCCL_DEBUG={nccl_debug}", "-x", "LD_LIBRARY_PATH", "-x", "PATH"]
    argv += custom
    for name in export:
        argv += ["-x", name]
    return argv + program_args(program, args, python=python, mpi4py=mpi4py)
