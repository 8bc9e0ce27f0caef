"""Object Detection's hyperparameters match SageMaker's (reference §5.2; checklist O1-O4, and
the hyperparameter side of O3, O8, O13 and O14)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagedock.containers.hyperparameters import Interval
from sagedock.containers.object_detection.hyperparameters import (
    BASE_NETWORKS,
    DEFAULT_INPUT,
    HIDDEN_KEYS,
    KV_STORES,
    OPTIMIZERS,
    SCHEMA,
    ObjectDetectionConfig,
    parse_hyperparameters,
)
from sagedock.toolkit.encoding import decode_hyperparameter
from sagedock.toolkit.errors import UserError

REQUIRED = {"num_classes": "20", "num_training_samples": "16551"}
_STEPS_ALLOWED = (
    "allowed: epochs as increasing positive integers separated by commas, such as 10,20"
)


def _error(hps: dict[str, Any]) -> str:
    with pytest.raises(UserError) as info:
        parse_hyperparameters(hps)
    assert info.value.describe().startswith("ClientError: ")
    return info.value.message


def _decoded(hps: dict[str, str]) -> dict[str, Any]:
    return {k: decode_hyperparameter(v) for k, v in hps.items()}


def _typed(config: ObjectDetectionConfig | None) -> dict[str, Any] | None:
    """The typed values, without the log text (JSON-decoding rewrites '1e-9' as '1e-09')."""
    if config is None:
        return None
    values = config.to_json()
    for text_field in ("given", "final", "hidden"):
        del values[text_field]
    return values


def test_importing_the_package_imports_no_framework() -> None:
    code = (
        "import sys, sagedock.containers.object_detection.hyperparameters;"
        "print([m for m in ('torch', 'torchvision', 'mxnet', 'numpy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- O1: required keys --------------------------------------------------------------------------


def test_o1_missing_both_required_keys_names_both() -> None:
    assert _error({}) == (
        "No value(s) were specified for 'num_classes', 'num_training_samples' which are "
        "required hyperparameter(s); allowed: positive integers"
    )


@pytest.mark.parametrize("missing", ["num_classes", "num_training_samples"])
def test_o1_missing_one_required_key_names_it(missing: str) -> None:
    hps = {k: v for k, v in REQUIRED.items() if k != missing}
    message = _error(hps)
    assert message.startswith(
        f"No value(s) were specified for '{missing}' which are required hyperparameter(s)"
    )


@pytest.mark.parametrize("empty", ["", "  "])
def test_o1_an_empty_required_value_is_not_specified(empty: str) -> None:
    # default-input.json holds "" for both: an empty value is what "not given" looks like.
    message = _error({**REQUIRED, "num_classes": empty})
    assert message.startswith("No value(s) were specified for 'num_classes' which")


@pytest.mark.parametrize("name", ["num_classes", "num_training_samples"])
@pytest.mark.parametrize("text", ["0", "-3"])
def test_o1_required_keys_are_positive_integers(name: str, text: str) -> None:
    assert _error({**REQUIRED, name: text}) == f"Hyperparameter {name}: {text} is not in [1, +inf)"
    assert _error({**REQUIRED, name: "2.5"}) == (
        f"Hyperparameter {name}: could not parse value '2.5'; allowed: an integer in [1, +inf)"
    )


# -- defaults -----------------------------------------------------------------------------------


def test_defaults_are_the_references() -> None:
    config = parse_hyperparameters(REQUIRED)
    assert (config.num_classes, config.num_training_samples) == (20, 16551)
    assert config.base_network == "vgg-16"
    assert config.use_pretrained_model is True
    assert (config.epochs, config.mini_batch_size) == (30, 32)
    assert config.learning_rate == 0.001
    assert config.lr_scheduler_step == ()
    assert config.lr_scheduler_factor == 0.1
    assert config.optimizer == "sgd"
    assert (config.momentum, config.weight_decay) == (0.9, 0.0005)
    assert (config.overlap_threshold, config.nms_threshold, config.nms_topk) == (0.5, 0.45, 400)
    assert (config.image_shape, config.label_width, config.max_objects) == (300, 350, 69)
    assert config.freeze_layer_pattern == ""
    assert config.kv_store == "device"
    assert config.early_stopping is False
    assert (config.early_stopping_min_epochs, config.early_stopping_patience) == (10, 5)
    assert config.early_stopping_tolerance == 0.0
    assert config.tuning_objective_metric is None and not config.tuning
    assert dict(config.hidden) == {
        "_kvstore": "device",
        "_num_kv_servers": "auto",
        "_tuning_objective_metric": "",
    }


def test_given_and_final_are_the_configuration_log_lines() -> None:
    config = parse_hyperparameters({**REQUIRED, "epochs": 5, "sagemaker_region": "us-east-1"})
    assert dict(config.given) == {**REQUIRED, "epochs": "5"}
    assert dict(config.final) == {**DEFAULT_INPUT, **REQUIRED, "epochs": "5"}
    assert all(isinstance(v, str) for v in config.final.values())


def test_the_schema_is_the_reference_key_list() -> None:
    assert set(SCHEMA) == {k for k in DEFAULT_INPUT if not k.startswith("_")}
    assert set(HIDDEN_KEYS) == {k for k in DEFAULT_INPUT if k.startswith("_")}
    assert [n for n, hp in SCHEMA.items() if hp.required] == [
        "num_classes",
        "num_training_samples",
    ]


#: The ranges, written out from §5.2 (and the module's stated choices), against SCHEMA.
EXPECTED_RANGES = {
    "num_classes": "[1, +inf)",
    "num_training_samples": "[1, +inf)",
    "epochs": "[1, +inf)",
    "mini_batch_size": "[1, +inf)",
    "learning_rate": "(0, 1]",
    "lr_scheduler_step": "[1, +inf)",
    "lr_scheduler_factor": "(0, 1)",
    "momentum": "[0, 1]",
    "weight_decay": "[0, 1)",
    "overlap_threshold": "(0, 1]",
    "nms_threshold": "(0, 1]",
    "nms_topk": "[1, +inf)",
    "image_shape": "[300, +inf)",
    "label_width": "[7, +inf)",
    "early_stopping_min_epochs": "[1, +inf)",
    "early_stopping_patience": "[1, +inf)",
    "early_stopping_tolerance": "[0, 1]",
}
EXPECTED_CHOICES = {
    "base_network": ["vgg-16", "resnet-50"],
    "use_pretrained_model": ["0", "1"],
    "optimizer": ["sgd", "adam", "rmsprop", "adadelta"],
    "kv_store": ["device", "local", "dist_sync", "dist_async", "dist_device_sync"],
    "early_stopping": ["true", "false"],
}


def test_every_range_and_choice_list_is_the_references() -> None:
    assert {n: str(hp.range) for n, hp in SCHEMA.items() if isinstance(hp.range, Interval)} == (
        EXPECTED_RANGES
    )
    assert {n: list(hp.range) for n, hp in SCHEMA.items() if isinstance(hp.range, tuple)} == (
        EXPECTED_CHOICES
    )
    tunable = {n: str(hp.tunable_range) for n, hp in SCHEMA.items() if hp.tunable_range}
    assert tunable == {
        "learning_rate": "[1e-06, 0.5]",
        "mini_batch_size": "[8, 64]",
        "momentum": "[0, 0.999]",
        "weight_decay": "[0, 0.999]",
    }


def test_every_tunable_range_is_inside_the_accepted_range() -> None:
    # A tuning job draws from the tuning ranges: both ends of each must be accepted.
    for name, hp in SCHEMA.items():
        if hp.tunable_range is None:
            continue
        for bound in (hp.tunable_range.min_closed, hp.tunable_range.max_closed):
            parse_hyperparameters({**REQUIRED, name: str(bound)})


# -- every key as a string, and JSON-decoded with the same verdict -------------------------------

#: One accepted text per key, as the SageMaker SDK sends them (``str()`` of Python values).
SDK_STRINGS = {
    "num_classes": "20",
    "num_training_samples": "16551",
    "base_network": "resnet-50",
    "use_pretrained_model": "1",
    "epochs": "12",
    "mini_batch_size": "16",
    "learning_rate": "0.004",
    "lr_scheduler_step": "3,6",
    "lr_scheduler_factor": "0.5",
    "optimizer": "adam",
    "momentum": "0.8",
    "weight_decay": "0.0001",
    "overlap_threshold": "0.6",
    "nms_threshold": "0.4",
    "nms_topk": "200",
    "image_shape": "512",
    "label_width": "600",
    "freeze_layer_pattern": "^(conv1_|conv2_).*",
    "kv_store": "dist_sync",
    "early_stopping": "True",
    "early_stopping_min_epochs": "4",
    "early_stopping_patience": "2",
    "early_stopping_tolerance": "0.01",
    "_kvstore": "dist_sync",
    "_num_kv_servers": "1",
    "_tuning_objective_metric": "validation:mAP",
}


def test_every_key_is_accepted_as_a_string_and_typed() -> None:
    assert set(SDK_STRINGS) == set(DEFAULT_INPUT)
    config = parse_hyperparameters(SDK_STRINGS)
    assert config.base_network == "resnet-50"
    assert config.use_pretrained_model is True
    assert config.lr_scheduler_step == (3, 6)
    assert config.optimizer == "adam"
    assert (config.image_shape, config.label_width, config.max_objects) == (512, 600, 119)
    assert config.freeze_layer_pattern == "^(conv1_|conv2_).*"
    assert config.early_stopping is True
    assert config.tuning_objective_metric == "validation:mAP" and config.tuning
    for name in ("learning_rate", "momentum", "weight_decay", "early_stopping_tolerance"):
        assert getattr(config, name) == float(SDK_STRINGS[name])
    for name, hp in SCHEMA.items():
        value = getattr(config, name)
        assert isinstance(value, {"int": int, "float": float}.get(hp.kind, object))
        assert not isinstance(value, bool) or name in ("early_stopping", "use_pretrained_model")


def test_json_decoded_values_give_the_same_config_as_strings() -> None:
    decoded = _decoded(SDK_STRINGS)
    assert decoded["epochs"] == 12 and decoded["learning_rate"] == 0.004
    assert parse_hyperparameters(decoded) == parse_hyperparameters(SDK_STRINGS)
    lower = {**SDK_STRINGS, "early_stopping": "false", "use_pretrained_model": "0"}
    assert _decoded(lower)["early_stopping"] is False
    assert parse_hyperparameters(_decoded(lower)) == parse_hyperparameters(lower)


@pytest.mark.parametrize("text", ["true", "True", "TRUE", True])
def test_early_stopping_reads_the_sdks_str_true(text: Any) -> None:
    assert parse_hyperparameters({**REQUIRED, "early_stopping": text}).early_stopping is True


@pytest.mark.parametrize("text", ["false", "False", False])
def test_early_stopping_false(text: Any) -> None:
    assert parse_hyperparameters({**REQUIRED, "early_stopping": text}).early_stopping is False


#: Refused texts per key: each must be refused as a string and JSON-decoded alike.
REFUSED = {
    "num_classes": ["0", "-1", "1.5", "x", "1e3", "true", "[1]", "2147483648"],
    "num_training_samples": ["0", "ten", "null"],
    "base_network": ["vgg16", "resnet-101", "VGG-16", "1"],
    "use_pretrained_model": ["2", "-1", "true", "True", "yes", "1.0"],
    "epochs": ["0", "1.0", "inf", "99999999999"],
    "mini_batch_size": ["0", "-8", "8.5"],
    "learning_rate": ["0", "1.5", "-0.1", "nan", "inf", "fast", "1e999"],
    "lr_scheduler_step": ["0", "10,5", "10,10", "a,b", "10,,20", "3.5", "-1,2", "[3, 6]", "3;6"],
    "lr_scheduler_factor": ["0", "1", "1.5", "-inf"],
    "optimizer": ["adagrad", "SGD", "nag"],
    "momentum": ["-0.1", "1.01", "nan"],
    "weight_decay": ["1", "-0.0001", "inf"],
    "overlap_threshold": ["0", "1.1", "NaN"],
    "nms_threshold": ["0", "2", "-inf"],
    "nms_topk": ["0", "-1", "all"],
    "image_shape": ["299", "0", "300.0", "300,300", "3,300,300"],
    "label_width": ["6", "0", "350.5"],
    "freeze_layer_pattern": ["(conv1_", "[", "*conv", "conv(?"],
    "kv_store": ["dist", "nccl", "horovod"],
    "early_stopping": ["yes", "1", "0", "on"],
    "early_stopping_min_epochs": ["0", "1.5"],
    "early_stopping_patience": ["0", "-5"],
    "early_stopping_tolerance": ["-0.1", "1.1", "nan"],
}


def test_every_key_has_refusal_cases() -> None:
    assert set(REFUSED) == set(SCHEMA)


@pytest.mark.parametrize(("name", "text"), [(n, t) for n, ts in REFUSED.items() for t in ts])
def test_a_refusal_names_key_value_and_what_is_allowed(name: str, text: str) -> None:
    hps = {**REQUIRED, name: text}
    message = _error(hps)
    assert message.startswith(f"Hyperparameter {name}: ")
    hp = SCHEMA[name]
    # The value, in some form, and what is allowed (a range, the choices or a description).
    assert text.lower() in message.lower() or str(decode_hyperparameter(text)) in message
    if name == "lr_scheduler_step":
        assert message.endswith(_STEPS_ALLOWED)
    elif isinstance(hp.range, Interval):
        assert str(hp.range) in message or "2147483647" in message
    elif isinstance(hp.range, tuple):
        assert all(choice.lower() in message.lower() for choice in hp.range)
    else:
        assert "allowed: " in message
    # The same verdict for the JSON-decoded value, as TrainingEnv hands it over.
    with pytest.raises(UserError):
        parse_hyperparameters(_decoded(hps))


#: Accepted texts beside the defaults, per key, with the typed value each gives.
ACCEPTED: dict[str, list[tuple[str, Any]]] = {
    "num_classes": [("1", 1), ("2147483647", 2147483647)],
    "num_training_samples": [("1", 1)],
    "base_network": [(b, b) for b in BASE_NETWORKS],
    "use_pretrained_model": [("0", False), ("1", True)],
    "epochs": [("1", 1)],
    "mini_batch_size": [("1", 1), ("64", 64)],
    "learning_rate": [("1", 1.0), ("1e-6", 1e-6), ("0.5", 0.5)],
    "lr_scheduler_step": [("", ()), ("10", (10,)), ("10,20", (10, 20)), ("10, 20", (10, 20)),
                          (" 1 , 2 , 300 ", (1, 2, 300))],
    "lr_scheduler_factor": [("0.5", 0.5), ("0.999", 0.999)],
    "optimizer": [(o, o) for o in OPTIMIZERS],
    "momentum": [("0", 0.0), ("1", 1.0), ("0.999", 0.999)],
    "weight_decay": [("0", 0.0), ("0.999", 0.999)],
    "overlap_threshold": [("1", 1.0), ("0.01", 0.01)],
    "nms_threshold": [("1", 1.0), ("0.3", 0.3)],
    "nms_topk": [("1", 1), ("1000", 1000)],
    "image_shape": [("300", 300), ("512", 512), ("301", 301)],
    "label_width": [("7", 7), ("600", 600)],
    "freeze_layer_pattern": [("", ""), ("^(conv1_|conv2_).*", "^(conv1_|conv2_).*"),
                             ("conv", "conv"), ("stage1_unit[0-9]+", "stage1_unit[0-9]+")],
    "kv_store": [(k, k) for k in KV_STORES],
    "early_stopping": [("True", True), ("False", False)],
    "early_stopping_min_epochs": [("1", 1)],
    "early_stopping_patience": [("1", 1), ("100", 100)],
    "early_stopping_tolerance": [("0", 0.0), ("1", 1.0), ("0.05", 0.05)],
}  # fmt: skip


def test_every_key_has_accepted_cases() -> None:
    assert set(ACCEPTED) == set(SCHEMA)


@pytest.mark.parametrize(
    ("name", "text", "value"), [(n, t, v) for n, cases in ACCEPTED.items() for t, v in cases]
)
def test_accepted_values_as_strings_and_decoded(name: str, text: str, value: Any) -> None:
    hps = {**REQUIRED, name: text}
    config = parse_hyperparameters(hps)
    assert getattr(config, name) == value
    assert type(getattr(config, name)) is type(value)
    assert _typed(parse_hyperparameters(_decoded(hps))) == _typed(config)


# -- O2: the checklist's refusals ----------------------------------------------------------------


def test_o2_base_network_image_shape_and_optimizer() -> None:
    assert _error({**REQUIRED, "base_network": "vgg-19"}) == (
        "Hyperparameter base_network: vgg-19 is not in ['vgg-16', 'resnet-50']"
    )
    assert _error({**REQUIRED, "image_shape": "299"}) == (
        "Hyperparameter image_shape: 299 is not in [300, +inf)"
    )
    assert _error({**REQUIRED, "optimizer": "adagrad"}) == (
        "Hyperparameter optimizer: adagrad is not in ['sgd', 'adam', 'rmsprop', 'adadelta']"
    )


def test_unparsable_values_name_what_is_allowed() -> None:
    assert _error({**REQUIRED, "learning_rate": "fast"}) == (
        "Hyperparameter learning_rate: could not parse value 'fast'; allowed: a number in (0, 1]"
    )
    assert _error({**REQUIRED, "image_shape": "3,300,300"}) == (
        "Hyperparameter image_shape: could not parse value '3,300,300'; "
        "allowed: an integer in [300, +inf)"
    )
    assert "could not parse value 'null'" in _error({**REQUIRED, "epochs": None})
    assert "could not parse value '[1, 2]'" in _error({**REQUIRED, "epochs": [1, 2]})


def test_nan_and_infinity_say_why() -> None:
    assert _error({**REQUIRED, "learning_rate": "nan"}) == (
        "Hyperparameter learning_rate: nan is not in (0, 1] "
        "(NaN and infinity are not numbers in a range)"
    )


def test_integers_past_32_bits_are_refused_with_the_reason() -> None:
    assert _error({**REQUIRED, "epochs": str(2**31)}) == (
        "Hyperparameter epochs: 2147483648 is not in [1, 2147483647]: "
        "the trainer keeps it as a 32-bit integer"
    )


def test_use_pretrained_model_is_0_or_1() -> None:
    assert _error({**REQUIRED, "use_pretrained_model": "True"}) == (
        "Hyperparameter use_pretrained_model: True is not in ['0', '1']"
    )
    assert parse_hyperparameters({**REQUIRED, "use_pretrained_model": 0}).use_pretrained_model is (
        False
    )


# -- O3: lr_scheduler_step and lr_scheduler_factor ----------------------------------------------


def test_o3_the_learning_rate_drops_by_the_factor_after_each_step() -> None:
    config = parse_hyperparameters(
        {**REQUIRED, "learning_rate": "0.1", "lr_scheduler_step": "10,20",
         "lr_scheduler_factor": "0.5"}
    )  # fmt: skip
    assert config.lr_scheduler_step == (10, 20)
    rates = [config.learning_rate_at(epoch) for epoch in range(30)]
    assert rates[:10] == [0.1] * 10  # epochs 1..10 (0-based 0..9)
    assert rates[10:20] == [pytest.approx(0.05)] * 10  # after the 10th epoch
    assert rates[20:] == [pytest.approx(0.025)] * 10  # after the 20th


def test_o3_without_steps_the_factor_does_nothing() -> None:
    config = parse_hyperparameters({**REQUIRED, "lr_scheduler_factor": "0.01"})
    assert {config.learning_rate_at(e) for e in range(100)} == {0.001}


def test_o3_steps_past_the_last_epoch_never_fire() -> None:
    config = parse_hyperparameters({**REQUIRED, "epochs": "5", "lr_scheduler_step": "3,50"})
    assert config.lr_scheduler_step == (3, 50)
    assert [config.learning_rate_at(e) for e in range(5)] == [0.001] * 3 + [
        pytest.approx(0.0001)
    ] * 2


def test_o3_step_refusals_name_the_value() -> None:
    assert _error({**REQUIRED, "lr_scheduler_step": "20,10"}) == (
        f"Hyperparameter lr_scheduler_step: '20,10' is not increasing; {_STEPS_ALLOWED}"
    )
    assert _error({**REQUIRED, "lr_scheduler_step": "10,10"}) == (
        f"Hyperparameter lr_scheduler_step: '10,10' is not increasing; {_STEPS_ALLOWED}"
    )
    assert _error({**REQUIRED, "lr_scheduler_step": "0,10"}) == (
        "Hyperparameter lr_scheduler_step: '0,10' has 0, which is not in [1, +inf); "
        f"{_STEPS_ALLOWED}"
    )
    assert _error({**REQUIRED, "lr_scheduler_step": "10,x"}) == (
        "Hyperparameter lr_scheduler_step: could not parse value '10,x' ('x' is not an "
        f"integer); {_STEPS_ALLOWED}"
    )
    assert "('' is not an integer)" in _error({**REQUIRED, "lr_scheduler_step": "10,"})


def test_o3_the_factor_is_in_the_open_unit_interval() -> None:
    for text in ("0", "1"):
        assert _error({**REQUIRED, "lr_scheduler_factor": text}) == (
            f"Hyperparameter lr_scheduler_factor: {float(text)} is not in (0, 1)"
        )


# -- O4: hidden keys, sagemaker_* keys, extraneous keys ------------------------------------------


def test_o4_hidden_keys_are_accepted() -> None:
    config = parse_hyperparameters(
        {
            **REQUIRED,
            "nms_topk": "400",
            "kv_store": "dist_async",
            "_kvstore": "dist_sync",
            "_num_kv_servers": "auto",
            "_tuning_objective_metric": "validation:mAP",
            "_some_future_key": "x",
        }
    )
    assert config.nms_topk == 400 and config.kv_store == "dist_async"
    assert config.hidden["_kvstore"] == "dist_sync"
    assert config.hidden["_some_future_key"] == "x"
    assert config.tuning_objective_metric == "validation:mAP"


def test_o4_an_empty_tuning_metric_is_not_tuning() -> None:
    config = parse_hyperparameters({**REQUIRED, "_tuning_objective_metric": ""})
    assert config.tuning_objective_metric is None


def test_sagemaker_keys_are_ignored() -> None:
    config = parse_hyperparameters(
        {**REQUIRED, "sagemaker_region": '"us-east-1"', "sagemaker_program": "x.py"}
    )
    assert not any(k.startswith("sagemaker_") for k in (*config.given, *config.final))


def test_an_unknown_key_is_refused_with_a_suggestion() -> None:
    assert _error({**REQUIRED, "lr_scheduler_steps": "10"}) == (
        "Extraneous hyperparameter found: lr_scheduler_steps (did you mean lr_scheduler_step?)"
    )
    assert _error({**REQUIRED, "verbose": "1"}) == "Extraneous hyperparameter found: verbose"


def test_an_extraneous_key_is_reported_before_missing_required_keys() -> None:
    assert _error({"verbose": "1"}) == "Extraneous hyperparameter found: verbose"


# -- O8, O13, O14: the values the trainer reads ---------------------------------------------------


@pytest.mark.parametrize(("width", "objects"), [(7, 1), (11, 1), (12, 2), (350, 69), (600, 119)])
def test_o8_label_width_says_how_many_objects_a_label_holds(width: int, objects: int) -> None:
    assert parse_hyperparameters({**REQUIRED, "label_width": str(width)}).max_objects == objects


def test_o13_early_stopping_settings() -> None:
    config = parse_hyperparameters(
        {**REQUIRED, "early_stopping": "True", "early_stopping_min_epochs": "3",
         "early_stopping_patience": "2", "early_stopping_tolerance": "0.01"}
    )  # fmt: skip
    assert config.early_stopping is True
    assert (config.early_stopping_min_epochs, config.early_stopping_patience) == (3, 2)
    assert config.early_stopping_tolerance == 0.01


def test_o14_freeze_layer_pattern_selects_base_network_parameters() -> None:
    config = parse_hyperparameters({**REQUIRED, "freeze_layer_pattern": "^(conv1_|conv2_).*"})
    assert config.freezes("conv1_1_weight") and config.freezes("conv2_2_bias")
    assert not config.freezes("conv3_1_weight") and not config.freezes("relu4_3_conv1_x")
    # "contains": an unanchored pattern matches anywhere in the name.
    assert parse_hyperparameters({**REQUIRED, "freeze_layer_pattern": "unit1"}).freezes(
        "stage2_unit1_conv1_weight"
    )
    # Empty: nothing frozen (an empty regex would match every name).
    assert not parse_hyperparameters(REQUIRED).freezes("conv1_1_weight")


def test_o14_a_pattern_that_does_not_compile_is_named() -> None:
    assert _error({**REQUIRED, "freeze_layer_pattern": "^(conv1_|conv2_.*"}) == (
        "Hyperparameter freeze_layer_pattern: '^(conv1_|conv2_.*' is not a regular expression: "
        "missing ), unterminated subpattern at position 1; allowed: a Python regular "
        "expression over base-network parameter names, such as ^(conv1_|conv2_).*"
    )


# -- the config ---------------------------------------------------------------------------------


def test_the_config_is_frozen_and_json() -> None:
    config = parse_hyperparameters(SDK_STRINGS)
    assert isinstance(config, ObjectDetectionConfig)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.final["epochs"] = "3"  # type: ignore[index]
    data = json.loads(json.dumps(config.to_json(), allow_nan=False))
    assert data["lr_scheduler_step"] == [3, 6]
    assert data["final"] == {**DEFAULT_INPUT, **SDK_STRINGS}
    hash(config.lr_scheduler_step)


# -- any mapping of strings: a config or a ClientError --------------------------------------------

_NAMES = [*sorted(SCHEMA), *HIDDEN_KEYS, "sagemaker_program", "_x"]
_DEFAULT = "<default-input value>"
_TEXTS = st.one_of(
    st.sampled_from(
        ["", "0", "1", "2", "-1", "0.5", "1.0", "1e-9", "nan", "inf", "-inf", "1e999", " 1",
         "1_000", "0x10", "٣", "300", "512", "True", "False", "true", "null", "[1, 2]",
         "10,20", "20,10", "10, 20", "1,", ",", "(", "^(conv1_|conv2_).*", "\\", "a{99999999999}",
         *BASE_NETWORKS, *OPTIMIZERS, *KV_STORES, str(2**31), str(2**64)]
    ),
    st.text(max_size=12),
    st.integers().map(str),
    st.floats().map(repr),
    st.lists(st.integers(-5, 2**40), max_size=4).map(lambda xs: ",".join(map(str, xs))),
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    known=st.dictionaries(
        st.sampled_from(_NAMES), st.one_of(_TEXTS, st.just(_DEFAULT)), max_size=8
    ),
    with_required=st.booleans(),
    # About half the examples carry a key Object Detection does not have.
    stray=st.just({}) | st.dictionaries(st.text(max_size=8), _TEXTS, min_size=1, max_size=1),
)
def test_any_mapping_of_strings_parses_or_is_a_client_error(
    known: dict[str, str], with_required: bool, stray: dict[str, str]
) -> None:
    hps = {k: DEFAULT_INPUT.get(k, "x") if v == _DEFAULT else v for k, v in known.items()}
    hps.update(stray)
    if with_required:
        for key, value in REQUIRED.items():
            hps.setdefault(key, value)
    for raw in (hps, _decoded(hps)):
        try:
            config = parse_hyperparameters(raw)
        except UserError as exc:
            assert exc.message
            continue
        assert config.num_classes >= 1 and config.image_shape >= 300
        assert list(config.lr_scheduler_step) == sorted(set(config.lr_scheduler_step))
        json.dumps(config.to_json(), allow_nan=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(set(SCHEMA) - {"freeze_layer_pattern"})),
    text=_TEXTS,
)
def test_a_string_and_its_json_decoding_get_the_same_verdict(name: str, text: str) -> None:
    # freeze_layer_pattern is left out: JSON-decoding changes a regex's text ('"\\\\"' is a
    # valid pattern, its decoding '\\' is not), which is TrainingEnv's doing, not ours.
    hps = {**REQUIRED, name: text}
    verdicts = []
    for raw in (hps, _decoded(hps)):
        try:
            verdicts.append(_typed(parse_hyperparameters(raw)))
        except UserError:
            verdicts.append(None)
    assert verdicts[0] == verdicts[1]
