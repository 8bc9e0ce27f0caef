"""XGBoost's own errors become ours: a refused parameter value names its hyperparameter."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xgboost

from sagedock.containers.xgboost.train import blamed_hyperparameter, classify_error
from sagedock.toolkit.errors import AlgorithmError, UserError


def _raised(build: Any) -> xgboost.core.XGBoostError:
    with pytest.raises(xgboost.core.XGBoostError) as info:
        build()
    return info.value


X = np.random.default_rng(0).random((40, 3))
Y = X[:, 0]


def test_a_check_failed_about_a_parameter_is_a_client_error_naming_it() -> None:
    # What max_bin=0 gives when the QuantileDMatrix (the hist method's matrix) is built.
    exc = _raised(lambda: xgboost.QuantileDMatrix(X, label=Y, max_bin=0))
    error = classify_error(exc, {"max_bin": 0, "tree_method": "hist"})
    assert isinstance(error, UserError)
    assert error.message.startswith(
        "Hyperparameter max_bin: XGBoost refused 0: Check failed: max_bin >= 2 (0 vs. 2)"
    )
    assert "[bt]" not in error.message and "quantile.cc" not in error.message


def test_exact_with_unlimited_depth_blames_max_depth() -> None:
    params = {"tree_method": "exact", "max_depth": 0}
    exc = _raised(lambda: xgboost.train(params, xgboost.DMatrix(X, label=Y), 1))
    error = classify_error(exc, params)
    assert isinstance(error, UserError)
    assert error.message.startswith(
        "Hyperparameter max_depth: XGBoost refused 0: Check failed: param_.max_depth > 0"
    )


def test_xgboosts_own_name_of_an_aliased_hyperparameter_blames_ours() -> None:
    params = {"gamma": 1e39}
    exc = _raised(lambda: xgboost.train(params, xgboost.DMatrix(X, label=Y), 1))
    assert "min_split_loss" in str(exc)
    error = classify_error(exc, params)
    assert isinstance(error, UserError)
    assert error.message.startswith("Hyperparameter gamma: XGBoost refused 1e+39: Out of range")


def test_a_check_failed_naming_no_hyperparameter_of_the_job_stays_an_algorithm_error() -> None:
    # A booster of 5 features continued on 3: nothing the job's parameters could fix.
    old = xgboost.train({}, xgboost.DMatrix(np.ones((4, 5)), label=np.ones(4)), 1)
    params = {"max_depth": 3}
    exc = _raised(lambda: xgboost.train(params, xgboost.DMatrix(X, label=Y), 1, xgb_model=old))
    error = classify_error(exc, params)
    assert isinstance(error, AlgorithmError)
    assert "Check failed: learner_model_param_.num_feature" in error.message


def test_names_are_whole_words_and_the_first_one_named_is_blamed() -> None:
    text = "Check failed: reg_lambda >= 0, then max_depth and alpha"
    assert blamed_hyperparameter(text, {"lambda": 1.0, "max_depth": 3, "alpha": 1}) == "lambda"
    assert blamed_hyperparameter(text, {"max_depth": 3, "alpha": 1}) == "max_depth"
    assert blamed_hyperparameter("Check failed: max_depth_limit", {"max_depth": 3}) is None
    # a message that is not about a parameter value blames nobody
    assert blamed_hyperparameter("max_depth is large, training is slow", {"max_depth": 3}) is None
