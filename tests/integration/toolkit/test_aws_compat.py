"""Compatibility with AWS's training toolkit: for the same /opt/ml trees and environment,
AWS's ``sagemaker_training.environment.Environment().to_env_vars()`` / ``to_cmd_args()`` and
our ``TrainingEnv.to_env_vars()`` / ``to_cmd_args()`` must be identical, except for the
deliberate differences listed in DELIBERATE_DIFFERENCES.

AWS's package is installed from the package index into a throwaway venv cached under
``.cache/`` in the repository, so reruns are fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from sagedock.toolkit.env import TrainingEnv

from .jobs import clean_environ

AWS_PACKAGE = "sagemaker-training==5.1.4"

#: Where and why our output differs from AWS's on purpose. Each entry: a description and a
#: function that turns AWS's output into what we produce for that case.
Patch = Callable[[dict[str, str], Mapping[str, str]], None]


def _training_env(fix: Callable[[dict[str, Any]], None]) -> Patch:
    def patch(aws: dict[str, str], environ: Mapping[str, str]) -> None:
        document = json.loads(aws["SM_TRAINING_ENV"])
        fix(document)
        aws["SM_TRAINING_ENV"] = json.dumps(document, sort_keys=True, separators=(",", ":"))

    return patch


def _modelparallel_is_a_bool(aws: dict[str, str], environ: Mapping[str, str]) -> None:
    # AWS: `mp_parameters and mp_parameters != "{}"` leaks None (JSON null) when unset.
    def fix(document: dict[str, Any]) -> None:
        if document["is_modelparallel_enabled"] is None:
            document["is_modelparallel_enabled"] = False

    _training_env(fix)(aws, environ)


def _no_program_means_no_module_name(aws: dict[str, str], environ: Mapping[str, str]) -> None:
    # AWS: str(None) -> the module name "None" when there is no program (algorithm mode).
    if aws["SM_MODULE_NAME"] == "None":
        aws["SM_MODULE_NAME"] = ""

        def fix(document: dict[str, Any]) -> None:
            document["module_name"] = None

        _training_env(fix)(aws, environ)


def _log_level_env_is_honoured(aws: dict[str, str], environ: Mapping[str, str]) -> None:
    # AWS: reads SAGEMAKER_CONTAINER_LOG_LEVEL, then always overwrites it with the
    # hyperparameter or 20. We use the variable when the hyperparameter is absent.
    level = environ.get("SAGEMAKER_CONTAINER_LOG_LEVEL")
    hyperparameters = Path(environ["SAGEMAKER_BASE_DIR"], "input/config/hyperparameters.json")
    if level and "sagemaker_container_log_level" not in json.loads(hyperparameters.read_text()):
        aws["SM_LOG_LEVEL"] = level

        def fix(document: dict[str, Any]) -> None:
            document["log_level"] = int(level)

        _training_env(fix)(aws, environ)


DELIBERATE_DIFFERENCES: dict[str, Patch] = {
    "is_modelparallel_enabled is false, not null, when SM_HP_MP_PARAMETERS is unset": (
        _modelparallel_is_a_bool
    ),
    "SM_MODULE_NAME is empty, not 'None', when there is no program": (
        _no_program_means_no_module_name
    ),
    "SAGEMAKER_CONTAINER_LOG_LEVEL counts when the hyperparameter is absent": (
        _log_level_env_is_honoured
    ),
    # Not compared here because AWS's toolkit cannot produce an output for them:
    # - a missing resourceconfig.json: AWS raises FileNotFoundError (unless /opt/ml is absent,
    #   when it invents ~/sagemaker_local trees at import); we run as one local host "algo-1".
    # - GPUs/Neuron cores: AWS runs nvidia-smi / neuron-ls; we read /proc/driver/nvidia/gpus,
    #   /dev/nvidiaN, CUDA_VISIBLE_DEVICES and NEURON_RT_* (same count on ordinary machines).
    # - SAGEMAKER_SUBMIT_DIRECTORY counts when the hyperparameter is absent (AWS ignores it).
}

AWS_DRIVER = """
import json
from sagemaker_training import environment
env = environment.Environment()
print(json.dumps({"env_vars": env.to_env_vars(), "cmd_args": env.to_cmd_args()}))
"""


@pytest.fixture(scope="session")
def aws_python(repo_root: Path) -> Path:
    """Python of a venv with AWS's sagemaker-training installed (cached in .cache/)."""
    venv = repo_root / ".cache" / "aws-training-toolkit"
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import sagemaker_training"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", AWS_PACKAGE],
        capture_output=True,
        text=True,
    )
    if install.returncode != 0:
        pytest.fail(f"cannot install {AWS_PACKAGE} from the package index:\n{install.stderr}")
    return python


def _write_tree(base: Path, hyperparameters: dict[str, Any], resource: dict[str, Any],
                channels: dict[str, Any]) -> None:  # fmt: skip
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "resourceconfig.json").write_text(json.dumps(resource))
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    for name in channels:
        (base / "input" / "data" / name).mkdir(parents=True)


def _sdk(values: dict[str, Any]) -> dict[str, str]:
    """Hyperparameters as the SageMaker SDK writes them: each value a JSON string."""
    return {key: json.dumps(value) for key, value in values.items()}


SCRIPT_MODE = {
    "hyperparameters": {
        **_sdk(
            {
                "sagemaker_program": "train.py",
                "sagemaker_submit_directory": "s3://bucket/job/source/sourcedir.tar.gz",
                "sagemaker_region": "eu-west-1",
                "sagemaker_job_name": "job-1",
                "sagemaker_container_log_level": 10,
                "sagemaker_mpi_enabled": True,
                "sagemaker_mpi_custom_mpi_options": "-x FOO=1",
                "_tuning_objective_metric": "loss",
                "epochs": 10,
                "learning-rate": 0.001,
                "use_cuda": False,
                "b": True,
                "layers": [64, [32, "x"]],
                "opts": {"beta": 0.9, "alpha": [1, 2]},
                "nothing": None,
                "name": "two words",
            }
        ),
        "raw_text": "not json at all",
        "number_not_string": 5,
    },
    "resource": {
        "current_host": "algo-2",
        "hosts": ["algo-1", "algo-2"],
        "network_interface_name": "ethwe",
        "current_instance_type": "ml.p3.2xlarge",
    },
    "channels": {
        "train": {
            "ContentType": "text/csv",
            "TrainingInputMode": "File",
            "S3DistributionType": "ShardedByS3Key",
            "RecordWrapperType": "None",
        },
        "validation": {"TrainingInputMode": "Pipe"},
    },
    "environ": {"TRAINING_JOB_NAME": "job-1", "SAGEMAKER_TRAINING_MODULE": "pkg.train:main"},
}

HETEROGENEOUS = {
    "hyperparameters": _sdk(
        {
            "sagemaker_program": "entry.py",
            "sagemaker_torch_distributed_enabled": True,
            "sagemaker_distribution_instance_groups": ["gpus"],
        }
    ),
    "resource": {
        "current_host": "algo-3",
        "hosts": ["algo-1", "algo-2", "algo-3"],
        "current_group_name": "gpus",
        "current_instance_type": "ml.g5.xlarge",
        "instance_groups": [
            {"instance_group_name": "cpus", "instance_type": "ml.c5.xlarge", "hosts": ["algo-1"]},
            {
                "instance_group_name": "gpus",
                "instance_type": "ml.g5.xlarge",
                "hosts": ["algo-2", "algo-3"],
            },
        ],
        "topology": [{"hostName": "algo-2", "capacityUnitId": "u1"}],
    },
    "channels": {},
    "environ": {"SAGEMAKER_PROGRAM": "other.py", "SM_HP_MP_PARAMETERS": '{"pipeline": 2}'},
}

ALGORITHM_MODE = {
    "hyperparameters": {"num_round": "10", "objective": "reg:squarederror"},
    "resource": {"current_host": "algo-1", "hosts": ["algo-1"]},
    "channels": {"train": {"ContentType": "text/libsvm", "TrainingInputMode": "File"}},
    "environ": {"SAGEMAKER_CONTAINER_LOG_LEVEL": "10"},
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [SCRIPT_MODE, HETEROGENEOUS, ALGORITHM_MODE],
    ids=["script-mode", "heterogeneous", "algorithm-mode"],
)
def test_sm_env_and_argv_match_aws_training_toolkit(
    case: dict[str, Any], tmp_path: Path, aws_python: Path
) -> None:
    base = tmp_path / "opt" / "ml"
    _write_tree(base, case["hyperparameters"], case["resource"], case["channels"])
    environ = clean_environ(SAGEMAKER_BASE_DIR=str(base), HOME=str(tmp_path), **case["environ"])
    environ.pop("AWS_DEFAULT_REGION", None)
    environ.pop("AWS_REGION", None)
    aws_run = subprocess.run(
        [str(aws_python), "-c", AWS_DRIVER], env=environ, capture_output=True, text=True
    )
    assert aws_run.returncode == 0, aws_run.stderr
    aws = json.loads(aws_run.stdout.strip().splitlines()[-1])

    ours = TrainingEnv.load(environ)
    assert ours.to_cmd_args() == aws["cmd_args"]

    expected: dict[str, str] = aws["env_vars"]
    for patch in DELIBERATE_DIFFERENCES.values():
        patch(expected, environ)
    actual = ours.to_env_vars()
    assert len(expected) > 30
    assert sorted(actual) == sorted(expected)
    for name in expected:
        if name == "SM_TRAINING_ENV":
            assert json.loads(actual[name]) == json.loads(expected[name])
        assert actual[name] == expected[name], name


def test_loading_the_env_writes_no_environment_variable_and_no_directory(tmp_path: Path) -> None:
    # AWS's toolkit creates directories at import and writes os.environ in its constructor.
    code = (
        "import json, os\n"
        "before = dict(os.environ)\n"
        "from sagedock.toolkit.env import TrainingEnv\n"
        "TrainingEnv.load()\n"
        "print(json.dumps(dict(os.environ) == before))\n"
    )
    environ = clean_environ(SAGEMAKER_BASE_DIR=str(tmp_path / "ml"))
    out = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "true"
    assert not (tmp_path / "ml").exists()
