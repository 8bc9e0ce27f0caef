"""Which launcher a job calls for, and the exact command it runs on this host."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from ..env import TrainingEnv
from . import mpi, torch_distributed
from .hosts import resolve_hosts
from .process import Command, child_environ
from .program import Program

log = logging.getLogger(__name__)

Launcher = Literal["process", "torch_distributed", "mpi"]


def choose_launcher(env: TrainingEnv) -> Launcher:
    """torch.distributed or MPI when the framework parameters ask for it and this host's
    instance group takes part in distribution; one process otherwise."""
    if env.is_distribution_host:
        if torch_distributed.is_enabled(env):
            return "torch_distributed"
        if mpi.is_enabled(env):
            return "mpi"
    return "process"


def interface_exists(name: str, sys_root: Path = Path("/sys")) -> bool:
    """Whether this machine has the network interface *name* (resourceconfig's may not exist
    outside SageMaker, and MPI/NCCL fail on an unknown interface)."""
    return (sys_root / "class/net" / name).exists()


def plan_command(
    env: TrainingEnv, program: Program, *, environ: Mapping[str, str], python: str
) -> tuple[Launcher, Command]:
    """The launcher and command that run *program* on this host.

    Multi-host jobs wait (bounded) until every host name resolves, as AWS's toolkit does.
    """
    launcher = choose_launcher(env)
    args = env.to_cmd_args()
    extra = {**env.to_env_vars(), **env.toolkit_env_vars()}
    addresses = resolve_hosts(env.hosts, environ) if len(env.hosts) > 1 else {}
    has_interface = interface_exists(env.network_interface_name)
    if not has_interface and launcher != "process":
        log.info(
            "network interface %r (resourceconfig.json) does not exist here: not pinning "
            "MPI/NCCL traffic to it",
            env.network_interface_name,
        )

    if launcher == "torch_distributed":
        master = env.master_hostname
        argv = torch_distributed.torchrun_argv(
            env,
            program,
            args,
            python=python,
            master_addr=addresses.get(master, master),
            port=torch_distributed.master_port(environ),
        )
        extra.update(torch_distributed.torchrun_environ(env, interface_exists=has_interface))
    elif launcher == "mpi":
        mpi.check_supported(env)
        has_mpi4py = importlib.util.find_spec("mpi4py") is not None
        if not has_mpi4py:
            log.warning("mpi4py is not installed: running the ranks without `python -m mpi4py`")
        exported = [*extra, "PYTHONPATH", "PYTHONUNBUFFERED"]
        exported += [name for name in mpi.CREDENTIAL_VARS if name in environ]
        argv = mpi.mpirun_argv(
            env,
            program,
            args,
            python=python,
            host_addresses={**addresses, env.current_host: "localhost"},
            export=exported,
            interface_exists=has_interface,
            mpi4py=has_mpi4py,
        )
    else:
        argv = program.argv(python, args)
    command = Command(
        argv=tuple(argv),
        cwd=program.code_dir,
        env=child_environ(environ, extra, program.code_dir),
        name=program.entry,
    )
    return launcher, command
