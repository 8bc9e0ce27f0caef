"""Compatibility with AWS's training toolkit, for the same /opt/ml trees and environment:

- in-process: AWS's ``Environment().to_env_vars()`` / ``to_cmd_args()`` plus the variables its
  constructor writes into ``os.environ`` (CURRENT_HOST, SAGEMAKER_JOB_NAME, SAGEMAKER_REGION),
  against our ``to_env_vars()`` / ``to_cmd_args()`` / ``toolkit_env_vars()``;
- end to end: the environment, argv and working directory a user script actually receives
  under AWS's ``train`` and under ``sagedock train``.

They must be identical except for the deliberate differences listed in DELIBERATE_DIFFERENCES
(and, for the script's whole environment, CHILD_DIFFERENCES).

AWS's package is installed from the package index into a venv in the user's cache directory
(``$XDG_CACHE_HOME``, else ``~/.cache``), outside the clone, so reruns on one machine reuse it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from sagedock.toolkit.env import TrainingEnv
from tests.fixtures.venvs import client_python

from .jobs import DUMP_SCRIPT, clean_environ

AWS_PACKAGE = "sagemaker-training==5.1.4"
#: What AWS's Environment() writes into os.environ, for the script to inherit.
TOOLKIT_VARS = ("CURRENT_HOST", "SAGEMAKER_JOB_NAME", "SAGEMAKER_REGION")

#: Where and why our output differs from AWS's on purpose. Each entry: a description and a
#: function that turns AWS's output (the variables it gives the script) into ours for that case.
Patch = Callable[[dict[str, str], Mapping[str, str]], None]


def _hyperparameters(environ: Mapping[str, str]) -> dict[str, str]:
    path = Path(environ["SAGEMAKER_BASE_DIR"], "input/config/hyperparameters.json")
    document: dict[str, str] = json.loads(path.read_text())
    return document


def _training_env(fix: Callable[[dict[str, Any]], None]) -> Patch:
    def patch(aws: dict[str, str], environ: Mapping[str, str]) -> None:
        document = json.loads(aws["SM_TRAINING_ENV"])
        fix(document)
        aws["SM_TRAINING_ENV"] = json.dumps(document, sort_keys=True, separators=(",", ":"))

    return patch


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
    if level and "sagemaker_container_log_level" not in _hyperparameters(environ):
        aws["SM_LOG_LEVEL"] = level

        def fix(document: dict[str, Any]) -> None:
            document["log_level"] = int(level)

        _training_env(fix)(aws, environ)


def _submit_directory_env_is_honoured(aws: dict[str, str], environ: Mapping[str, str]) -> None:
    # AWS: reads SAGEMAKER_SUBMIT_DIRECTORY, then always overwrites it with the hyperparameter
    # or the code dir. We use the variable when the hyperparameter is absent.
    submit = environ.get("SAGEMAKER_SUBMIT_DIRECTORY")
    if submit and "sagemaker_submit_directory" not in _hyperparameters(environ):
        aws["SM_MODULE_DIR"] = submit

        def fix(document: dict[str, Any]) -> None:
            document["module_dir"] = submit

        _training_env(fix)(aws, environ)


def _region_falls_back_to_aws_region(aws: dict[str, str], environ: Mapping[str, str]) -> None:
    # AWS: the hyperparameter, else boto3's default region, which reads AWS_DEFAULT_REGION (and
    # ~/.aws/config) but not AWS_REGION. We read AWS_REGION, then AWS_DEFAULT_REGION.
    region = environ.get("AWS_REGION")
    if region and "sagemaker_region" not in _hyperparameters(environ):
        aws["SAGEMAKER_REGION"] = region


DELIBERATE_DIFFERENCES: dict[str, Patch] = {
    "SM_MODULE_NAME is empty, not 'None', when there is no program": (
        _no_program_means_no_module_name
    ),
    "SAGEMAKER_CONTAINER_LOG_LEVEL counts when the hyperparameter is absent (SM_LOG_LEVEL, "
    "log_level in SM_TRAINING_ENV)": _log_level_env_is_honoured,
    "SAGEMAKER_SUBMIT_DIRECTORY counts when the hyperparameter is absent (SM_MODULE_DIR, "
    "module_dir in SM_TRAINING_ENV)": _submit_directory_env_is_honoured,
    "SAGEMAKER_REGION falls back to AWS_REGION before AWS_DEFAULT_REGION": (
        _region_falls_back_to_aws_region
    ),
    # Not compared here because AWS's toolkit cannot produce an output for them:
    # - a missing resourceconfig.json: AWS raises FileNotFoundError (unless /opt/ml is absent,
    #   when it invents ~/sagemaker_local trees at import); we run as one local host "algo-1".
    # - GPUs/Neuron cores: AWS runs nvidia-smi / neuron-ls; we read /proc/driver/nvidia/gpus,
    #   /dev/nvidiaN, CUDA_VISIBLE_DEVICES and NEURON_RT_* (same count on ordinary machines).
    # - a region in ~/.aws/config: boto3 reads it, we do not (HOME is empty here).
}


def _child_pythonpath_is_the_code_dir_then_the_inherited_one(
    aws: dict[str, str], environ: Mapping[str, str]
) -> None:
    # AWS: the code dir, then every entry of its own interpreter's sys.path. We put the code
    # dir first and keep the PYTHONPATH the platform gave (none here).
    code_dir = str(Path(environ["SAGEMAKER_BASE_DIR"], "code"))
    assert aws["PYTHONPATH"].split(":")[0] == code_dir
    aws["PYTHONPATH"] = code_dir


def _child_python_is_unbuffered(aws: dict[str, str], environ: Mapping[str, str]) -> None:
    # AWS leaves Python's output block-buffered into a pipe; we stream it live.
    assert "PYTHONUNBUFFERED" not in aws
    aws["PYTHONUNBUFFERED"] = "1"


#: Further differences in the whole environment the user script receives.
CHILD_DIFFERENCES: dict[str, Patch] = {
    "PYTHONPATH is the code dir, then the inherited PYTHONPATH (AWS: its whole sys.path)": (
        _child_pythonpath_is_the_code_dir_then_the_inherited_one
    ),
    "PYTHONUNBUFFERED=1": _child_python_is_unbuffered,
}

AWS_DRIVER = f"""
import json, os
from sagemaker_training import environment
env = environment.Environment()
written = {{name: os.environ[name] for name in {TOOLKIT_VARS!r}}}
print(json.dumps({{"env_vars": {{**env.to_env_vars(), **written}}, "cmd_args": env.to_cmd_args()}}))
"""
AWS_TRAIN = "from sagemaker_training.cli.train import main; main()"


@pytest.fixture(scope="session")
def aws_python() -> Path:
    """Python of a cached venv with AWS's sagemaker-training (:mod:`tests.fixtures.venvs`)."""
    return client_python(AWS_PACKAGE, module="sagemaker_training")


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


def _environ(base: Path, home: Path, case_environ: Mapping[str, str]) -> dict[str, str]:
    """A clean environment (no region, no PYTHONPATH of ours) plus the case's variables."""
    environ = clean_environ(SAGEMAKER_BASE_DIR=str(base), HOME=str(home))
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "PYTHONPATH"):
        environ.pop(name, None)
    return {**environ, **case_environ}


def _apply(patches: Mapping[str, Patch], aws: dict[str, str], environ: Mapping[str, str]) -> None:
    for patch in patches.values():
        patch(aws, environ)


def _assert_same_variables(actual: Mapping[str, str], expected: Mapping[str, str]) -> None:
    assert sorted(actual) == sorted(expected)
    for name in expected:
        if name == "SM_TRAINING_ENV":
            assert json.loads(actual[name]) == json.loads(expected[name])
        assert actual[name] == expected[name], name


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
    "environ": {
        "TRAINING_JOB_NAME": "job-1",
        "SAGEMAKER_TRAINING_MODULE": "pkg.train:main",
        "AWS_REGION": "us-east-2",  # the hyperparameter wins for both
    },
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
    "environ": {
        "SAGEMAKER_PROGRAM": "other.py",
        "SM_HP_MP_PARAMETERS": '{"pipeline": 2}',
        "SAGEMAKER_SUBMIT_DIRECTORY": "s3://bucket/other/sourcedir.tar.gz",
        "AWS_DEFAULT_REGION": "ap-south-1",
    },
}

ALGORITHM_MODE = {
    "hyperparameters": {"num_round": "10", "objective": "reg:squarederror"},
    "resource": {"current_host": "algo-1", "hosts": ["algo-1"]},
    "channels": {"train": {"ContentType": "text/libsvm", "TrainingInputMode": "File"}},
    "environ": {
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "10",
        "AWS_REGION": "eu-north-1",
        "AWS_DEFAULT_REGION": "us-west-2",
    },
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
    environ = _environ(base, tmp_path, case["environ"])
    aws_run = subprocess.run(
        [str(aws_python), "-c", AWS_DRIVER], env=environ, capture_output=True, text=True
    )
    assert aws_run.returncode == 0, aws_run.stderr
    aws = json.loads(aws_run.stdout.strip().splitlines()[-1])

    ours = TrainingEnv.load(environ)
    assert ours.to_cmd_args() == aws["cmd_args"]

    expected: dict[str, str] = aws["env_vars"]
    _apply(DELIBERATE_DIFFERENCES, expected, environ)
    assert len(expected) > 30
    _assert_same_variables({**ours.to_env_vars(), **ours.toolkit_env_vars()}, expected)


#: Stands for the directory holding the user's code (sagemaker_submit_directory).
SOURCE_DIR = "<source dir>"

# Jobs that both toolkits can run to the end with one process and DUMP_SCRIPT.
CHILD_SUBMITTED_CODE = {
    "hyperparameters": {
        **_sdk(
            {
                "sagemaker_program": "dump.py",
                "sagemaker_submit_directory": SOURCE_DIR,
                "sagemaker_region": "eu-west-1",
                "sagemaker_job_name": "job-7",
                "sagemaker_container_log_level": 10,
                "epochs": 3,
                "learning-rate": 0.01,
                "flag": False,
                "layers": [8, [4, "x"]],
                "opts": {"beta": 0.9},
                "name": "it's $HOME",
            }
        ),
        "raw_text": "not json",
    },
    "resource": {
        "current_host": "algo-2",
        "hosts": ["algo-1", "algo-2"],
        "network_interface_name": "eth0",
        "current_instance_type": "ml.m5.xlarge",
    },
    "channels": {"train": {"ContentType": "text/csv", "TrainingInputMode": "File"}},
    "environ": {
        "TRAINING_JOB_NAME": "job-7",
        # Neither toolkit may wait for DNS to know algo-1 and algo-2 on this machine.
        "SM_STUDIO_LOCAL_MODE": "true",
        "SAGEDOCK_HOST_ADDRESSES": json.dumps({"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}),
    },
    "baked_in": False,
}

CHILD_BAKED_IN_CODE = {
    "hyperparameters": _sdk({"a": 1}),
    "resource": {"current_host": "algo-1", "hosts": ["algo-1"]},
    "channels": {},
    "environ": {
        "SM_STUDIO_LOCAL_MODE": "true",  # AWS would wait for DNS to know algo-1
        "SAGEMAKER_PROGRAM": "dump.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": SOURCE_DIR,
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "30",
        "AWS_REGION": "eu-north-1",
    },
    "baked_in": True,
}


#: A bash-only shell script (arrays, [[ ]]) that hands its arguments on to DUMP_SCRIPT.
BASH_ENTRY = """\
#!/bin/bash
args=("$@")
[[ ${#args[@]} -gt 0 ]] && exec "$DUMP_PYTHON" dump.py "${args[@]}"
"""

CHILD_SHELL_SCRIPT = {
    "hyperparameters": _sdk({"sagemaker_program": "run.sh", "msg": "it's $HOME; `x`", "n": 2}),
    "resource": {"current_host": "algo-1", "hosts": ["algo-1"]},
    "channels": {},
    "environ": {"SM_STUDIO_LOCAL_MODE": "true", "DUMP_PYTHON": sys.executable},
    "baked_in": True,
}


def _run_script(argv: list[str], base: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """Run a toolkit's train on *base*; what DUMP_SCRIPT saw. Leaves the tree for a rerun."""
    done = subprocess.run(argv, env=dict(environ), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    seen_file = base / "output" / "data" / "seen.json"
    seen: dict[str, Any] = json.loads(seen_file.read_text())
    shutil.rmtree(base / "output")
    return seen


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [CHILD_SUBMITTED_CODE, CHILD_BAKED_IN_CODE, CHILD_SHELL_SCRIPT],
    ids=["submitted-code", "baked-in-code", "bash-script"],
)
def test_the_scripts_environment_and_argv_under_train_match_aws_train(
    case: dict[str, Any], tmp_path: Path, aws_python: Path
) -> None:
    base = tmp_path / "opt" / "ml"
    source = tmp_path / "source"
    source.mkdir()
    (source / "dump.py").write_text(DUMP_SCRIPT)
    (source / "run.sh").write_text(BASH_ENTRY)
    hps = {k: v.replace(SOURCE_DIR, str(source)) for k, v in case["hyperparameters"].items()}
    _write_tree(base, hps, case["resource"], case["channels"])
    code_dir = base / "code"
    if case["baked_in"]:
        shutil.copytree(source, code_dir)
    case_environ = {k: v.replace(SOURCE_DIR, str(source)) for k, v in case["environ"].items()}
    environ = _environ(base, tmp_path, case_environ)

    aws = _run_script([str(aws_python), "-c", AWS_TRAIN], base, environ)
    if not case["baked_in"]:
        shutil.rmtree(code_dir)  # so that ours fetches the code too
    ours = _run_script([sys.executable, "-m", "sagedock.toolkit", "train"], base, environ)

    assert ours["argv"] == aws["argv"]
    assert ours["cwd"] == aws["cwd"] == str(code_dir)
    expected: dict[str, str] = aws["env"]
    _apply({**DELIBERATE_DIFFERENCES, **CHILD_DIFFERENCES}, expected, environ)
    _assert_same_variables(ours["env"], expected)


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
