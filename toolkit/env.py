"""``TrainingEnv``: the training job as one frozen snapshot, and every ``SM_*`` variable.

:meth:`TrainingEnv.load` reads ``input/config/*.json`` once, takes what it needs from the
environment and probes the hardware cheaply (no subprocess, no network, no ``os.environ``
writes). :meth:`TrainingEnv.to_env_vars` gives the user script the same ``SM_*`` variables,
formatted the same way, as AWS's training toolkit; :meth:`TrainingEnv.to_training_env` is the
``SM_TRAINING_ENV`` document with the same keys.

Where AWS's toolkit derives a value by accident rather than design, this module says so next
to the value (search for "AWS:").
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .argv import to_cmd_args
from .channels import ChannelSpec
from .config import CheckpointConfig, JobConfig, ResourceConfig, read_job_config
from .encoding import env_value
from .paths import MlPaths

# -- names the platform and the SageMaker SDK use ------------------------------------------------
PROGRAM_ENV = "SAGEMAKER_PROGRAM"
SUBMIT_DIR_ENV = "SAGEMAKER_SUBMIT_DIRECTORY"
LOG_LEVEL_ENV = "SAGEMAKER_CONTAINER_LOG_LEVEL"
TRAINING_MODULE_ENV = "SAGEMAKER_TRAINING_MODULE"
JOB_NAME_ENV = "TRAINING_JOB_NAME"
MODEL_PARALLEL_ENV = "SM_HP_MP_PARAMETERS"

PROGRAM_PARAM = "sagemaker_program"
SUBMIT_DIR_PARAM = "sagemaker_submit_directory"
LOG_LEVEL_PARAM = "sagemaker_container_log_level"
JOB_NAME_PARAM = "sagemaker_job_name"
REGION_PARAM = "sagemaker_region"
DISTRIBUTION_GROUPS_PARAM = "sagemaker_distribution_instance_groups"

FRAMEWORK_PREFIX = "sagemaker_"
#: Hyperparameters the SDK sets for the toolkit itself: removed from the user's hyperparameters
#: and, unlike other ``sagemaker_*`` keys, not exported in ``SM_FRAMEWORK_PARAMS`` either.
TOOLKIT_PARAMS = frozenset(
    {
        PROGRAM_PARAM,
        SUBMIT_DIR_PARAM,
        "sagemaker_enable_cloudwatch_metrics",
        REGION_PARAM,
        LOG_LEVEL_PARAM,
        JOB_NAME_PARAM,
        "default_user_module_name",
        "_tuning_objective_metric",
        "sagemaker_s3_output",
    }
)
#: Framework parameters that switch on a distributed launcher (they put the current instance
#: group into the distribution groups).
DISTRIBUTION_FLAGS = (
    "sagemaker_mpi_enabled",
    "sagemaker_parameter_server_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
    "sagemaker_torch_distributed_enabled",
)


@dataclass(frozen=True)
class TrainingEnv:
    """Everything a training run knows about its job, read once.

    Build it with :meth:`load` (files + environment) or :meth:`from_config` (already parsed
    config, for tests and platforms). Mappings are read-only.
    """

    paths: MlPaths
    hyperparameters: Mapping[str, Any]
    """User hyperparameters, JSON-decoded value by value, without ``sagemaker_*`` keys."""
    raw_hyperparameters: Mapping[str, str]
    """Every key of ``hyperparameters.json`` with its value as written."""
    framework_params: Mapping[str, Any]
    """The ``sagemaker_*`` keys (and the SDK's other toolkit keys), decoded."""
    channels: Mapping[str, ChannelSpec]
    resources: ResourceConfig
    input_data_config: Mapping[str, Any]
    checkpoint: CheckpointConfig
    num_cpus: int
    num_gpus: int
    num_neurons: int
    job_name: str | None
    """``TRAINING_JOB_NAME`` (set by the platform), else ``None``."""
    user_entry_point: str | None
    """``SAGEMAKER_PROGRAM``, else the ``sagemaker_program`` hyperparameter, else ``None``."""
    module_dir: str
    """Where the code comes from: ``sagemaker_submit_directory`` (a path or URI) or the code dir."""
    framework_module: str | None
    """``SAGEMAKER_TRAINING_MODULE`` (``pkg.module:function``), else ``None``."""
    log_level: int
    region: str
    is_modelparallel_enabled: bool | None
    """``None`` when ``SM_HP_MP_PARAMETERS`` is unset or empty, else whether it is not ``{}``."""
    is_smddprun_installed: bool
    is_smddpmprun_installed: bool

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, paths: MlPaths | None = None
    ) -> TrainingEnv:
        """Read the job under *paths* (default: from ``SAGEMAKER_BASE_DIR`` in *environ*).

        *environ* defaults to ``os.environ``, read at call time and never written.

        :raises UserError: a config file is malformed; the message names file and position.
        """
        env = os.environ if environ is None else environ
        paths = paths or MlPaths.from_env(env)
        job = read_job_config(paths)
        return cls.from_config(
            job,
            env,
            paths,
            num_cpus=os.cpu_count() or 1,
            num_gpus=count_gpus(env),
            num_neurons=count_neurons(env, job.resource_config.current_instance_type),
        )

    @classmethod
    def from_config(
        cls,
        job: JobConfig,
        environ: Mapping[str, str],
        paths: MlPaths,
        *,
        num_cpus: int = 1,
        num_gpus: int = 0,
        num_neurons: int = 0,
    ) -> TrainingEnv:
        """A TrainingEnv from parsed config and an environment; pure."""
        decoded = job.hyperparameters.decoded
        framework = {k: v for k, v in decoded.items() if _is_framework_key(k)}
        user = {k: v for k, v in decoded.items() if not _is_framework_key(k)}
        program = environ.get(PROGRAM_ENV) or _optional_str(framework.get(PROGRAM_PARAM))
        search_path = environ.get("PATH", os.defpath)
        mp_parameters = environ.get(MODEL_PARALLEL_ENV)
        return cls(
            paths=paths,
            hyperparameters=MappingProxyType(user),
            raw_hyperparameters=job.hyperparameters.raw,
            framework_params=MappingProxyType(framework),
            channels=job.channels,
            resources=job.resource_config,
            input_data_config=job.input_data_config,
            checkpoint=job.checkpoint,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            num_neurons=num_neurons,
            job_name=environ.get(JOB_NAME_ENV) or None,
            user_entry_point=program,
            # AWS: reads SAGEMAKER_SUBMIT_DIRECTORY and SAGEMAKER_CONTAINER_LOG_LEVEL, then always
            # overwrites them with the hyperparameter or the default; we let them count.
            module_dir=(
                _optional_str(framework.get(SUBMIT_DIR_PARAM))
                or environ.get(SUBMIT_DIR_ENV)
                or str(paths.code_dir)
            ),
            framework_module=environ.get(TRAINING_MODULE_ENV) or None,
            log_level=_log_level(framework.get(LOG_LEVEL_PARAM, environ.get(LOG_LEVEL_ENV))),
            region=(
                _optional_str(framework.get(REGION_PARAM))
                or environ.get("AWS_REGION")
                or environ.get("AWS_DEFAULT_REGION")
                or ""
            ),
            # AWS's toolkit gives null (not false) when the variable is unset: scripts that
            # read SM_TRAINING_ENV see the same value in both.
            is_modelparallel_enabled=mp_parameters != "{}" if mp_parameters else None,
            is_smddprun_installed=shutil.which("smddprun", path=search_path) is not None,
            is_smddpmprun_installed=shutil.which("smddpmprun", path=search_path) is not None,
        )

    # -- the job's shape -------------------------------------------------------------------
    @property
    def current_host(self) -> str:
        return self.resources.current_host

    @property
    def hosts(self) -> tuple[str, ...]:
        return self.resources.hosts

    @property
    def network_interface_name(self) -> str:
        return self.resources.network_interface_name

    @property
    def current_instance_type(self) -> str:
        return self.resources.current_instance_type

    @property
    def current_instance_group(self) -> str:
        return self.resources.current_group_name

    @property
    def instance_groups(self) -> list[str]:
        """Names of the instance groups (empty when resourceconfig.json lists none)."""
        return [group.name for group in self.resources.instance_groups]

    @property
    def instance_groups_dict(self) -> dict[str, dict[str, Any]]:
        """Each instance group as resourceconfig.json gives it, by name."""
        groups = self.resources.raw.get("instance_groups") or []
        return {group["instance_group_name"]: group for group in groups}

    @property
    def current_instance_group_hosts(self) -> list[str]:
        for group in self.resources.instance_groups:
            if group.name == self.current_instance_group:
                return list(group.hosts)
        return []

    @property
    def is_hetero(self) -> bool:
        return len(self.resources.instance_groups) > 1

    @property
    def distribution_instance_groups(self) -> list[str]:
        """Instance groups that run the distributed launcher."""
        named = self.framework_params.get(DISTRIBUTION_GROUPS_PARAM)
        if named is not None:
            return list(named) if isinstance(named, list | tuple) else [str(named)]
        if any(self.framework_params.get(flag, False) for flag in DISTRIBUTION_FLAGS):
            return [self.current_instance_group]
        return []

    @property
    def distribution_hosts(self) -> list[str]:
        """Hosts of the distribution groups (all hosts when there are no instance groups)."""
        if not self.resources.instance_groups:
            return list(self.hosts)
        wanted = self.distribution_instance_groups
        return [h for g in self.resources.instance_groups if g.name in wanted for h in g.hosts]

    @property
    def master_hostname(self) -> str:
        """The first distribution host, else the first host."""
        return (self.distribution_hosts or list(self.hosts))[0]

    @property
    def is_master(self) -> bool:
        return self.current_host == self.master_hostname

    @property
    def is_distribution_host(self) -> bool:
        """Whether this host's instance group is one the distributed launcher runs on."""
        return self.current_instance_group in self.distribution_instance_groups

    @property
    def topology(self) -> list[Any]:
        return list(self.resources.topology)

    @property
    def resource_config(self) -> Mapping[str, Any]:
        """``resourceconfig.json`` as read (every key)."""
        return self.resources.raw

    # -- paths -----------------------------------------------------------------------------
    @property
    def model_dir(self) -> Path:
        return self.paths.model_dir

    @property
    def output_data_dir(self) -> Path:
        return self.paths.output_data_dir

    @property
    def checkpoint_dir(self) -> Path:
        """``LocalPath`` of checkpointconfig.json, else ``checkpoints/`` under the base dir."""
        return self.checkpoint.local_path

    @property
    def channel_input_dirs(self) -> dict[str, Path]:
        return {name: self.paths.channel_dir(name) for name in self.input_data_config}

    # -- the user program ------------------------------------------------------------------
    @property
    def module_name(self) -> str | None:
        """The entry point without ``.py`` (``None`` without one; AWS: the string "None")."""
        program = self.user_entry_point
        if program is None:
            return None
        return program[:-3] if program.endswith(".py") else program

    @property
    def additional_framework_params(self) -> dict[str, Any]:
        """``sagemaker_*`` parameters other than the toolkit's own (``SM_FRAMEWORK_PARAMS``)."""
        return {k: v for k, v in self.framework_params.items() if k not in TOOLKIT_PARAMS}

    def processes_per_host(self) -> int:
        """``sagemaker_mpi_num_of_processes_per_host``, else one per GPU, Neuron core or host."""
        given = self.framework_params.get("sagemaker_mpi_num_of_processes_per_host")
        if given is not None:
            return int(given)
        return self.num_gpus or self.num_neurons or 1

    # -- what the user script is given -----------------------------------------------------
    def to_cmd_args(self) -> list[str]:
        """The hyperparameters as the script's argv (see :mod:`sagedock.toolkit.argv`)."""
        return to_cmd_args(self.hyperparameters)

    def to_training_env(self) -> dict[str, Any]:
        """The ``SM_TRAINING_ENV`` document: AWS's keys, JSON-ready values."""
        return {
            "additional_framework_parameters": self.additional_framework_params,
            "channel_input_dirs": {k: str(v) for k, v in self.channel_input_dirs.items()},
            "current_host": self.current_host,
            "current_instance_group": self.current_instance_group,
            "current_instance_group_hosts": self.current_instance_group_hosts,
            "current_instance_type": self.current_instance_type,
            "distribution_hosts": self.distribution_hosts,
            "distribution_instance_groups": self.distribution_instance_groups,
            "framework_module": self.framework_module,
            "hosts": list(self.hosts),
            "hyperparameters": dict(self.hyperparameters),
            "input_config_dir": str(self.paths.input_config_dir),
            "input_data_config": dict(self.input_data_config),
            "input_dir": str(self.paths.input_dir),
            "instance_groups": self.instance_groups,
            "instance_groups_dict": self.instance_groups_dict,
            "is_hetero": self.is_hetero,
            "is_master": self.is_master,
            "is_modelparallel_enabled": self.is_modelparallel_enabled,
            "is_smddpmprun_installed": self.is_smddpmprun_installed,
            "is_smddprun_installed": self.is_smddprun_installed,
            "job_name": self.job_name,
            "log_level": self.log_level,
            "master_hostname": self.master_hostname,
            "model_dir": str(self.model_dir),
            "module_dir": self.module_dir,
            "module_name": self.module_name,
            "network_interface_name": self.network_interface_name,
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "num_neurons": self.num_neurons,
            "output_data_dir": str(self.output_data_dir),
            "output_dir": str(self.paths.output_dir),
            "output_intermediate_dir": str(self.paths.output_intermediate_dir),
            "resource_config": dict(self.resource_config),
            "topology": self.topology,
            "user_entry_point": self.user_entry_point,
        }

    def to_env_vars(self) -> dict[str, str]:
        """Every ``SM_*`` variable AWS's training toolkit exports, formatted as it does."""
        values: dict[str, Any] = {
            "hosts": list(self.hosts),
            "network_interface_name": self.network_interface_name,
            "hps": dict(self.hyperparameters),
            "user_entry_point": self.user_entry_point,
            "framework_params": self.additional_framework_params,
            "resource_config": dict(self.resource_config),
            "input_data_config": dict(self.input_data_config),
            "output_data_dir": str(self.output_data_dir),
            "channels": sorted(self.input_data_config),
            "current_host": self.current_host,
            "current_instance_type": self.current_instance_type,
            "current_instance_group": self.current_instance_group,
            "current_instance_group_hosts": self.current_instance_group_hosts,
            "instance_groups": self.instance_groups,
            "instance_groups_dict": self.instance_groups_dict,
            "distribution_instance_groups": self.distribution_instance_groups,
            "is_hetero": self.is_hetero,
            "module_name": self.module_name,
            "log_level": self.log_level,
            "framework_module": self.framework_module,
            "input_dir": str(self.paths.input_dir),
            "input_config_dir": str(self.paths.input_config_dir),
            "output_dir": str(self.paths.output_dir),
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "num_neurons": self.num_neurons,
            "model_dir": str(self.model_dir),
            "module_dir": self.module_dir,
            "training_env": self.to_training_env(),
            "user_args": self.to_cmd_args(),
            "output_intermediate_dir": str(self.paths.output_intermediate_dir),
        }
        if self.topology:
            values["topology"] = self.topology
        for name, path in self.channel_input_dirs.items():
            values[f"channel_{name}"] = str(path)
        for key, value in self.hyperparameters.items():
            values[f"hp_{key}"] = value
        return {f"SM_{key.upper()}": env_value(value) for key, value in values.items()}

    def toolkit_env_vars(self) -> dict[str, str]:
        """The other variables AWS's toolkit puts in the script's environment."""
        return {
            "CURRENT_HOST": self.current_host,
            "SAGEMAKER_JOB_NAME": _optional_str(self.framework_params.get(JOB_NAME_PARAM)) or "",
            "SAGEMAKER_REGION": self.region,
        }


# -- helpers -------------------------------------------------------------------------------------
def _is_framework_key(key: str) -> bool:
    return key.startswith(FRAMEWORK_PREFIX) or key in TOOLKIT_PARAMS


def _optional_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _log_level(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        named = logging.getLevelName(text.upper())
        if isinstance(named, int):
            return named
    return logging.INFO


_GPU_NODE = re.compile(r"nvidia\d+")


def count_gpus(environ: Mapping[str, str], root: Path = Path("/")) -> int:
    """NVIDIA GPUs this container can use, without running ``nvidia-smi``.

    The driver lists one entry per GPU in ``/proc/driver/nvidia/gpus`` (the NVIDIA container
    runtime shows only the GPUs given to the container); ``/dev/nvidiaN`` nodes are the fallback.
    ``CUDA_VISIBLE_DEVICES``, when set, narrows the count.
    """
    proc = root / "proc/driver/nvidia/gpus"
    try:
        found = len(list(proc.iterdir()))
    except OSError:
        try:
            found = sum(1 for p in (root / "dev").iterdir() if _GPU_NODE.fullmatch(p.name))
        except OSError:
            found = 0
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or found == 0:
        return found
    ids = [part for part in visible.split(",") if part.strip() not in ("", "-1", "NoDevFiles")]
    return min(found, len(ids))


def count_neurons(environ: Mapping[str, str], instance_type: str) -> int:
    """AWS Neuron cores, without running ``neuron-ls``.

    ``trn2.48xlarge`` has 64 (as AWS's toolkit hard-codes); otherwise ``NEURON_RT_NUM_CORES`` or
    the cores listed in ``NEURON_RT_VISIBLE_CORES`` (``0-3`` or ``0,1``), else 0.
    """
    if "trn2.48xlarge" in instance_type:
        return 64
    number = environ.get("NEURON_RT_NUM_CORES", "").strip()
    if number.isdigit():
        return int(number)
    cores = 0
    for part in environ.get("NEURON_RT_VISIBLE_CORES", "").split(","):
        low, _, high = part.strip().partition("-")
        if low.isdigit():
            cores += int(high) - int(low) + 1 if high.isdigit() else 1
    return cores
