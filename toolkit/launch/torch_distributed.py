"""torch.distributed: ``python -m torch.distributed.run`` (torchrun) on every host.

Chosen by the ``sagemaker_torch_distributed_enabled`` or ``sagemaker_pytorch_ddp_enabled``
framework parameter (what the SageMaker SDK sets for ``distribution={"torch_distributed": ...}``
and ``{"pytorch_ddp": ...}``). Each host runs one torchrun agent with ``--nnodes`` = hosts,
``--node_rank`` = this host's index, ``--master_addr`` = the first host's address and
``--master_port`` 7777 (``SAGEDOCK_MASTER_PORT`` overrides it), and ``--nproc_per_node`` = GPUs,
else Neuron cores, else 1, unless ``sagemaker_mpi_num_of_processes_per_host`` says otherwise.
A one-host job runs ``--standalone`` (torchrun picks a free port).

Unlike AWS's toolkit, packages, shell scripts and executables are accepted too (torchrun's
``--module`` and ``--no-python``).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..env import TrainingEnv
from ..errors import UserError
from .program import EntryKind, Program

ENABLE_PARAMS = ("sagemaker_torch_distributed_enabled", "sagemaker_pytorch_ddp_enabled")
MASTER_PORT = 7777
MASTER_PORT_ENV = "SAGEDOCK_MASTER_PORT"


def is_enabled(env: TrainingEnv) -> bool:
    return any(is_true(env.framework_params.get(name)) for name in ENABLE_PARAMS)


def is_true(value: object) -> bool:
    """A framework flag as the SDK writes it: ``true`` (JSON), ``"True"``, ``1``."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return value is True or (isinstance(value, int) and value == 1)


def master_port(environ: Mapping[str, str]) -> int:
    """``SAGEDOCK_MASTER_PORT``, else 7777 (AWS's port)."""
    text = environ.get(MASTER_PORT_ENV, "").strip()
    if not text:
        return MASTER_PORT
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UserError(f"{MASTER_PORT_ENV} must be a TCP port number, not {text!r}")
    return int(text)


def program_args(program: Program, args: list[str]) -> list[str]:
    """The part of the torchrun command line that names the user's program."""
    if program.kind is EntryKind.PYTHON_SCRIPT:
        return [program.entry, *args]
    if program.kind is EntryKind.PYTHON_PACKAGE:
        return ["--module", program.module, *args]
    return ["--no-python", *program.command_argv(), *args]


def torchrun_argv(
    env: TrainingEnv,
    program: Program,
    args: list[str],
    *,
    python: str,
    master_addr: str,
    port: int = MASTER_PORT,
) -> list[str]:
    """The torchrun command for this host."""
    hosts = env.distribution_hosts or list(env.hosts)
    argv = [
        python,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(len(hosts)),
        "--nproc_per_node",
        str(env.processes_per_host()),
    ]
    if len(hosts) > 1:
        argv += [
            "--master_addr",
            master_addr,
            "--master_port",
            str(port),
            "--node_rank",
            str(hosts.index(env.current_host)),
        ]
    else:
        argv.append("--standalone")
    return argv + program_args(program, args)


def torchrun_environ(env: TrainingEnv, *, interface_exists: bool) -> dict[str, str]:
    """Variables AWS's toolkit sets for torchrun jobs (NCCL over the job's interface)."""
    extra = {"NCCL_PROTO": "simple"}
    if interface_exists:
        extra["NCCL_SOCKET_IFNAME"] = env.network_interface_name
    return extra
