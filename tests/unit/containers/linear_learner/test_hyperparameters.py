"""Linear Learner's hyperparameters match SageMaker's (reference §4.2; checklist L1-L4, L13)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagedock.containers.hyperparameters import Interval
from sagedock.containers.linear_learner.hyperparameters import (
    AUTO_NUM_MODELS,
    DEFAULT_INPUT,
    HIDDEN_KEYS,
    LOSSES_BY_PREDICTOR,
    PREDICTOR_TYPES,
    SCHEMA,
    WORDS,
    LinearLearnerConfig,
    parse_hyperparameters,
)
from sagedock.toolkit.errors import UserError
from tests.fuzz import property_settings

BINARY = {"predictor_type": "binary_classifier"}
REGRESSOR = {"predictor_type": "regressor"}
MULTICLASS = {"predictor_type": "multiclass_classifier", "num_classes": "10"}


def _error(hps: dict[str, Any]) -> str:
    with pytest.raises(UserError) as info:
        parse_hyperparameters(hps)
    assert info.value.describe().startswith("ClientError: ")
    return info.value.message


# -- L1, L2: required keys ----------------------------------------------------------------------


def test_l1_missing_predictor_type_is_a_client_error_naming_it() -> None:
    message = _error({"epochs": "5"})
    assert message.startswith(
        "No value(s) were specified for 'predictor_type' which are required hyperparameter(s)"
    )
    assert "binary_classifier, multiclass_classifier, regressor" in message


def test_l1_an_unknown_predictor_type_names_the_choices() -> None:
    message = _error({"predictor_type": "classifier"})
    assert message == (
        "Hyperparameter predictor_type: classifier is not in "
        "['binary_classifier', 'multiclass_classifier', 'regressor']"
    )


@pytest.mark.parametrize("num_classes", [None, "1", "2"])
def test_l2_multiclass_needs_num_classes_of_at_least_3(num_classes: str | None) -> None:
    hps = {"predictor_type": "multiclass_classifier"}
    if num_classes is not None:
        hps["num_classes"] = num_classes
    message = _error(hps)
    assert message.startswith(
        "For predictor_type 'multiclass_classifier', 'num_classes' should be set to a value "
        "greater than 2."
    )
    assert f"num_classes: {num_classes or 'not set'}" in message


def test_l2_num_classes_range_is_3_to_a_million() -> None:
    assert parse_hyperparameters({**MULTICLASS, "num_classes": "3"}).num_classes == 3
    assert parse_hyperparameters({**MULTICLASS, "num_classes": "1000000"}).num_outputs == 10**6
    message = _error({**MULTICLASS, "num_classes": "1000001"})
    assert message == "Hyperparameter num_classes: 1000001 is not in [1, 1000000]"


def test_num_classes_is_ignored_outside_multiclass() -> None:
    binary = parse_hyperparameters({**BINARY, "num_classes": "7"})
    assert (binary.num_classes, binary.num_outputs) == (2, 1)
    regressor = parse_hyperparameters({**REGRESSOR, "num_classes": "7"})
    assert (regressor.num_classes, regressor.num_outputs) == (1, 1)


# -- L3: every key accepted as a string, auto and hidden keys included ----------------------------


@pytest.mark.parametrize("predictor_type", PREDICTOR_TYPES)
def test_l3_every_default_input_key_is_accepted_as_a_string(predictor_type: str) -> None:
    # default-input.json as the real container prints it, given back explicitly.
    hps = {**DEFAULT_INPUT, "predictor_type": predictor_type}
    if predictor_type == "multiclass_classifier":
        hps["num_classes"] = "4"
    config = parse_hyperparameters(hps)
    assert config.predictor_type == predictor_type
    assert set(config.final) == set(DEFAULT_INPUT) | {"predictor_type"}
    assert set(HIDDEN_KEYS) <= set(config.hidden)


def test_l3_the_schema_is_the_reference_key_list() -> None:
    reference = {
        *(k for k in DEFAULT_INPUT if not k.startswith("_")),
        "predictor_type",
    }
    assert set(SCHEMA) == reference
    assert all(k.startswith("_") for k in HIDDEN_KEYS)


def test_l3_every_auto_word_is_accepted() -> None:
    hps = {**BINARY, **{name: words[0] for name, words in WORDS.items()}}
    hps.update(normalize_data="auto", normalize_label="auto", unbias_data="auto", loss="auto")
    hps.update(optimizer="auto", unbias_label="auto")
    config = parse_hyperparameters(hps)
    assert config.num_models == AUTO_NUM_MODELS
    assert config.feature_dim is None
    assert config.num_calibration_samples == 10_000_000


def test_l3_hidden_keys_are_accepted_silently_and_sagemaker_keys_ignored() -> None:
    config = parse_hyperparameters(
        {
            **BINARY,
            "_kvstore": "dist_sync",
            "_num_gpus": "0",
            "_num_kv_servers": "1",
            "_log_level": "debug",
            "_enable_profiler": "true",
            "_some_future_key": "x",
            "sagemaker_region": "us-east-1",
        }
    )
    assert config.hidden["_kvstore"] == "dist_sync"
    assert config.hidden["_some_future_key"] == "x"
    assert "sagemaker_region" not in config.given and "sagemaker_region" not in config.final


def test_an_unknown_key_is_refused_with_a_suggestion() -> None:
    assert (
        _error({**BINARY, "learnig_rate": "0.1"})
        == "Extraneous hyperparameter found: learnig_rate (did you mean learning_rate?)"
    )
    assert _error({**BINARY, "verbose": "1"}) == "Extraneous hyperparameter found: verbose"


def test_json_decoded_values_give_the_same_config_as_strings() -> None:
    strings = {
        **BINARY,
        "epochs": "7",
        "learning_rate": "0.05",
        "use_bias": "false",
        "mini_batch_size": "200",
        "init_bias": "-0.5",
        "num_models": "4",
        "l1": "auto",
    }
    decoded = {
        **BINARY,
        "epochs": 7,
        "learning_rate": 0.05,
        "use_bias": False,
        "mini_batch_size": 200,
        "init_bias": -0.5,
        "num_models": 4,
        "l1": "auto",
    }
    assert parse_hyperparameters(strings) == parse_hyperparameters(decoded)


@pytest.mark.parametrize("text", ["true", "True", "TRUE", True])
def test_booleans_read_the_sdks_str_true_too(text: Any) -> None:
    assert parse_hyperparameters({**BINARY, "balance_multiclass_weights": text}).models
    config = parse_hyperparameters({**MULTICLASS, "balance_multiclass_weights": text})
    assert config.balance_multiclass_weights is True


def test_an_unparsable_value_names_key_value_and_what_is_allowed() -> None:
    assert _error({**BINARY, "epochs": "1.5"}) == (
        "Hyperparameter epochs: could not parse value '1.5'; allowed: an integer in [1, +inf)"
    )
    assert _error({**BINARY, "learning_rate": "fast"}) == (
        "Hyperparameter learning_rate: could not parse value 'fast'; "
        "allowed: auto or a number in (0, +inf)"
    )
    assert "allowed: auto or balanced or a number in (0, +inf)" in _error(
        {**BINARY, "positive_example_weight_mult": "heavy"}
    )
    assert "could not parse value '[1, 2]'" in _error({**BINARY, "epochs": [1, 2]})
    assert "could not parse value 'null'" in _error({**BINARY, "wd": None})


# -- L4: out-of-range values and the loss rules --------------------------------------------------


def test_l4_the_checklist_examples_are_client_errors() -> None:
    assert _error({**BINARY, "target_recall": "1.5"}) == (
        "Hyperparameter target_recall: 1.5 is not in (0, 1)"
    )
    assert _error({**BINARY, "optimizer": "adagrad"}) == (
        "Hyperparameter optimizer: adagrad is not in ['auto', 'sgd', 'adam', 'rmsprop']"
    )
    assert _error({**REGRESSOR, "loss": "softmax_loss"}) == (
        "Hyperparameter loss: softmax_loss is not allowed with predictor_type regressor; "
        "allowed: auto, squared_loss, absolute_loss, eps_insensitive_squared_loss, "
        "eps_insensitive_absolute_loss, quantile_loss, huber_loss"
    )


_ALL_LOSSES = sorted({loss for losses in LOSSES_BY_PREDICTOR.values() for loss in losses})


@pytest.mark.parametrize("predictor_type", PREDICTOR_TYPES)
@pytest.mark.parametrize("loss", _ALL_LOSSES)
def test_l4_each_loss_only_with_its_predictor_types(predictor_type: str, loss: str) -> None:
    hps = {"predictor_type": predictor_type, "num_classes": "3", "loss": loss}
    allowed = {
        "binary_classifier": {"logistic", "hinge_loss"},
        "multiclass_classifier": {"softmax_loss"},
        "regressor": set(_ALL_LOSSES) - {"logistic", "hinge_loss", "softmax_loss"},
    }[predictor_type]
    if loss in allowed:
        config = parse_hyperparameters(hps)
        assert config.loss == loss and {m.loss for m in config.models} == {loss}
    else:
        assert f"loss: {loss} is not allowed with predictor_type {predictor_type}" in _error(hps)


#: The reference's ranges (§4.2, the SDK validators), written out, against SCHEMA.
EXPECTED_RANGES = {
    "num_classes": "[1, 1000000]",
    "feature_dim": "[1, +inf)",
    "mini_batch_size": "[1, +inf)",
    "epochs": "[1, +inf)",
    "num_models": "[1, +inf)",
    "num_calibration_samples": "[1, +inf)",
    "learning_rate": "(0, +inf)",
    "momentum": "[0, 1)",
    "beta_1": "[0, 1)",
    "beta_2": "[0, 1)",
    "wd": "[0, +inf)",
    "l1": "[0, +inf)",
    "bias_lr_mult": "(0, +inf)",
    "bias_wd_mult": "[0, +inf)",
    "init_scale": "(0, +inf)",
    "init_sigma": "(0, +inf)",
    "init_bias": "(-inf, +inf)",
    "lr_scheduler_step": "[1, +inf)",
    "lr_scheduler_factor": "(0, 1)",
    "lr_scheduler_minimum_lr": "(0, +inf)",
    "num_point_for_scaler": "[1, +inf)",
    "target_recall": "(0, 1)",
    "target_precision": "(0, 1)",
    "f_beta": "(0, +inf)",
    "positive_example_weight_mult": "(0, +inf)",
    "accuracy_top_k": "[1, 1000000]",
    "margin": "[0, +inf)",
    "quantile": "(0, 1)",
    "loss_insensitivity": "(0, +inf)",
    "huber_delta": "[0, +inf)",
    "early_stopping_patience": "[1, +inf)",
    "early_stopping_tolerance": "(0, +inf)",
}
EXPECTED_CHOICES = {
    "predictor_type": ["binary_classifier", "multiclass_classifier", "regressor"],
    "loss": ["auto", "logistic", "squared_loss", "absolute_loss", "hinge_loss",
             "eps_insensitive_squared_loss", "eps_insensitive_absolute_loss", "quantile_loss",
             "huber_loss", "softmax_loss"],
    "optimizer": ["auto", "sgd", "adam", "rmsprop"],
    "use_bias": ["true", "false"],
    "init_method": ["uniform", "normal"],
    "use_lr_scheduler": ["true", "false"],
    "normalize_data": ["auto", "true", "false"],
    "normalize_label": ["auto", "true", "false"],
    "unbias_data": ["auto", "true", "false"],
    "unbias_label": ["auto", "true", "false"],
    "binary_classifier_model_selection_criteria": [
        "accuracy", "f_beta", "precision_at_target_recall", "recall_at_target_precision",
        "loss_function", "f1", "cross_entropy_loss"],
    "balance_multiclass_weights": ["true", "false"],
}  # fmt: skip
EXPECTED_WORDS = {
    **{
        name: ("auto",)
        for name in [
            "feature_dim",
            "num_models",
            "num_calibration_samples",
            "learning_rate",
            "momentum",
            "beta_1",
            "beta_2",
            "wd",
            "l1",
            "bias_lr_mult",
            "bias_wd_mult",
            "lr_scheduler_step",
            "lr_scheduler_factor",
            "lr_scheduler_minimum_lr",
        ]
    },
    "positive_example_weight_mult": ("auto", "balanced"),
}


def test_every_range_and_choice_list_is_the_references() -> None:
    assert {n: str(hp.range) for n, hp in SCHEMA.items() if isinstance(hp.range, Interval)} == (
        EXPECTED_RANGES
    )
    assert {n: list(hp.range) for n, hp in SCHEMA.items() if isinstance(hp.range, tuple)} == (
        EXPECTED_CHOICES
    )
    assert dict(WORDS) == EXPECTED_WORDS


def _base_for(name: str) -> dict[str, str]:
    return dict(MULTICLASS) if name == "num_classes" else dict(BINARY)


@pytest.mark.parametrize(
    ("name", "choice"), [(n, c) for n, cs in EXPECTED_CHOICES.items() for c in cs]
)
def test_every_choice_is_accepted(name: str, choice: str) -> None:
    hps = {**BINARY, name: choice}
    if name == "predictor_type":
        hps["num_classes"] = "3"
    if name == "loss" and choice not in ("auto", *LOSSES_BY_PREDICTOR["binary_classifier"]):
        hps["predictor_type"] = next(p for p, ls in LOSSES_BY_PREDICTOR.items() if choice in ls)
        hps["num_classes"] = "3"
    parse_hyperparameters(hps)


@pytest.mark.parametrize("name", sorted(EXPECTED_CHOICES))
def test_a_value_outside_a_choice_list_names_every_choice(name: str) -> None:
    assert _error({**BINARY, name: "bogus"}) == (
        f"Hyperparameter {name}: bogus is not in {EXPECTED_CHOICES[name]}"
    )


def _boundary_cases() -> list[tuple[str, str, bool]]:
    cases: list[tuple[str, str, bool]] = []
    for name, hp in SCHEMA.items():
        interval = hp.range
        if not isinstance(interval, Interval):
            continue
        step = 1 if hp.kind == "int" else 1e-9
        if interval.min_closed is not None:
            cases += [
                (name, str(interval.min_closed), True),
                (name, str(interval.min_closed - step), False),
            ]
        if interval.min_open is not None:
            cases += [
                (name, str(interval.min_open), False),
                (name, str(interval.min_open + step), True),
            ]
        if interval.max_closed is not None:
            cases += [
                (name, str(interval.max_closed), True),
                (name, str(interval.max_closed + step), False),
            ]
        if interval.max_open is not None:
            cases += [
                (name, str(interval.max_open), False),
                (name, str(interval.max_open - step), True),
            ]
    return cases  # fmt: skip


@pytest.mark.parametrize(("name", "text", "ok"), _boundary_cases())
def test_range_boundaries(name: str, text: str, ok: bool) -> None:
    hps = {**_base_for(name), name: text}
    if name == "num_classes" and float(text) < 3:
        return  # below 3 is the multiclass rule's refusal, tested above
    if ok:
        parse_hyperparameters(hps)
    else:
        message = _error(hps)
        assert message.startswith(f"Hyperparameter {name}: ") and " is not in " in message


_FLOAT_KEYS = sorted(n for n, hp in SCHEMA.items() if hp.kind == "float")


@pytest.mark.parametrize("name", _FLOAT_KEYS)
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e999", "3.5e38"])
def test_nan_infinity_and_non_float32_numbers_are_refused(name: str, text: str) -> None:
    message = _error({**BINARY, name: text})
    assert message.startswith(f"Hyperparameter {name}: ")
    if name in WORDS:
        assert "; allowed: " + " or ".join(WORDS[name]) in message


# -- auto resolution ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hps", "loss", "normalize_label", "unbias_label"),
    [
        (BINARY, "logistic", False, False),
        (MULTICLASS, "softmax_loss", False, False),
        (REGRESSOR, "squared_loss", True, True),
    ],
)
def test_auto_resolves_per_predictor_type(
    hps: dict[str, str], loss: str, normalize_label: bool, unbias_label: bool
) -> None:
    config = parse_hyperparameters(hps)
    assert config.loss == loss
    assert config.optimizer == "adam" and {m.optimizer for m in config.models} == {"adam"}
    assert config.num_models == AUTO_NUM_MODELS == len(config.models) == 32
    assert config.normalize_data is True
    assert (config.normalize_label, config.unbias_label) == (normalize_label, unbias_label)
    assert config.unbias_data is True and config.unbias_sparse_data is False
    assert config.num_calibration_samples == 10_000_000
    assert config.feature_dim is None and config.tuning_objective_metric is None


def test_normalize_label_is_ignored_for_classification() -> None:
    assert parse_hyperparameters({**BINARY, "normalize_label": "true"}).normalize_label is False
    assert parse_hyperparameters({**REGRESSOR, "normalize_label": "false"}).normalize_label is False


def test_unbias_follows_use_bias_unless_given() -> None:
    no_bias = parse_hyperparameters({**REGRESSOR, "use_bias": "false"})
    assert (no_bias.unbias_data, no_bias.unbias_label) == (False, False)
    given = parse_hyperparameters({**REGRESSOR, "use_bias": "false", "unbias_data": "true"})
    assert given.unbias_data is True and given.unbias_sparse_data is True


def test_defaults_are_default_input_json() -> None:
    config = parse_hyperparameters(BINARY)
    assert (config.epochs, config.mini_batch_size, config.num_point_for_scaler) == (15, 1000, 10000)
    assert (config.init_method, config.init_scale, config.init_sigma, config.init_bias) == (
        "uniform", 0.07, 0.01, 0.0,
    )  # fmt: skip
    assert (config.target_recall, config.target_precision, config.f_beta) == (0.8, 0.8, 1.0)
    assert (config.early_stopping_patience, config.early_stopping_tolerance) == (3, 0.001)
    assert config.binary_classifier_model_selection_criteria == "accuracy"
    assert config.accuracy_top_k == 3 and config.balance_multiclass_weights is False
    model = config.models[0]
    assert (model.margin, model.quantile, model.loss_insensitivity, model.huber_delta) == (
        1.0, 0.5, 0.01, 1.0,
    )  # fmt: skip
    assert (model.beta_1, model.beta_2, model.bias_lr_mult, model.bias_wd_mult) == (
        0.9, 0.999, 1.0, 0.0,
    )  # fmt: skip
    assert model.positive_example_weight_mult == 1.0 and model.use_lr_scheduler is True
    assert dict(config.final) == {**DEFAULT_INPUT, **BINARY}
    assert dict(config.given) == BINARY


def test_model_0_is_sagemakers_logged_default_best_model() -> None:
    # [OBS 2020] Best model found for hyperparameters: {"lr_scheduler_step": 100, "wd": 0.0001,
    # "optimizer": "adam", "lr_scheduler_factor": 0.99, "l1": 0.0, "learning_rate": 0.1,
    # "lr_scheduler_minimum_lr": 1e-05}
    best = parse_hyperparameters(BINARY).models[0].to_json()
    assert best == {
        "optimizer": "adam",
        "learning_rate": 0.1,
        "l1": 0.0,
        "wd": 0.0001,
        "lr_scheduler_step": 100,
        "lr_scheduler_factor": 0.99,
        "lr_scheduler_minimum_lr": 1e-05,
    }
    assert list(best) == [
        "optimizer", "learning_rate", "l1", "wd", "lr_scheduler_step", "lr_scheduler_factor",
        "lr_scheduler_minimum_lr",
    ]  # fmt: skip


def test_auto_settings_vary_across_models_within_the_documented_ranges() -> None:
    models = parse_hyperparameters(BINARY).models
    assert [m.index for m in models] == list(range(32))
    for name in ("learning_rate", "wd", "lr_scheduler_step", "lr_scheduler_factor"):
        assert len({getattr(m, name) for m in models}) > 16, name
    assert 0.0 in {m.l1 for m in models[1:]} and max(m.l1 for m in models) > 0
    for m in models:
        assert m.learning_rate > 0 and m.wd >= 0 and m.l1 >= 0 and m.lr_scheduler_step >= 1
        assert 0 < m.lr_scheduler_factor < 1 and m.lr_scheduler_minimum_lr > 0
        assert 0 <= m.momentum < 1 and all(math.isfinite(v) for v in (m.learning_rate, m.wd))


def test_sgd_varies_momentum_and_rmsprop_has_its_own_learning_rate() -> None:
    sgd = parse_hyperparameters({**BINARY, "optimizer": "sgd"}).models
    assert sgd[0].momentum == 0.9 and len({m.momentum for m in sgd}) > 1
    rmsprop = parse_hyperparameters({**BINARY, "optimizer": "rmsprop"}).models
    assert rmsprop[0].learning_rate == 0.01 and max(m.learning_rate for m in rmsprop) <= 0.1


def test_given_values_are_the_same_in_every_model() -> None:
    config = parse_hyperparameters(
        {
            **BINARY,
            "learning_rate": "0.02",
            "wd": "0.5",
            "l1": "0",
            "momentum": "0.3",
            "beta_1": "0.8",
            "beta_2": "0.99",
            "bias_lr_mult": "2",
            "bias_wd_mult": "0.1",
            "lr_scheduler_step": "7",
            "lr_scheduler_factor": "0.5",
            "lr_scheduler_minimum_lr": "0.001",
            "use_lr_scheduler": "false",
            "num_models": "5",
        }
    )
    assert len(config.models) == 5
    settings = {
        (m.learning_rate, m.wd, m.l1, m.momentum, m.beta_1, m.beta_2) for m in config.models
    }
    assert settings == {(0.02, 0.5, 0.0, 0.3, 0.8, 0.99)}
    schedule = {
        (m.bias_lr_mult, m.bias_wd_mult, m.use_lr_scheduler, m.lr_scheduler_step,
         m.lr_scheduler_factor, m.lr_scheduler_minimum_lr)
        for m in config.models
    }  # fmt: skip
    assert schedule == {(2.0, 0.1, False, 7, 0.5, 0.001)}


def test_per_model_settings_are_deterministic_given_a_seed() -> None:
    assert parse_hyperparameters(BINARY, seed=3) == parse_hyperparameters(BINARY, seed=3)
    assert parse_hyperparameters(BINARY, seed=3).models != parse_hyperparameters(BINARY).models
    assert (
        parse_hyperparameters(BINARY, seed=3).models[0] == parse_hyperparameters(BINARY).models[0]
    )


def test_positive_example_weight_mult_auto_balanced_and_numbers() -> None:
    auto = parse_hyperparameters({**BINARY, "positive_example_weight_mult": "auto"}).models
    assert auto[0].positive_example_weight_mult == 1.0
    assert auto[1].positive_example_weight_mult == "balanced"
    spread = [m.positive_example_weight_mult for m in auto[2:]]
    assert all(isinstance(w, float) and 0.1 <= w <= 10 for w in spread)
    balanced = parse_hyperparameters({**BINARY, "positive_example_weight_mult": "balanced"})
    assert {m.positive_example_weight_mult for m in balanced.models} == {"balanced"}
    assert {
        m.positive_example_weight_mult
        for m in parse_hyperparameters({**BINARY, "positive_example_weight_mult": "3"}).models
    } == {3.0}
    # Only a binary classifier weighs positive examples.
    regressor = parse_hyperparameters({**REGRESSOR, "positive_example_weight_mult": "auto"})
    assert {m.positive_example_weight_mult for m in regressor.models} == {1.0}


def test_explicit_num_models_and_feature_dim() -> None:
    config = parse_hyperparameters({**BINARY, "num_models": "3", "feature_dim": "12"})
    assert (config.num_models, len(config.models), config.feature_dim) == (3, 3, 12)


# -- L13: tuning --------------------------------------------------------------------------------


@pytest.mark.parametrize("num_models", [None, "auto", "10"])
def test_l13_under_tuning_num_models_is_1(num_models: str | None) -> None:
    hps = {**BINARY, "_tuning_objective_metric": "validation:binary_f_beta"}
    if num_models is not None:
        hps["num_models"] = num_models
    config = parse_hyperparameters(hps)
    assert config.tuning and config.tuning_objective_metric == "validation:binary_f_beta"
    assert config.num_models == 1 and len(config.models) == 1
    assert config.models[0].to_json()["learning_rate"] == 0.1


def test_l13_an_empty_tuning_metric_is_not_tuning() -> None:
    config = parse_hyperparameters({**BINARY, "_tuning_objective_metric": ""})
    assert not config.tuning and config.num_models == 32


# -- the config as JSON -------------------------------------------------------------------------


def test_the_config_and_best_model_line_are_json() -> None:
    config = parse_hyperparameters({**BINARY, "positive_example_weight_mult": "auto"})
    document = json.loads(json.dumps(config.to_json()))
    assert document["predictor_type"] == "binary_classifier"
    assert len(document["models"]) == 32 and document["models"][1]["index"] == 1
    assert document["final"]["epochs"] == "15"
    line = "Best model found for hyperparameters: " + json.dumps(config.models[0].to_json())
    assert line.endswith('"lr_scheduler_minimum_lr": 1e-05}')


def test_the_config_is_frozen() -> None:
    config = parse_hyperparameters(BINARY)
    with pytest.raises(AttributeError):
        config.epochs = 3  # type: ignore[misc]
    assert isinstance(config, LinearLearnerConfig)


# -- any mapping of strings: a config or a ClientError --------------------------------------------

_NAMES = [*sorted(SCHEMA), *HIDDEN_KEYS, "sagemaker_program", "_x"]
_DEFAULT = "<default-input value>"
_TEXTS = st.one_of(
    st.sampled_from(
        ["auto", "balanced", "true", "True", "false", "0", "1", "2", "3", "-1", "0.5", "1.0",
         "1e-9", "nan", "inf", "-inf", "1e999", "", " 1", "1_000", "0x10", "٣",
         *PREDICTOR_TYPES, *sorted({c for cs in EXPECTED_CHOICES.values() for c in cs})]
    ),
    st.text(max_size=12),
    st.integers().map(str),
    st.floats().map(repr),
)  # fmt: skip


@property_settings(300)
@given(
    predictor=st.sampled_from([*PREDICTOR_TYPES, None]),
    known=st.dictionaries(
        st.sampled_from(_NAMES), st.one_of(_TEXTS, st.just(_DEFAULT)), max_size=6
    ),
    # About half the examples carry a key Linear Learner does not have.
    stray=st.just({}) | st.dictionaries(st.text(max_size=8), _TEXTS, min_size=1, max_size=1),
)
def test_any_mapping_of_strings_parses_or_is_a_client_error(
    predictor: str | None, known: dict[str, str], stray: dict[str, str]
) -> None:
    # Mostly known keys (a stray key stops the parse at once), with random, edge or valid text.
    hps = {k: DEFAULT_INPUT.get(k, "auto") if v == _DEFAULT else v for k, v in known.items()}
    hps.update(stray)
    if predictor is not None:
        hps.setdefault("predictor_type", predictor)
    try:
        config = parse_hyperparameters(hps)
    except UserError as exc:
        assert exc.message
        return
    assert len(config.models) == config.num_models >= 1
    json.dumps(config.to_json(), allow_nan=False)
