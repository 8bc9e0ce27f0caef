"""The hyperparameters of SageMaker's Linear Learner, validated and with every ``auto`` resolved.

:func:`parse_hyperparameters` takes a job's hyperparameters as SageMaker writes them (every
value a string) or JSON-decoded (``TrainingEnv.hyperparameters``), merges them over
:data:`DEFAULT_INPUT` (the ``default-input.json`` the real container prints at job start) and
returns a frozen :class:`LinearLearnerConfig`, or raises a UserError (``ClientError: ...``)
that names the key, the value and what is allowed:

- ``No value(s) were specified for 'predictor_type' which are required hyperparameter(s)``
  (the wording of SageMaker's first-party algorithms for a missing required key);
- ``For predictor_type 'multiclass_classifier', 'num_classes' should be set to a value greater
  than 2.`` (the SageMaker SDK's check, which the algorithm shares), with the value given;
- ``Extraneous hyperparameter found: <name>`` for a name Linear Learner does not have (keys
  starting with ``_`` are the algorithm's hidden keys and are accepted; ``sagemaker_*`` keys
  are framework parameters and are ignored);
- ``Hyperparameter <name>: could not parse value '<value>' ...; allowed: <what>``;
- ``Hyperparameter <name>: <value> is not in <range>`` (the shared range checks of
  :mod:`sagedock.containers.hyperparameters`: NaN and infinity are never in a range), with
  ``auto`` (or ``balanced``) named where the key takes it;
- ``Hyperparameter loss: <loss> is not allowed with predictor_type <type>; allowed: ...``
  (regressor: squared, absolute, eps-insensitive squared/absolute, quantile, huber; binary:
  logistic, hinge; multiclass: softmax).

How ``auto`` is resolved (SageMaker's Linear Learner is closed source; what is observed or
documented is marked, the rest is our choice and says so):

- ``loss``: regressor -> ``squared_loss``, binary -> ``logistic``, multiclass ->
  ``softmax_loss`` [DOC]. ``optimizer``: ``adam`` [DOC]. ``num_models``: 32 [OBS], and 1
  whenever ``_tuning_objective_metric`` is set, whatever was given [DOC]. Given explicitly,
  ``num_models`` is used as is. ``num_calibration_samples``: 10000000 (default-input) [OBS].
- ``normalize_data``: true. ``normalize_label``: true for a regressor; always false for a
  classifier (SageMaker ignores it there) [DOC]. ``unbias_data``: ``use_bias`` [DOC: "by
  default data is unbiased as use_bias is true"]; SageMaker shifts features only for dense
  data, so :attr:`LinearLearnerConfig.unbias_sparse_data` is true only when ``unbias_data``
  was given as ``true``. ``unbias_label``: a regressor with ``use_bias`` [DOC].
- ``beta_1`` / ``beta_2``: Adam's 0.9 / 0.999 [DOC <= 2018]. ``bias_wd_mult``: 0, no L2 on
  the bias [DOC]. ``bias_lr_mult``: 1 (ours).
- The settings SageMaker varies across its parallel models ("each with slightly different
  objectives: vary L1 or L2 regularization and optimizer settings" [DOC]; the
  ``Best model found for hyperparameters`` lines show them [OBS]): ``learning_rate``, ``wd``,
  ``l1``, ``momentum``, ``lr_scheduler_step``, ``lr_scheduler_factor``,
  ``lr_scheduler_minimum_lr`` and, for a binary classifier, ``positive_example_weight_mult``.
  Each model gets its own :class:`ModelSettings` (:attr:`LinearLearnerConfig.models`):
  model 0 takes the centre values (:data:`AUTO_CENTRE`: learning_rate 0.1 for adam, wd 1e-4,
  l1 0, lr_scheduler_step 100, factor 0.99, minimum_lr 1e-5, the values of SageMaker's logged
  default best model [OBS]); models 1.. draw from :data:`AUTO_SPREAD` (log-uniform or
  uniform ranges around them, ours), from ``random.Random(seed)``: the same seed gives the
  same models. A key given explicitly is the same in every model (the SDK says the other
  models use "close by parameters"; we keep what the user asked for, so a given value is
  reproduced exactly). ``optimizer``, the loss and its parameters are the same in every model.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

from sagedock.toolkit.errors import UserError

from ..hyperparameters import (
    FLOAT32_MAX,
    Hyperparameter,
    Interval,
    Kind,
    LibraryLimit,
    as_text,
    given_hyperparameters,
    parse_text,
    tunable,
)

PredictorType: TypeAlias = Literal["binary_classifier", "multiclass_classifier", "regressor"]
PREDICTOR_TYPES: tuple[str, ...] = ("binary_classifier", "multiclass_classifier", "regressor")

#: The losses each predictor type takes (besides ``auto``), in SageMaker's order.
LOSSES_BY_PREDICTOR: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "binary_classifier": ("logistic", "hinge_loss"),
        "multiclass_classifier": ("softmax_loss",),
        "regressor": (
            "squared_loss",
            "absolute_loss",
            "eps_insensitive_squared_loss",
            "eps_insensitive_absolute_loss",
            "quantile_loss",
            "huber_loss",
        ),
    }
)
#: What ``loss=auto`` means for each predictor type.
AUTO_LOSS: Mapping[str, str] = MappingProxyType(
    {
        "binary_classifier": "logistic",
        "multiclass_classifier": "softmax_loss",
        "regressor": "squared_loss",
    }
)
LOSSES: tuple[str, ...] = (
    "auto",
    "logistic",
    "squared_loss",
    "absolute_loss",
    "hinge_loss",
    "eps_insensitive_squared_loss",
    "eps_insensitive_absolute_loss",
    "quantile_loss",
    "huber_loss",
    "softmax_loss",
)
OPTIMIZERS: tuple[str, ...] = ("auto", "sgd", "adam", "rmsprop")
#: ``accuracy``, ``f_beta``, ... as documented; ``f1`` and ``cross_entropy_loss`` as the SDK
#: also accepts them.
SELECTION_CRITERIA: tuple[str, ...] = (
    "accuracy",
    "f_beta",
    "precision_at_target_recall",
    "recall_at_target_precision",
    "loss_function",
    "f1",
    "cross_entropy_loss",
)

#: Models trained in parallel when ``num_models=auto`` [OBS: dimensions ``model`` 0..31].
AUTO_NUM_MODELS = 32

#: The container's ``default-input.json``, as its job logs print it [OBS 2020]: what a key not
#: given takes. ``predictor_type`` has no default.
DEFAULT_INPUT: Mapping[str, str] = MappingProxyType(
    {
        "loss_insensitivity": "0.01",
        "epochs": "15",
        "feature_dim": "auto",
        "init_bias": "0.0",
        "lr_scheduler_factor": "auto",
        "num_calibration_samples": "10000000",
        "accuracy_top_k": "3",
        "_num_kv_servers": "auto",
        "use_bias": "true",
        "num_point_for_scaler": "10000",
        "_log_level": "info",
        "quantile": "0.5",
        "bias_lr_mult": "auto",
        "lr_scheduler_step": "auto",
        "init_method": "uniform",
        "init_sigma": "0.01",
        "lr_scheduler_minimum_lr": "auto",
        "target_recall": "0.8",
        "num_models": "auto",
        "early_stopping_patience": "3",
        "momentum": "auto",
        "unbias_label": "auto",
        "wd": "auto",
        "optimizer": "auto",
        "_tuning_objective_metric": "",
        "early_stopping_tolerance": "0.001",
        "learning_rate": "auto",
        "_kvstore": "auto",
        "normalize_data": "true",
        "binary_classifier_model_selection_criteria": "accuracy",
        "use_lr_scheduler": "true",
        "target_precision": "0.8",
        "unbias_data": "auto",
        "init_scale": "0.07",
        "bias_wd_mult": "auto",
        "f_beta": "1.0",
        "mini_batch_size": "1000",
        "huber_delta": "1.0",
        "num_classes": "1",
        "beta_1": "auto",
        "loss": "auto",
        "beta_2": "auto",
        "_enable_profiler": "false",
        "normalize_label": "auto",
        "_num_gpus": "auto",
        "balance_multiclass_weights": "false",
        "positive_example_weight_mult": "1.0",
        "l1": "auto",
        "margin": "1.0",
    }
)

# -- the schema ---------------------------------------------------------------------------------

_TRUE_FALSE = ("true", "false")
_AUTO_TRUE_FALSE = ("auto", "true", "false")
# The models train in 32-bit floats: a float past the largest one would be infinity there.
_F32 = LibraryLimit(
    Interval(min_closed=-FLOAT32_MAX, max_closed=FLOAT32_MAX), "the models train in 32-bit floats"
)
_POSITIVE = Interval(min_open=0)
_NON_NEGATIVE = Interval(min_closed=0)
_UNIT_OPEN = Interval(min_open=0, max_open=1)
_UNIT_HALF_OPEN = Interval(min_closed=0, max_open=1)
_AT_LEAST_1 = Interval(min_closed=1)


def _hp(
    name: str, kind: Kind, allowed: Interval | tuple[Any, ...] | None = None, **kw: Any
) -> Hyperparameter:
    if kind == "float":
        kw.setdefault("library_limit", _F32)
    return Hyperparameter(name=name, kind=kind, range=allowed, **kw)


#: Every hyperparameter of §4.2, in the reference's order: the single source of truth for
#: validation, the README table and the tests. Booleans are categorical ``true``/``false``
#: (read case-insensitively: the SDK sends ``str(True)``).
SCHEMA: Mapping[str, Hyperparameter] = MappingProxyType(
    {
        hp.name: hp
        for hp in (
            _hp("predictor_type", "categorical", PREDICTOR_TYPES, required=True),
            _hp("num_classes", "int", Interval(min_closed=1, max_closed=1_000_000),
                description="3..1000000 and required with multiclass_classifier"),
            _hp("feature_dim", "int", _AT_LEAST_1),
            _hp("mini_batch_size", "int", _AT_LEAST_1, tunable_range=tunable(100, 5000)),
            _hp("epochs", "int", _AT_LEAST_1),
            _hp("num_models", "int", _AT_LEAST_1),
            _hp("num_calibration_samples", "int", _AT_LEAST_1),
            _hp("loss", "categorical", LOSSES),
            _hp("optimizer", "categorical", OPTIMIZERS),
            _hp("learning_rate", "float", _POSITIVE, tunable_range=tunable(1e-5, 1)),
            _hp("momentum", "float", _UNIT_HALF_OPEN),
            _hp("beta_1", "float", _UNIT_HALF_OPEN),
            _hp("beta_2", "float", _UNIT_HALF_OPEN),
            _hp("wd", "float", _NON_NEGATIVE, tunable_range=tunable(1e-7, 1)),
            _hp("l1", "float", _NON_NEGATIVE, tunable_range=tunable(1e-7, 1)),
            _hp("bias_lr_mult", "float", _POSITIVE),
            _hp("bias_wd_mult", "float", _NON_NEGATIVE),
            _hp("use_bias", "categorical", _TRUE_FALSE),
            _hp("init_method", "categorical", ("uniform", "normal")),
            _hp("init_scale", "float", _POSITIVE),
            _hp("init_sigma", "float", _POSITIVE),
            _hp("init_bias", "float", Interval()),
            _hp("use_lr_scheduler", "categorical", _TRUE_FALSE),
            _hp("lr_scheduler_step", "int", _AT_LEAST_1),
            _hp("lr_scheduler_factor", "float", _UNIT_OPEN),
            _hp("lr_scheduler_minimum_lr", "float", _POSITIVE),
            _hp("normalize_data", "categorical", _AUTO_TRUE_FALSE),
            _hp("normalize_label", "categorical", _AUTO_TRUE_FALSE),
            _hp("unbias_data", "categorical", _AUTO_TRUE_FALSE),
            _hp("unbias_label", "categorical", _AUTO_TRUE_FALSE),
            _hp("num_point_for_scaler", "int", _AT_LEAST_1),
            _hp("binary_classifier_model_selection_criteria", "categorical",
                SELECTION_CRITERIA),
            _hp("target_recall", "float", _UNIT_OPEN),
            _hp("target_precision", "float", _UNIT_OPEN),
            _hp("f_beta", "float", _POSITIVE),
            _hp("positive_example_weight_mult", "float", _POSITIVE,
                tunable_range=tunable(1e-5, 1e5)),
            _hp("balance_multiclass_weights", "categorical", _TRUE_FALSE),
            _hp("accuracy_top_k", "int", Interval(min_closed=1, max_closed=1_000_000)),
            _hp("margin", "float", _NON_NEGATIVE, description="hinge_loss"),
            _hp("quantile", "float", _UNIT_OPEN, description="quantile_loss"),
            _hp("loss_insensitivity", "float", _POSITIVE, description="eps_insensitive_*"),
            _hp("huber_delta", "float", _NON_NEGATIVE, description="huber_loss"),
            _hp("early_stopping_patience", "int", _AT_LEAST_1),
            _hp("early_stopping_tolerance", "float", _POSITIVE),
        )
    }
)  # fmt: skip

#: The words a key takes besides its typed value.
WORDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        **{
            name: ("auto",)
            for name in (
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
            )
        },
        "positive_example_weight_mult": ("auto", "balanced"),
    }
)

_BOOLEANS = frozenset(
    name
    for name, hp in SCHEMA.items()
    if isinstance(hp.range, tuple) and set(hp.range) <= set(_AUTO_TRUE_FALSE)
)

#: The hidden keys of default-input.json [OBS]; any other ``_`` key is accepted too.
HIDDEN_KEYS: tuple[str, ...] = (
    "_kvstore",
    "_num_kv_servers",
    "_num_gpus",
    "_log_level",
    "_enable_profiler",
    "_tuning_objective_metric",
)

# -- per-model settings -------------------------------------------------------------------------

#: Model 0's value of each per-model ``auto`` key (the others draw from :data:`AUTO_SPREAD`).
#: The learning rate and momentum depend on the optimizer.
AUTO_CENTRE: Mapping[str, Any] = MappingProxyType(
    {
        "learning_rate": MappingProxyType({"adam": 0.1, "sgd": 0.1, "rmsprop": 0.01}),
        "momentum": MappingProxyType({"adam": 0.0, "sgd": 0.9, "rmsprop": 0.0}),
        "wd": 1e-4,
        "l1": 0.0,
        "lr_scheduler_step": 100,
        "lr_scheduler_factor": 0.99,
        "lr_scheduler_minimum_lr": 1e-5,
        "positive_example_weight_mult": 1.0,
    }
)
#: Where models 1.. draw each per-model ``auto`` key from (ours; inside the documented ranges
#: and SageMaker's tuning ranges): ``("log", low, high)`` log-uniform, ``("uniform", low,
#: high)``, ``("choice", values)``. ``l1`` is 0 for half the models, log-uniform for the rest.
AUTO_SPREAD: Mapping[str, Any] = MappingProxyType(
    {
        "learning_rate": MappingProxyType(
            {"adam": ("log", 1e-3, 1.0), "sgd": ("log", 1e-3, 1.0), "rmsprop": ("log", 1e-4, 0.1)}
        ),
        "momentum": MappingProxyType(
            {
                "adam": ("choice", (0.0,)),
                "sgd": ("choice", (0.0, 0.5, 0.9, 0.95, 0.99)),
                "rmsprop": ("choice", (0.0, 0.5, 0.9)),
            }
        ),
        "wd": ("log", 1e-7, 1e-1),
        "l1": ("log", 1e-7, 1e-1),
        "lr_scheduler_step": ("log", 10, 1000),
        "lr_scheduler_factor": ("uniform", 0.9, 0.999),
        "lr_scheduler_minimum_lr": ("log", 1e-6, 1e-4),
        "positive_example_weight_mult": ("log", 0.1, 10.0),
    }
)
#: Adam's decay rates and the bias multipliers for ``auto``: the same in every model.
AUTO_FIXED: Mapping[str, float] = MappingProxyType(
    {"beta_1": 0.9, "beta_2": 0.999, "bias_lr_mult": 1.0, "bias_wd_mult": 0.0}
)

PositiveWeight: TypeAlias = float | Literal["balanced"]


@dataclass(frozen=True)
class ModelSettings:
    """What one of the ``num_models`` parallel models trains with."""

    index: int
    optimizer: str
    learning_rate: float
    wd: float
    l1: float
    momentum: float
    beta_1: float
    beta_2: float
    bias_lr_mult: float
    bias_wd_mult: float
    use_lr_scheduler: bool
    lr_scheduler_step: int
    lr_scheduler_factor: float
    lr_scheduler_minimum_lr: float
    #: ``"balanced"``: the trainer weighs positives by negatives / positives of the data.
    positive_example_weight_mult: PositiveWeight
    loss: str
    margin: float
    quantile: float
    loss_insensitivity: float
    huber_delta: float

    def to_json(self) -> dict[str, Any]:
        """The ``Best model found for hyperparameters: {...}`` dict, with SageMaker's keys in
        its order [OBS 2024]."""
        return {
            "optimizer": self.optimizer,
            "learning_rate": self.learning_rate,
            "l1": self.l1,
            "wd": self.wd,
            "lr_scheduler_step": self.lr_scheduler_step,
            "lr_scheduler_factor": self.lr_scheduler_factor,
            "lr_scheduler_minimum_lr": self.lr_scheduler_minimum_lr,
        }


@dataclass(frozen=True)
class LinearLearnerConfig:
    """Validated hyperparameters, every ``auto`` resolved; :attr:`models` per parallel model."""

    predictor_type: PredictorType
    #: multiclass: the given count (3..1000000); binary: 2; regressor: 1.
    num_classes: int
    #: ``None``: ``auto``, taken from the data.
    feature_dim: int | None
    mini_batch_size: int
    epochs: int
    num_models: int
    num_calibration_samples: int
    loss: str
    optimizer: str
    use_bias: bool
    init_method: str
    init_scale: float
    init_sigma: float
    init_bias: float
    normalize_data: bool
    normalize_label: bool
    unbias_data: bool
    #: Shift sparse features too (only when ``unbias_data=true`` was given).
    unbias_sparse_data: bool
    unbias_label: bool
    num_point_for_scaler: int
    binary_classifier_model_selection_criteria: str
    target_recall: float
    target_precision: float
    f_beta: float
    balance_multiclass_weights: bool
    accuracy_top_k: int
    early_stopping_patience: int
    early_stopping_tolerance: float
    #: ``validation:objective_loss`` etc. when a tuning job runs this one; else ``None``.
    tuning_objective_metric: str | None
    models: tuple[ModelSettings, ...]
    #: The ``_*`` keys, as text (defaults merged).
    hidden: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: What the job gave (canonical text, ``sagemaker_*`` left out), for the
    #: ``Merging with provided configuration`` log line.
    given: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: default-input merged with :attr:`given`, as text: the ``Final configuration`` line.
    final: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def num_outputs(self) -> int:
        """Columns of each model's weight matrix: ``num_classes`` for multiclass, else 1."""
        return self.num_classes if self.predictor_type == "multiclass_classifier" else 1

    @property
    def tuning(self) -> bool:
        return self.tuning_objective_metric is not None

    def to_json(self) -> dict[str, Any]:
        """Every resolved value (per-model settings as a list), JSON-ready."""
        result: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "models":
                value = [asdict(m) for m in value]
            elif isinstance(value, Mapping):
                value = dict(value)
            result[name] = value
        return result


# -- parsing ------------------------------------------------------------------------------------


def _allowed(name: str) -> str:
    hp = SCHEMA[name]
    words = WORDS.get(name, ())
    if isinstance(hp.range, tuple):
        return ", ".join(hp.range)
    what = {"int": "an integer", "float": "a number"}[hp.kind] + f" in {hp.range}"
    return " or ".join([*words, what]) if words else what


def _parse_one(name: str, value: Any) -> Any:
    hp = SCHEMA[name]
    text = as_text(value)
    if text in WORDS.get(name, ()):
        return text
    if name in _BOOLEANS:
        text = text.lower()
    parsed = parse_text(hp, text, _allowed(name))
    try:
        hp.validate_range(parsed)
    except UserError as exc:
        words = WORDS.get(name, ())
        if not words:
            raise
        raise UserError(f"{exc.message}; allowed: {_allowed(name)}") from None
    return parsed


def parse_hyperparameters(raw: Mapping[str, Any], *, seed: int = 0) -> LinearLearnerConfig:
    """Validate a job's hyperparameters (strings or JSON-decoded values) and resolve every
    ``auto`` as SageMaker's Linear Learner does; a UserError says what is wrong. *seed* decides
    the per-model settings drawn for ``auto`` keys (the same seed, the same models)."""
    given = given_hyperparameters(raw, SCHEMA)
    if "predictor_type" not in given:
        raise UserError(
            "No value(s) were specified for 'predictor_type' which are required "
            f"hyperparameter(s); allowed: {', '.join(PREDICTOR_TYPES)}"
        )
    final = {**DEFAULT_INPUT, **given}
    values = {name: _parse_one(name, final[name]) for name in SCHEMA}
    predictor: PredictorType = values["predictor_type"]

    num_classes = values["num_classes"]
    if predictor == "multiclass_classifier":
        if num_classes < 3:
            shown = given.get("num_classes", "not set")
            raise UserError(
                "For predictor_type 'multiclass_classifier', 'num_classes' should be set to a "
                f"value greater than 2. num_classes: {shown} (allowed: integers from 3 to 1000000)"
            )
    else:
        num_classes = 2 if predictor == "binary_classifier" else 1

    loss = values["loss"]
    allowed_losses = LOSSES_BY_PREDICTOR[predictor]
    if loss == "auto":
        loss = AUTO_LOSS[predictor]
    elif loss not in allowed_losses:
        raise UserError(
            f"Hyperparameter loss: {loss} is not allowed with predictor_type {predictor}; "
            f"allowed: auto, {', '.join(allowed_losses)}"
        )

    hidden = {k: v for k, v in final.items() if k.startswith("_")}
    tuning_metric = hidden.get("_tuning_objective_metric") or None
    num_models = values["num_models"]
    if tuning_metric is not None:
        num_models = 1
    elif num_models == "auto":
        num_models = AUTO_NUM_MODELS

    optimizer = "adam" if values["optimizer"] == "auto" else values["optimizer"]
    use_bias = values["use_bias"] == "true"
    regressor = predictor == "regressor"

    def auto_bool(name: str, auto: bool) -> bool:
        value = values[name]
        return auto if value == "auto" else value == "true"

    config_models = _models(values, num_models, optimizer, loss, predictor, seed)
    return LinearLearnerConfig(
        predictor_type=predictor,
        num_classes=num_classes,
        feature_dim=None if values["feature_dim"] == "auto" else values["feature_dim"],
        mini_batch_size=values["mini_batch_size"],
        epochs=values["epochs"],
        num_models=num_models,
        num_calibration_samples=(
            int(DEFAULT_INPUT["num_calibration_samples"])
            if values["num_calibration_samples"] == "auto"
            else values["num_calibration_samples"]
        ),
        loss=loss,
        optimizer=optimizer,
        use_bias=use_bias,
        init_method=values["init_method"],
        init_scale=values["init_scale"],
        init_sigma=values["init_sigma"],
        init_bias=values["init_bias"],
        normalize_data=auto_bool("normalize_data", True),
        normalize_label=regressor and auto_bool("normalize_label", True),
        unbias_data=auto_bool("unbias_data", use_bias),
        unbias_sparse_data=values["unbias_data"] == "true",
        unbias_label=regressor and auto_bool("unbias_label", use_bias),
        num_point_for_scaler=values["num_point_for_scaler"],
        binary_classifier_model_selection_criteria=values[
            "binary_classifier_model_selection_criteria"
        ],
        target_recall=values["target_recall"],
        target_precision=values["target_precision"],
        f_beta=values["f_beta"],
        balance_multiclass_weights=values["balance_multiclass_weights"] == "true",
        accuracy_top_k=values["accuracy_top_k"],
        early_stopping_patience=values["early_stopping_patience"],
        early_stopping_tolerance=values["early_stopping_tolerance"],
        tuning_objective_metric=tuning_metric,
        models=config_models,
        hidden=MappingProxyType(hidden),
        given=MappingProxyType(given),
        final=MappingProxyType(final),
    )


def _draw(rng: random.Random, spread: tuple[Any, ...]) -> Any:
    kind = spread[0]
    if kind == "choice":
        return rng.choice(spread[1])
    low, high = spread[1], spread[2]
    if kind == "uniform":
        return rng.uniform(low, high)
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _models(
    values: Mapping[str, Any],
    num_models: int,
    optimizer: str,
    loss: str,
    predictor: str,
    seed: int,
) -> tuple[ModelSettings, ...]:
    rng = random.Random(seed)

    def per_model(name: str, index: int) -> Any:
        value = values[name]
        if value != "auto":
            return value
        centre = AUTO_CENTRE[name]
        spread = AUTO_SPREAD[name]
        if isinstance(centre, Mapping):
            centre, spread = centre[optimizer], spread[optimizer]
        if index == 0:
            return centre
        if name == "l1" and rng.random() < 0.5:
            return 0.0
        drawn = _draw(rng, spread)
        return round(drawn) if name == "lr_scheduler_step" else drawn

    def fixed(name: str) -> float:
        value = values[name]
        return AUTO_FIXED[name] if value == "auto" else float(value)

    def positive_weight(index: int) -> PositiveWeight:
        value = values["positive_example_weight_mult"]
        if predictor != "binary_classifier":
            return 1.0
        if value == "balanced":
            return "balanced"
        if value != "auto":
            return float(value)
        # auto: model 0 unweighted, model 1 balanced, the others spread around 1.
        if index == 0:
            return float(AUTO_CENTRE["positive_example_weight_mult"])
        if index == 1:
            return "balanced"
        return float(_draw(rng, AUTO_SPREAD["positive_example_weight_mult"]))

    models = []
    for index in range(num_models):
        models.append(
            ModelSettings(
                index=index,
                optimizer=optimizer,
                learning_rate=float(per_model("learning_rate", index)),
                wd=float(per_model("wd", index)),
                l1=float(per_model("l1", index)),
                momentum=float(per_model("momentum", index)),
                beta_1=fixed("beta_1"),
                beta_2=fixed("beta_2"),
                bias_lr_mult=fixed("bias_lr_mult"),
                bias_wd_mult=fixed("bias_wd_mult"),
                use_lr_scheduler=values["use_lr_scheduler"] == "true",
                lr_scheduler_step=int(per_model("lr_scheduler_step", index)),
                lr_scheduler_factor=float(per_model("lr_scheduler_factor", index)),
                lr_scheduler_minimum_lr=float(per_model("lr_scheduler_minimum_lr", index)),
                positive_example_weight_mult=positive_weight(index),
                loss=loss,
                margin=values["margin"],
                quantile=values["quantile"],
                loss_insensitivity=values["loss_insensitivity"],
                huber_delta=values["huber_delta"],
            )
        )
    return tuple(models)
