"""The hyperparameters of SageMaker's XGBoost algorithm (1.7-1 / 3.0-5), validated the same way.

:func:`validate` takes the job's hyperparameters, as SageMaker writes them (every value a
string) or JSON-decoded (``TrainingEnv.hyperparameters``), and returns a
:class:`Hyperparameters` or raises a UserError with SageMaker's message:

- aliases first (``learning_rate`` -> ``eta``, ``min_split_loss`` -> ``gamma``,
  ``reg_lambda`` -> ``lambda``, ``reg_alpha`` -> ``alpha``);
- ``Missing required hyperparameter: num_round``;
- ``Extraneous hyperparameter found: <name>`` for a name not in :data:`SCHEMA`;
- ``Hyperparameter <name>: could not parse value (caused by ValueError)``;
- ``Hyperparameter <name>: <value> is not in <range>`` (``[1, +inf)``, ``(0, 1]``, ...), NaN
  and infinity included (:mod:`sagedock.containers.hyperparameters` decides what a range is);
- ``Hyperparameter <name>: <value> is not in <range>: <reason>`` for a value SageMaker's range
  allows but XGBoost refuses (``max_bin=0``, a ``gamma`` past the largest 32-bit float);
- the dependency checks (``num_class`` for ``multi:*``, ``auc`` only for binary and ranking
  objectives, ``monotone_constraints`` needing ``tree_method`` exact or hist, ...).

Where SageMaker's container has a plain bug this module answers clearly instead (each is
listed in the README): ``eval_metric`` without ``objective`` is checked against XGBoost's
default objective instead of crashing with ``KeyError: 'objective'``; the objective
``aft_loss_distribution`` (a parameter name in the container's objective list) is refused;
tuple and list values are read with ``ast.literal_eval``, never ``eval``.

The container sets no defaults: what is not given is XGBoost's default. Keys starting with
``sagemaker_`` are framework parameters, not hyperparameters, and are ignored here.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sagedock.toolkit.errors import UserError

from ..hyperparameters import (
    INT32_MAX,
    DependencyCheck,
    Hyperparameter,
    Interval,
    Kind,
    LibraryLimit,
    float32,
    int32,
    tunable,
)
from .metrics import METRIC_NAMES, TUNING_METRIC_NAMES

logger = logging.getLogger(__name__)

# -- dependency checks (messages are SageMaker's) ----------------------------------------------

_TREE_PLUGINS = (
    "grow_colmaker",
    "distcol",
    "grow_histmaker",
    "grow_local_histmaker",
    "grow_skmaker",
    "sync",
    "refresh",
    "prune",
    "grow_quantile_histmaker",
)
_TREE_GROW_PLUGINS = (
    "grow_colmaker",
    "distcol",
    "grow_histmaker",
    "grow_local_histmaker",
    "grow_quantile_histmaker",
)
_LINEAR_PLUGINS = ("shotgun", "coord_descent")
_UPDATE_PLUGINS = ("refresh", "prune")


def _check_updater(value: list[str], deps: Mapping[str, Any]) -> None:
    if deps.get("booster") == "gblinear":
        if not (len(value) == 1 and value[0] in _LINEAR_PLUGINS):
            raise UserError(
                "Linear updater should be one of these options: 'shotgun', 'coord_descent'."
            )
    elif deps.get("process_type") == "update":
        if not all(v in _UPDATE_PLUGINS for v in value):
            raise UserError(
                "process_type 'update' can only be used with updater 'refresh' and 'prune'"
            )
    else:
        if not all(v in _TREE_PLUGINS for v in value):
            raise UserError(
                "Tree updater should be selected from these options: 'grow_colmaker', "
                "'distcol', 'grow_histmaker', 'grow_local_histmaker', 'grow_skmaker', "
                "'grow_quantile_histmaker', 'sync', 'refresh', 'prune', 'shortgun', "
                "'coord_descent'."
            )
        if sum(v in _TREE_GROW_PLUGINS for v in value) > 1:
            raise UserError(
                "Only one tree grow plugin can be selected. Choose one from the following: "
                "'grow_colmaker', 'distcol', 'grow_histmaker', 'grow_local_histmaker', "
                "'grow_skmaker'"
            )


def _check_objective(value: str, deps: Mapping[str, Any]) -> None:
    if value in ("multi:softmax", "multi:softprob") and deps.get("num_class") is None:
        raise UserError("Require input for parameter 'num_class' for multi-classification")
    if value == "aft_loss_distribution":
        # In SageMaker's objective list by mistake (it is a parameter of survival:aft);
        # XGBoost would fail with "Unknown objective function".
        raise UserError(
            "Hyperparameter objective: aft_loss_distribution is not an objective; use "
            "objective=survival:aft and set aft_loss_distribution to normal, logistic or extreme"
        )


#: XGBoost's default objective, used to check ``eval_metric`` when no objective is given.
DEFAULT_OBJECTIVE = "reg:squarederror"


def _check_eval_metric(value: list[str], deps: Mapping[str, Any]) -> None:
    objective = deps.get("objective") or DEFAULT_OBJECTIVE
    if "auc" in value and not objective.startswith(("binary:", "rank:")):
        raise UserError("Metric 'auc' can only be applied for classification and ranking problems.")
    if "aft-nloglik" in value and objective != "survival:aft":
        raise UserError("Metric 'aft-nloglik' can only be applied for 'survival:aft' objective.")


def _eval_metric_item(metric: str) -> bool:
    if "<function" in metric:
        raise UserError(f"User defined evaluation metric {metric} is not supported yet.")
    if "@" in metric:
        name, threshold = (part.strip() for part in metric.split("@", 1))
        if name not in ("error", "ndcg", "map"):
            raise UserError(
                f"Metric '{metric}' is not supported. Parameter 'eval_metric' with customized "
                "threshold should be one of these options: 'error', 'ndcg', 'map'."
            )
        try:
            finite = math.isfinite(float(threshold))
        except ValueError:
            finite = False
        if not finite:  # error@nan would compare false with every prediction
            raise UserError(f"Threshold value 't' in '{name}@t' expects float input.")
        return True
    return metric in METRIC_NAMES


def _constraint_check(name: str, methods: tuple[str, ...], wording: str) -> DependencyCheck:
    def check(value: Any, deps: Mapping[str, Any]) -> None:
        if value is not None and deps.get("tree_method") not in methods:
            raise UserError(
                f"{name} can be used only when the tree_method parameter is set to {wording}."
            )

    return check


_TREE_METHODS = ("auto", "exact", "approx", "hist", "gpu_hist")
_OBJECTIVES = (
    "aft_loss_distribution",
    "binary:logistic",
    "binary:logitraw",
    "binary:hinge",
    "count:poisson",
    "multi:softmax",
    "multi:softprob",
    "rank:pairwise",
    "rank:ndcg",
    "rank:map",
    "reg:linear",
    "reg:squarederror",
    "reg:logistic",
    "reg:gamma",
    "reg:pseudohubererror",
    "reg:squaredlogerror",
    "reg:absoluteerror",
    "reg:tweedie",
    "survival:aft",
    "survival:cox",
)
_TRUE_FALSE = ("true", "false")


def _hp(
    name: str, kind: Kind, allowed: Interval | tuple[Any, ...] | None = None, **kw: Any
) -> Hyperparameter:
    return Hyperparameter(name=name, kind=kind, range=allowed, **kw)


# Where XGBoost itself takes less than SageMaker documents (its parameter docs and the bounds
# its C++ parameter structs declare): the values reach XGBoost's C++ core as 32-bit ints and
# floats, and a histogram needs 2 bins. SageMaker's container passes such values on and the job
# fails in XGBoost (``Check failed: max_bin >= 2``, ``Out of range value for min_split_loss``)
# or, for a max_bin past 2**31 - 1, wraps around; here they are refused before data is read.
_INT32_FROM_0 = int32("XGBoost", low=0)
_INT32_FROM_1 = int32("XGBoost", low=1)
_FLOAT32_FROM_0 = float32("XGBoost", low=0)
_MAX_BIN = LibraryLimit(
    Interval(min_closed=2, max_closed=INT32_MAX),
    "XGBoost needs at least 2 bins per feature and keeps max_bin as a 32-bit integer",
)

#: Every hyperparameter, in SageMaker's order. The single source of truth for validation, the
#: README table and the tests.
SCHEMA: Mapping[str, Hyperparameter] = MappingProxyType(
    {
        hp.name: hp
        for hp in (
            _hp("num_round", "int", Interval(min_closed=1), required=True,
                tunable_range=tunable(1, 4000), description="boosting rounds"),
            _hp("csv_weights", "int", Interval(min_closed=0, max_closed=1),
                description="1: CSV column 1 is the instance weight"),
            _hp("early_stopping_rounds", "int", Interval(min_closed=1),
                description="rounds without improvement of the validation metric"),
            _hp("booster", "categorical", ("gbtree", "gblinear", "dart")),
            _hp("verbosity", "int", Interval(min_closed=0, max_closed=3)),
            _hp("nthread", "int", Interval(min_closed=1), library_limit=_INT32_FROM_1),
            _hp("eta", "float", Interval(min_closed=0, max_closed=1),
                tunable_range=tunable(0.1, 0.5)),
            _hp("gamma", "float", Interval(min_closed=0), tunable_range=tunable(0, 5),
                library_limit=_FLOAT32_FROM_0),
            _hp("max_depth", "int", Interval(min_closed=0), tunable_range=tunable(0, 10),
                library_limit=_INT32_FROM_0),
            _hp("min_child_weight", "float", Interval(min_closed=0),
                tunable_range=tunable(0, 120), library_limit=_FLOAT32_FROM_0),
            _hp("max_delta_step", "float", Interval(min_closed=0), tunable_range=tunable(0, 10),
                library_limit=_FLOAT32_FROM_0),
            _hp("subsample", "float", Interval(min_open=0, max_closed=1),
                tunable_range=tunable(0.5, 1)),
            _hp("colsample_bytree", "float", Interval(min_open=0, max_closed=1),
                tunable_range=tunable(0.5, 1)),
            _hp("colsample_bylevel", "float", Interval(min_open=0, max_closed=1),
                tunable_range=tunable(0.1, 1)),
            _hp("colsample_bynode", "float", Interval(min_open=0, max_closed=1),
                tunable_range=tunable(0.1, 1)),
            _hp("lambda", "float", Interval(min_closed=0), tunable_range=tunable(0, 1000),
                library_limit=_FLOAT32_FROM_0),
            _hp("alpha", "float", Interval(min_closed=0), tunable_range=tunable(0, 1000),
                library_limit=_FLOAT32_FROM_0),
            _hp("tree_method", "categorical", _TREE_METHODS),
            _hp("sketch_eps", "float", Interval(min_open=0, max_open=1)),
            _hp("scale_pos_weight", "float", Interval(min_open=0), library_limit=_FLOAT32_FROM_0),
            _hp("updater", "list", _TREE_PLUGINS[:-1] + _LINEAR_PLUGINS,
                depends_on=("booster", "process_type"), check=_check_updater),
            _hp("dsplit", "categorical", ("row", "col")),
            _hp("refresh_leaf", "int", Interval(min_closed=0, max_closed=1)),
            _hp("process_type", "categorical", ("default", "update")),
            _hp("grow_policy", "categorical", ("depthwise", "lossguide")),
            _hp("max_leaves", "int", Interval(min_closed=0), library_limit=_INT32_FROM_0),
            _hp("max_bin", "int", Interval(min_closed=0), library_limit=_MAX_BIN),
            _hp("predictor", "categorical", ("auto", "cpu_predictor", "gpu_predictor")),
            _hp("monotone_constraints", "tuple", (-1, 0, 1), depends_on=("tree_method",),
                check=_constraint_check("monotone_constraints", ("exact", "hist"),
                                        "either 'exact' or 'hist'")),
            _hp("interaction_constraints", "nested_list", Interval(min_closed=1),
                depends_on=("tree_method",),
                check=_constraint_check("interaction_constraints", ("exact", "hist", "approx"),
                                        "either 'exact', 'hist' or 'approx'")),
            _hp("sample_type", "categorical", ("uniform", "weighted")),
            _hp("normalize_type", "categorical", ("tree", "forest")),
            _hp("rate_drop", "float", Interval(min_closed=0, max_closed=1)),
            _hp("one_drop", "int", Interval(min_closed=0, max_closed=1)),
            _hp("skip_drop", "float", Interval(min_closed=0, max_closed=1)),
            _hp("lambda_bias", "float", Interval(min_closed=0, max_closed=1)),
            _hp("tweedie_variance_power", "float", Interval(min_open=1, max_open=2)),
            _hp("objective", "categorical", _OBJECTIVES, depends_on=("num_class",),
                check=_check_objective),
            _hp("num_class", "int", Interval(min_closed=2), library_limit=_INT32_FROM_0),
            _hp("base_score", "float", Interval(min_closed=0), library_limit=_FLOAT32_FROM_0),
            _hp("_kfold", "int", Interval(min_closed=2),
                description="internal: k-fold cross-validation (Autopilot)"),
            _hp("_num_cv_round", "int", Interval(min_closed=1),
                description="internal: repetitions of the k-fold cross-validation"),
            _hp("_tuning_objective_metric", "categorical", TUNING_METRIC_NAMES,
                description="set by hyperparameter tuning jobs"),
            _hp("eval_metric", "list", tuple(METRIC_NAMES), depends_on=("objective",),
                check=_check_eval_metric, element_check=_eval_metric_item),
            _hp("seed", "int", Interval(min_open=-(2**31), max_open=2**31 - 1)),
            _hp("num_parallel_tree", "int", Interval(min_closed=1), library_limit=_INT32_FROM_1),
            _hp("save_model_on_termination", "categorical", _TRUE_FALSE),
            _hp("aft_loss_distribution", "categorical", ("normal", "logistic", "extreme")),
            _hp("aft_loss_distribution_scale", "float", Interval(min_closed=0),
                library_limit=_FLOAT32_FROM_0),
            _hp("deterministic_histogram", "categorical", _TRUE_FALSE),
            _hp("sampling_method", "categorical", ("uniform", "gradient_based")),
            _hp("prob_buffer_row", "int", Interval(min_open=1.0)),
            _hp("use_dask_gpu_training", "categorical", _TRUE_FALSE),
        )
    }
)  # fmt: skip

#: alias -> canonical name.
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "learning_rate": "eta",
        "min_split_loss": "gamma",
        "reg_lambda": "lambda",
        "reg_alpha": "alpha",
    }
)

#: Keys the container consumes itself; never passed to ``xgboost.train`` as parameters.
CONTAINER_KEYS = frozenset(
    {
        "num_round",
        "csv_weights",
        "early_stopping_rounds",
        "eval_metric",
        "save_model_on_termination",
        "_kfold",
        "_num_cv_round",
        "_tuning_objective_metric",
        "use_dask_gpu_training",
    }
)

#: Accepted for compatibility, but XGBoost 3 no longer has them: dropped with a warning
#: instead of XGBoost's "Parameters: { ... } are not used".
RETIRED_PARAMETERS = frozenset(
    {
        "predictor",
        "dsplit",
        "lambda_bias",
        "sketch_eps",
        "deterministic_histogram",
        "prob_buffer_row",
    }
)


@dataclass(frozen=True)
class Hyperparameters:
    """Validated hyperparameters (canonical names, typed values)."""

    values: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    @property
    def num_round(self) -> int:
        return int(self.values["num_round"])

    @property
    def csv_weights(self) -> bool:
        return bool(self.values.get("csv_weights", 0))

    @property
    def early_stopping_rounds(self) -> int | None:
        value = self.values.get("early_stopping_rounds")
        return int(value) if value is not None else None

    @property
    def eval_metric(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in self.values.get("eval_metric", ()))

    @property
    def tuning_metric(self) -> str | None:
        """The metric of ``_tuning_objective_metric`` (``validation:auc`` -> ``auc``)."""
        value = self.values.get("_tuning_objective_metric")
        return value.split(":", 1)[1] if value else None

    @property
    def objective(self) -> str | None:
        return self.values.get("objective")

    @property
    def kfold(self) -> int | None:
        return self.values.get("_kfold")

    @property
    def num_cv_round(self) -> int:
        return int(self.values.get("_num_cv_round", 1))

    @property
    def save_model_on_termination(self) -> bool:
        return self.values.get("save_model_on_termination") == "true"

    @property
    def use_dask_gpu_training(self) -> bool:
        return self.values.get("use_dask_gpu_training") == "true"

    def xgboost_params(self) -> dict[str, Any]:
        """The parameters for ``xgboost.train`` (evaluation metrics are added by training)."""
        params: dict[str, Any] = {}
        for name, value in self.values.items():
            if name in CONTAINER_KEYS:
                continue
            if name in RETIRED_PARAMETERS:
                logger.warning(
                    "hyperparameter %s=%s is accepted for compatibility but has no effect in "
                    "XGBoost 3",
                    name,
                    value,
                )
                continue
            if name == "updater":
                params[name] = ",".join(value)
            elif name == "monotone_constraints":
                params[name] = "(" + ",".join(str(int(v)) for v in value) + ")"
            elif name == "interaction_constraints":
                params[name] = json.dumps(value)
            else:
                params[name] = value
        return params


def _canonical(hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in hyperparameters.items():
        if key.startswith("sagemaker_"):
            continue
        name = ALIASES.get(key, key)
        if name in result:
            other = next(k for k in hyperparameters if ALIASES.get(k, k) == name and k != key)
            raise UserError(
                f"Hyperparameters {other} and {key} are the same parameter ({name}); "
                "give only one of them"
            )
        result[name] = value
    return result


def validate(hyperparameters: Mapping[str, Any]) -> Hyperparameters:
    """Validate a job's hyperparameters (strings or JSON-decoded values) the way SageMaker's
    XGBoost does; a UserError says what is wrong."""
    given = _canonical(hyperparameters)
    for name, hp in SCHEMA.items():
        if hp.required and name not in given:
            raise UserError(f"Missing required hyperparameter: {name}")
    parsed: dict[str, Any] = {}
    for name, value in given.items():
        schema = SCHEMA.get(name)
        if schema is None:
            raise UserError(f"Extraneous hyperparameter found: {name}")
        try:
            parsed[name] = schema.parse(value)
        except (ValueError, SyntaxError, TypeError) as exc:
            raise UserError(
                f"Hyperparameter {name}: could not parse value (caused by {type(exc).__name__})"
            ) from None
    for name, value in parsed.items():
        SCHEMA[name].validate_range(value)
    for name in _dependency_order(parsed):
        hp = SCHEMA[name]
        if hp.check is not None:
            deps = {d: parsed[d] for d in hp.depends_on if d in parsed}
            hp.check(parsed[name], deps)
    return Hyperparameters(MappingProxyType(parsed))


def _dependency_order(names: Mapping[str, Any]) -> list[str]:
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dep in SCHEMA[name].depends_on:
            if dep in names:
                visit(dep)
        ordered.append(name)

    for name in names:
        visit(name)
    return ordered
