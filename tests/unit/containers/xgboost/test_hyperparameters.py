"""Hyperparameter validation matches SageMaker's XGBoost (checklist rows X1-X7)."""

from __future__ import annotations

from typing import Any

import pytest

from sagedock.containers.hyperparameters import FLOAT32_MAX, Interval
from sagedock.containers.xgboost.hyperparameters import SCHEMA, validate
from sagedock.toolkit.errors import UserError


def _error(hps: dict[str, Any]) -> str:
    with pytest.raises(UserError) as info:
        validate(hps)
    return info.value.message


def test_x1_missing_num_round() -> None:
    assert _error({"max_depth": "5"}) == "Missing required hyperparameter: num_round"


def test_x2_unknown_key_is_named() -> None:
    assert _error({"num_round": "5", "verbose": "1"}) == "Extraneous hyperparameter found: verbose"
    assert (
        _error({"num_round": "5", "single_precision_histogram": "true"})
        == "Extraneous hyperparameter found: single_precision_histogram"
    )


def test_x3_aliases_map_to_canonical_names() -> None:
    hps = validate(
        {
            "num_round": "5",
            "learning_rate": "0.2",
            "reg_lambda": "3",
            "reg_alpha": "0.5",
            "min_split_loss": "4",
        }
    )
    assert hps.xgboost_params() == {"eta": 0.2, "lambda": 3.0, "alpha": 0.5, "gamma": 4.0}


def test_an_alias_and_its_name_together_are_refused() -> None:
    assert "give only one" in _error({"num_round": "5", "eta": "0.1", "learning_rate": "0.2"})


def test_x4_multiclass_needs_num_class() -> None:
    assert (
        _error({"num_round": "5", "objective": "multi:softmax"})
        == "Require input for parameter 'num_class' for multi-classification"
    )
    validate({"num_round": "5", "objective": "multi:softprob", "num_class": "3"})


def test_x5_auc_needs_a_classification_or_ranking_objective() -> None:
    message = "Metric 'auc' can only be applied for classification and ranking problems."
    assert (
        _error({"num_round": "5", "eval_metric": "auc", "objective": "reg:squarederror"}) == message
    )
    validate({"num_round": "5", "eval_metric": "auc", "objective": "rank:pairwise"})


def test_eval_metric_without_objective_is_checked_against_the_default_objective() -> None:
    # SageMaker's container crashes here with KeyError: 'objective'.
    message = "Metric 'auc' can only be applied for classification and ranking problems."
    assert _error({"num_round": "5", "eval_metric": "auc"}) == message
    assert validate({"num_round": "5", "eval_metric": "rmse,mae"}).eval_metric == ("rmse", "mae")


def test_x6_monotone_constraints_need_exact_or_hist() -> None:
    message = (
        "monotone_constraints can be used only when the tree_method parameter is set to "
        "either 'exact' or 'hist'."
    )
    assert _error({"num_round": "5", "monotone_constraints": "(1,-1)"}) == message
    assert (
        _error({"num_round": "5", "monotone_constraints": "(1,-1)", "tree_method": "gpu_hist"})
        == message
    )
    hps = validate({"num_round": "5", "monotone_constraints": "(1,-1)", "tree_method": "hist"})
    assert hps.xgboost_params()["monotone_constraints"] == "(1,-1)"


def test_x7_thresholded_metrics_are_accepted() -> None:
    hps = validate(
        {"num_round": "5", "eval_metric": "error@0.7,auc", "objective": "binary:logistic"}
    )
    assert hps.eval_metric == ("error@0.7", "auc")
    assert (
        _error({"num_round": "5", "eval_metric": "error@x"})
        == "Threshold value 't' in 'error@t' expects float input."
    )
    assert "customized threshold" in _error({"num_round": "5", "eval_metric": "rmse@3"})


@pytest.mark.parametrize(
    ("hps", "message"),
    [
        ({"num_round": "0"}, "Hyperparameter num_round: 0 is not in [1, +inf)"),
        (
            {"num_round": "1.5"},
            "Hyperparameter num_round: could not parse value (caused by ValueError)",
        ),
        ({"num_round": "5", "subsample": "0"}, "Hyperparameter subsample: 0.0 is not in (0, 1]"),
        ({"num_round": "5", "csv_weights": "2"}, "Hyperparameter csv_weights: 2 is not in [0, 1]"),
        ({"num_round": "5", "eta": "1.5"}, "Hyperparameter eta: 1.5 is not in [0, 1]"),
        (
            {"num_round": "5", "booster": "gbforest"},
            "Hyperparameter booster: gbforest is not in ['gbtree', 'gblinear', 'dart']",
        ),
        (
            {"num_round": "5", "seed": str(-(2**31))},
            "Hyperparameter seed: -2147483648 is not in (-2147483648, 2147483647)",
        ),
        (
            {"num_round": "5", "interaction_constraints": "[[0, 1]]"},
            "Hyperparameter interaction_constraints: value [[0, 1]] not in range [1, +inf)",
        ),
        (
            {"num_round": "5", "tweedie_variance_power": "2"},
            "Hyperparameter tweedie_variance_power: 2.0 is not in (1, 2)",
        ),
    ],
)
def test_range_and_parse_errors_read_like_sagemakers(hps: dict[str, Any], message: str) -> None:
    assert _error(hps) == message


def test_unknown_metric_lists_the_known_ones() -> None:
    message = _error({"num_round": "5", "eval_metric": "foo"})
    assert message.startswith("Hyperparameter eval_metric: value ['foo'] not in range ['accuracy',")


def test_aft_metric_needs_the_aft_objective() -> None:
    assert "'survival:aft'" in _error({"num_round": "5", "eval_metric": "aft-nloglik"})


@pytest.mark.parametrize(
    ("hps", "fragment"),
    [
        ({"booster": "gblinear", "updater": "grow_colmaker"}, "Linear updater should be one of"),
        ({"process_type": "update", "updater": "grow_colmaker"}, "process_type 'update'"),
        ({"updater": "grow_colmaker,grow_histmaker"}, "Only one tree grow plugin"),
    ],
)
def test_updater_rules(hps: dict[str, Any], fragment: str) -> None:
    assert fragment in _error({"num_round": "5", **hps})


def test_updater_is_passed_on_comma_joined() -> None:
    hps = validate({"num_round": "5", "updater": "grow_colmaker,prune"})
    assert hps.xgboost_params()["updater"] == "grow_colmaker,prune"


def test_internal_keys_are_accepted_and_not_passed_to_xgboost() -> None:
    hps = validate(
        {
            "num_round": "5",
            "_tuning_objective_metric": "validation:rmse",
            "_kfold": "3",
            "_num_cv_round": "2",
            "csv_weights": "1",
            "early_stopping_rounds": "3",
            "save_model_on_termination": "true",
        }
    )
    assert (hps.tuning_metric, hps.kfold, hps.num_cv_round) == ("rmse", 3, 2)
    assert hps.csv_weights and hps.save_model_on_termination and hps.early_stopping_rounds == 3
    assert hps.xgboost_params() == {}
    assert "_tuning_objective_metric" in _error(
        {"num_round": "5", "_tuning_objective_metric": "train:rmse"}
    )
    assert (
        _error({"num_round": "5", "_kfold": "1"}) == "Hyperparameter _kfold: 1 is not in [2, +inf)"
    )


def test_json_decoded_values_give_the_same_answers_as_strings() -> None:
    # TrainingEnv decodes each value; SageMaker passes strings. Same verdicts either way.
    assert validate({"num_round": 5, "eta": 0.3, "save_model_on_termination": True}).values == (
        validate({"num_round": "5", "eta": "0.3", "save_model_on_termination": "true"}).values
    )
    assert (
        _error({"num_round": 1.5})
        == "Hyperparameter num_round: could not parse value (caused by ValueError)"
    )
    assert validate(
        {"num_round": 5, "interaction_constraints": [[1, 2]], "tree_method": "hist"}
    ).get("interaction_constraints") == [[1, 2]]


def test_tuple_values_are_literals_never_code() -> None:
    message = _error(
        {
            "num_round": "5",
            "monotone_constraints": "__import__('os').getcwd()",
            "tree_method": "hist",
        }
    )
    assert message.startswith("Hyperparameter monotone_constraints: could not parse value")


def test_aft_loss_distribution_is_not_an_objective() -> None:
    assert "use objective=survival:aft" in _error(
        {"num_round": "5", "objective": "aft_loss_distribution"}
    )


def test_framework_parameters_are_not_hyperparameters() -> None:
    assert validate({"num_round": "5", "sagemaker_program": "train.py"}).values == {"num_round": 5}


def test_retired_parameters_are_accepted_and_dropped() -> None:
    hps = validate({"num_round": "5", "predictor": "cpu_predictor", "max_depth": "3"})
    assert hps.xgboost_params() == {"max_depth": 3}


def test_every_schema_entry_names_a_kind_and_the_required_key() -> None:
    assert [name for name, hp in SCHEMA.items() if hp.required] == ["num_round"]
    assert {"_tuning_objective_metric", "_kfold", "_num_cv_round"} <= set(SCHEMA)


def test_ranking_metrics_take_a_numeric_cut_off() -> None:
    hps = validate(
        {"num_round": "5", "objective": "rank:ndcg", "eval_metric": "ndcg@3,map@5,ndcg,map"}
    )
    assert hps.eval_metric == ("ndcg@3", "map@5", "ndcg", "map")
    # n must parse as a number (as in SageMaker, XGBoost's "ndcg@3-" spelling is refused too)
    for metric, name in (("ndcg@top", "ndcg"), ("map@", "map"), ("ndcg@3-", "ndcg")):
        assert (
            _error({"num_round": "5", "objective": "rank:ndcg", "eval_metric": metric})
            == f"Threshold value 't' in '{name}@t' expects float input."
        )
    assert _error({"num_round": "5", "eval_metric": "auc@3"}) == (
        "Metric 'auc@3' is not supported. Parameter 'eval_metric' with customized threshold "
        "should be one of these options: 'error', 'ndcg', 'map'."
    )


def test_num_class_without_objective_is_accepted_and_passed_on() -> None:
    # SageMaker requires num_class for multi:*, but does not require an objective for it.
    hps = validate({"num_round": "5", "num_class": "3"})
    assert hps.objective is None
    assert hps.xgboost_params() == {"num_class": 3}
    assert _error({"num_round": "5", "num_class": "1"}) == (
        "Hyperparameter num_class: 1 is not in [2, +inf)"
    )


@pytest.mark.parametrize("tree_method", [None, "auto", "gpu_hist"])
def test_interaction_constraints_need_exact_hist_or_approx(tree_method: str | None) -> None:
    hps = {"num_round": "5", "interaction_constraints": "[[1, 2], [3, 4]]"}
    if tree_method is not None:
        hps["tree_method"] = tree_method
    assert _error(hps) == (
        "interaction_constraints can be used only when the tree_method parameter is set to "
        "either 'exact', 'hist' or 'approx'."
    )


@pytest.mark.parametrize("tree_method", ["exact", "hist", "approx"])
def test_interaction_constraints_go_to_xgboost_as_a_json_list(tree_method: str) -> None:
    hps = validate(
        {"num_round": "5", "interaction_constraints": "[[1,2],[3,4]]", "tree_method": tree_method}
    )
    assert hps.xgboost_params()["interaction_constraints"] == "[[1, 2], [3, 4]]"


# -- NaN, infinity and what XGBoost itself accepts (issue 11, section 4) -----------------------

NUMERIC_WITH_A_RANGE = sorted(
    name
    for name, hp in SCHEMA.items()
    if hp.kind in ("int", "float") and isinstance(hp.range, Interval)
)


@pytest.mark.parametrize("name", NUMERIC_WITH_A_RANGE)
@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"])
def test_nan_and_infinity_are_refused_for_every_number_with_a_range(name: str, text: str) -> None:
    hp = SCHEMA[name]
    if hp.kind == "int":
        # int("nan") does not parse: refused before any range is looked at
        assert "could not parse value" in _error({"num_round": "5", name: text})
        return
    shown = repr(float(text))
    message = _error({"num_round": "5", name: text})
    assert message == (
        f"Hyperparameter {name}: {shown} is not in {hp.range} "
        "(NaN and infinity are not numbers in a range)"
    )


def test_decoded_nan_is_refused_like_the_string() -> None:
    # TrainingEnv JSON-decodes values, and Python's json reads NaN and Infinity as floats.
    assert _error({"num_round": 5, "eta": float("nan")}).startswith(
        "Hyperparameter eta: nan is not in [0, 1]"
    )
    assert _error({"num_round": 5, "gamma": float("inf")}).startswith(
        "Hyperparameter gamma: inf is not in [0, +inf)"
    )


def test_infinity_inside_a_number_list_is_refused() -> None:
    assert _error({"num_round": "5", "interaction_constraints": "[[1, 1e999]]"}) == (
        "Hyperparameter interaction_constraints: value [[1, inf]] not in range [1, +inf) "
        "(NaN and infinity are not numbers in a range)"
    )


def test_a_nan_metric_threshold_is_refused() -> None:
    for metric in ("error@nan", "error@inf"):
        assert (
            _error({"num_round": "5", "eval_metric": metric, "objective": "binary:logistic"})
            == "Threshold value 't' in 'error@t' expects float input."
        )


def test_max_bin_below_two_is_refused_before_training() -> None:
    # SageMaker documents [0, +inf); XGBoost fails on 0 and 1 with "Check failed: max_bin >= 2".
    for value in ("0", "1"):
        assert _error({"num_round": "5", "max_bin": value}) == (
            f"Hyperparameter max_bin: {value} is not in [2, 2147483647]: XGBoost needs at least 2 "
            "bins per feature and keeps max_bin as a 32-bit integer"
        )
    assert validate({"num_round": "5", "max_bin": "2"}).xgboost_params() == {"max_bin": 2}


def test_numbers_past_xgboosts_32_bit_parameters_are_refused() -> None:
    assert _error({"num_round": "5", "gamma": "1e39"}) == (
        "Hyperparameter gamma: 1e+39 is not in [0, 3.4028234663852886e+38]: XGBoost keeps it as "
        "a 32-bit float"
    )
    assert _error({"num_round": "5", "max_depth": str(2**31)}) == (
        "Hyperparameter max_depth: 2147483648 is not in [0, 2147483647]: XGBoost keeps it as a "
        "32-bit integer"
    )
    validate({"num_round": "5", "gamma": repr(FLOAT32_MAX), "max_depth": str(2**31 - 1)})


LIMITED = sorted(name for name, hp in SCHEMA.items() if hp.library_limit is not None)


def _just_outside(name: str) -> int | float:
    hp = SCHEMA[name]
    assert hp.library_limit is not None
    limit = hp.library_limit.range
    if name == "max_bin":
        return 1
    assert limit.max_closed is not None
    return limit.max_closed + 1 if hp.kind == "int" else 1e39


@pytest.mark.parametrize("name", LIMITED)
def test_what_we_refuse_for_xgboost_xgboost_refuses_too(name: str) -> None:
    # The limits are XGBoost's, not stricter: the real library fails on the first value past
    # each one. (nthread past 2**31 - 1 is refused as a parameter, so no thread is started.)
    import numpy as np
    import xgboost

    value = _just_outside(name)
    assert "is not in" in _error({"num_round": "5", name: str(value)})
    rng = np.random.default_rng(0)
    x = rng.random((40, 3))
    params: dict[str, Any] = {name: value, "tree_method": "hist"}
    matrix = xgboost.DMatrix(x, label=(x[:, 0] > 0.5).astype(float))
    # A parameter of another objective is ignored (with a warning) unless that objective runs.
    if name == "num_class":
        params["objective"] = "multi:softprob"
    if name == "aft_loss_distribution_scale":
        params["objective"] = "survival:aft"
        matrix.set_float_info("label_lower_bound", x[:, 0])
        matrix.set_float_info("label_upper_bound", x[:, 0] + 1)
    with pytest.raises(xgboost.core.XGBoostError):
        xgboost.train(params, matrix, num_boost_round=1)
