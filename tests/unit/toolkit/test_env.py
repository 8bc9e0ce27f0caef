"""TrainingEnv: the job as one frozen snapshot, and the SM_* variables it exports."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from sagedock.toolkit.config import JobConfig, read_job_config
from sagedock.toolkit.env import TrainingEnv, count_gpus, count_neurons
from sagedock.toolkit.paths import MlPaths


def _env(tmp_path: Path, hps: dict[str, Any], resource: dict[str, Any] | None = None,
         channels: dict[str, Any] | None = None, environ: dict[str, str] | None = None
         ) -> TrainingEnv:  # fmt: skip
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(
        json.dumps({k: json.dumps(v) for k, v in hps.items()})
    )
    resource = resource or {"current_host": "algo-1", "hosts": ["algo-1"]}
    (config / "resourceconfig.json").write_text(json.dumps(resource))
    (config / "inputdataconfig.json").write_text(json.dumps(channels or {}))
    return TrainingEnv.load({"SAGEMAKER_BASE_DIR": str(tmp_path), **(environ or {})})


def test_sagemaker_keys_are_split_off_the_user_hyperparameters(tmp_path: Path) -> None:
    hps = {"sagemaker_program": "t.py", "sagemaker_mpi_enabled": True, "lr": 0.1}
    env = _env(tmp_path, {**hps, "_tuning_objective_metric": "x"})
    assert dict(env.hyperparameters) == {"lr": 0.1}
    assert set(env.framework_params) == {
        "sagemaker_program",
        "sagemaker_mpi_enabled",
        "_tuning_objective_metric",
    }
    assert env.additional_framework_params == {"sagemaker_mpi_enabled": True}
    assert env.raw_hyperparameters["lr"] == "0.1"
    assert env.user_entry_point == "t.py" and env.module_name == "t"


def test_sm_channel_vars_point_at_channel_dirs(tmp_path: Path) -> None:
    env = _env(tmp_path, {}, channels={"train": {}, "Validation": {}})
    variables = env.to_env_vars()
    assert variables["SM_CHANNEL_TRAIN"] == str(tmp_path / "input/data/train")
    assert variables["SM_CHANNEL_VALIDATION"] == str(tmp_path / "input/data/Validation")
    assert variables["SM_CHANNELS"] == '["Validation","train"]'


def test_sm_hp_vars_upper_case_the_name_and_keep_hyphens(tmp_path: Path) -> None:
    variables = _env(tmp_path, {"learning-rate": 0.0001, "layers": [1, 2]}).to_env_vars()
    assert variables["SM_HP_LEARNING-RATE"] == "0.0001"
    assert variables["SM_HP_LAYERS"] == "[1,2]"


def test_every_documented_sm_variable_is_exported(tmp_path: Path) -> None:
    names = set(_env(tmp_path, {"sagemaker_program": "t.py"}).to_env_vars())
    documented = {
        "SM_MODEL_DIR", "SM_CHANNELS", "SM_HPS", "SM_HOSTS", "SM_CURRENT_HOST", "SM_NUM_GPUS",
        "SM_NUM_CPUS", "SM_NUM_NEURONS", "SM_LOG_LEVEL", "SM_NETWORK_INTERFACE_NAME",
        "SM_INPUT_DIR", "SM_INPUT_CONFIG_DIR", "SM_OUTPUT_DIR", "SM_OUTPUT_DATA_DIR",
        "SM_OUTPUT_INTERMEDIATE_DIR", "SM_RESOURCE_CONFIG", "SM_INPUT_DATA_CONFIG",
        "SM_USER_ARGS", "SM_USER_ENTRY_POINT", "SM_MODULE_NAME", "SM_MODULE_DIR",
        "SM_FRAMEWORK_PARAMS", "SM_FRAMEWORK_MODULE", "SM_TRAINING_ENV",
        "SM_CURRENT_INSTANCE_TYPE", "SM_CURRENT_INSTANCE_GROUP",
        "SM_CURRENT_INSTANCE_GROUP_HOSTS", "SM_INSTANCE_GROUPS", "SM_INSTANCE_GROUPS_DICT",
        "SM_DISTRIBUTION_INSTANCE_GROUPS", "SM_IS_HETERO",
    }  # fmt: skip
    assert documented <= names


def test_master_is_the_first_distribution_host(tmp_path: Path) -> None:
    resource = {
        "current_host": "algo-2",
        "hosts": ["algo-1", "algo-2", "algo-3"],
        "current_group_name": "g",
        "instance_groups": [
            {"instance_group_name": "c", "instance_type": "ml.c5", "hosts": ["algo-1"]},
            {"instance_group_name": "g", "instance_type": "ml.g5", "hosts": ["algo-2", "algo-3"]},
        ],
    }
    env = _env(tmp_path, {"sagemaker_torch_distributed_enabled": True}, resource)
    assert env.distribution_instance_groups == ["g"]
    assert env.distribution_hosts == ["algo-2", "algo-3"]
    assert env.master_hostname == "algo-2" and env.is_master
    assert env.is_hetero and env.is_distribution_host
    assert env.current_instance_group_hosts == ["algo-2", "algo-3"]


def test_program_env_var_wins_over_the_hyperparameter(tmp_path: Path) -> None:
    env = _env(tmp_path, {"sagemaker_program": "a.py"}, environ={"SAGEMAKER_PROGRAM": "b.py"})
    assert env.user_entry_point == "b.py"


def test_toolkit_env_vars_are_what_aws_writes_into_os_environ(tmp_path: Path) -> None:
    env = _env(tmp_path, {"sagemaker_job_name": "j", "sagemaker_region": "eu-west-1"})
    assert env.toolkit_env_vars() == {
        "CURRENT_HOST": "algo-1",
        "SAGEMAKER_JOB_NAME": "j",
        "SAGEMAKER_REGION": "eu-west-1",
    }


def test_checkpoint_dir_defaults_under_the_base_dir(tmp_path: Path) -> None:
    assert _env(tmp_path, {}).checkpoint_dir == tmp_path / "checkpoints"


def test_env_is_frozen_and_its_mappings_read_only(tmp_path: Path) -> None:
    env = _env(tmp_path, {"a": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        env.num_gpus = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        env.hyperparameters["a"] = 2  # type: ignore[index]


def test_from_config_is_pure_and_injectable(tmp_path: Path) -> None:
    paths = MlPaths(tmp_path)
    job: JobConfig = read_job_config(paths)
    env = TrainingEnv.from_config(job, {}, paths, num_cpus=96, num_gpus=8)
    assert env.to_env_vars()["SM_NUM_GPUS"] == "8"
    assert env.processes_per_host() == 8


def test_processes_per_host_follows_the_mpi_parameter(tmp_path: Path) -> None:
    assert _env(tmp_path, {"sagemaker_mpi_num_of_processes_per_host": 3}).processes_per_host() == 3


def test_gpus_are_counted_from_proc_without_nvidia_smi(tmp_path: Path) -> None:
    gpus = tmp_path / "proc/driver/nvidia/gpus"
    for bus in ("0000:00:1e.0", "0000:00:1f.0"):
        (gpus / bus).mkdir(parents=True)
    assert count_gpus({}, root=tmp_path) == 2
    assert count_gpus({"CUDA_VISIBLE_DEVICES": "1"}, root=tmp_path) == 1
    assert count_gpus({"CUDA_VISIBLE_DEVICES": ""}, root=tmp_path) == 0
    assert count_gpus({}, root=tmp_path / "nothing") == 0


def test_neuron_cores_from_the_runtime_variables() -> None:
    assert count_neurons({}, "ml.trn2.48xlarge") == 64
    assert count_neurons({"NEURON_RT_VISIBLE_CORES": "0-3,8"}, "ml.trn1.2xlarge") == 5
    assert count_neurons({"NEURON_RT_NUM_CORES": "2"}, "ml.trn1.2xlarge") == 2
    assert count_neurons({}, "ml.c5.xlarge") == 0


@pytest.mark.parametrize(
    ("mp_parameters", "expected"),
    [(None, None), ("", None), ("{}", False), ('{"pipeline": 2}', True)],
)
def test_modelparallel_is_null_when_unset_as_in_aws_toolkit(
    tmp_path: Path, mp_parameters: str | None, expected: bool | None
) -> None:
    environ = {} if mp_parameters is None else {"SM_HP_MP_PARAMETERS": mp_parameters}
    env = _env(tmp_path, {}, environ=environ)
    assert env.is_modelparallel_enabled is expected
    assert env.to_training_env()["is_modelparallel_enabled"] is expected
