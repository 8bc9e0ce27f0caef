"""Bad hyperparameters fail the job as ClientErrors through the real ``sagedock train``.

Each of these ran before as a job that succeeded with a useless model (``eta=nan``) or failed
as an ``AlgorithmError`` traceback (``max_bin=0``, ``exact`` with ``max_depth=0``, a
``hyperparameters.json`` of 100000 ``[``); the message now names what to fix.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from sagedock.toolkit.errors import UserError
from tests.fixtures.xgboost import XGBoostJob, make_dataset, write_csv

from .support import train_inprocess

JobFactory = Callable[..., XGBoostJob]


def _job(xgboost_job: JobFactory, **hps: object) -> XGBoostJob:
    job = xgboost_job({"num_round": 3, **hps})
    data = make_dataset("regression", rows=80)
    write_csv(job.add_channel("train", "text/csv") / "train.csv", data.x, data.y)
    return job


def _failure(job: XGBoostJob, result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr[-2000:]
    assert job.failure is not None
    assert "Traceback" not in job.failure and "AlgorithmError" not in job.failure
    assert list(job.model_dir.iterdir()) == []
    return job.failure.strip()


def test_e2e_eta_nan_fails_the_job_instead_of_training_a_nan_model(
    xgboost_job: JobFactory,
) -> None:
    job = _job(xgboost_job, eta="nan")
    assert _failure(job, job.run()) == (
        "ClientError: Hyperparameter eta: nan is not in [0, 1] "
        "(NaN and infinity are not numbers in a range)"
    )


def test_e2e_max_bin_0_is_a_client_error_before_any_data_is_read(
    xgboost_job: JobFactory,
) -> None:
    job = _job(xgboost_job, max_bin=0)
    assert _failure(job, job.run()) == (
        "ClientError: Hyperparameter max_bin: 0 is not in [2, 2147483647]: XGBoost needs at "
        "least 2 bins per feature and keeps max_bin as a 32-bit integer"
    )


def test_e2e_hyperparameters_json_nested_too_deeply_names_the_file(
    xgboost_job: JobFactory,
) -> None:
    job = _job(xgboost_job)
    job.write_configs()
    hyperparameters = job.base / "input" / "config" / "hyperparameters.json"
    hyperparameters.write_text("[" * 100_000)
    result = subprocess.run(
        job.command(), env=job.environ(), capture_output=True, text=True, timeout=120, check=False
    )
    assert _failure(job, result) == (
        f"ClientError: {hyperparameters}: JSON nested too deeply to read "
        "(arrays or objects hundreds of levels deep)"
    )


@pytest.mark.parametrize(
    ("hps", "start"),
    [
        # SageMaker's ranges allow both; XGBoost's core refuses them in a "Check failed".
        (
            {"tree_method": "exact", "max_depth": 0},
            "Hyperparameter max_depth: XGBoost refused 0: Check failed: param_.max_depth > 0",
        ),
        (
            {"tree_method": "exact", "monotone_constraints": "(1,1,1,1,1,1,1,1)"},
            "Hyperparameter monotone_constraints: XGBoost refused (1,1,1,1,1,1,1,1): Check "
            "failed: p.monotone_constraints.size() <= n_features",
        ),
    ],
)
def test_xgboosts_check_failed_on_a_parameter_is_a_client_error_naming_it(
    xgboost_job: JobFactory, hps: dict[str, object], start: str
) -> None:
    job = _job(xgboost_job, **hps)
    with pytest.raises(UserError) as info:
        train_inprocess(job)
    assert info.value.message.startswith(start)
    assert list(job.model_dir.iterdir()) == []
