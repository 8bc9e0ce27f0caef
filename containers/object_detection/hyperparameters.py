"""The hyperparameters of SageMaker's Object Detection (SSD), validated and every value resolved.

:func:`parse_hyperparameters` takes a job's hyperparameters as SageMaker writes them (every
value a string) or JSON-decoded (``TrainingEnv.hyperparameters``), merges them over
:data:`DEFAULT_INPUT` (the ``default-input.json`` the real container prints at job start) and
returns a frozen :class:`ObjectDetectionConfig`, or raises a UserError (``ClientError: ...``)
that names the key, the value and what is allowed:

- ``No value(s) were specified for 'num_classes', 'num_training_samples' which are required
  hyperparameter(s)`` (the wording of SageMaker's first-party algorithms; an empty value, as
  default-input.json holds for both, counts as not specified);
- ``Extraneous hyperparameter found: <name>`` for a name Object Detection does not have (keys
  starting with ``_`` are the algorithm's hidden keys and are accepted; ``sagemaker_*`` keys
  are framework parameters and are ignored);
- ``Hyperparameter <name>: could not parse value '<value>'; allowed: <what>``;
- ``Hyperparameter <name>: <value> is not in <range>`` (the shared range checks of
  :mod:`sagedock.containers.hyperparameters`: NaN and infinity are never in a range; integers
  past 2**31-1 are refused as the trainer keeps them as 32-bit integers);
- ``Hyperparameter lr_scheduler_step: ...`` for a list that is not increasing positive epochs;
- ``Hyperparameter freeze_layer_pattern: '<pattern>' is not a regular expression: <why>``.

Where each default and range comes from (SageMaker's Object Detection is closed source):

- [DOC] (object-detection-api-config): ``num_classes`` and ``num_training_samples`` positive
  and required; ``base_network`` vgg-16 | resnet-50 (vgg-16); ``epochs`` positive (30);
  ``mini_batch_size`` positive (32); ``learning_rate`` (0, 1] (0.001); ``lr_scheduler_factor``
  (0, 1) (0.1); ``lr_scheduler_step`` comma-separated epochs ("10, 20": the learning rate is
  multiplied by the factor after the 10th and again after the 20th epoch; none by default);
  ``optimizer`` sgd | adam | rmsprop | adadelta (sgd); ``momentum`` 0.9; ``weight_decay``
  0.0005; ``overlap_threshold`` (0, 1] (0.5); ``nms_threshold`` (0, 1] (0.45);
  ``image_shape`` integer >= 300 (300); ``label_width`` 350; ``freeze_layer_pattern`` a regex
  (nothing frozen); ``early_stopping`` True | False (False), ``early_stopping_min_epochs`` 10,
  ``early_stopping_patience`` 5 (positive), ``early_stopping_tolerance`` [0, 1] (0.0);
  ``use_pretrained_model`` 0 | 1, default **1**. The tuning ranges: learning_rate [1e-6, 0.5],
  mini_batch_size [8, 64], momentum [0, 0.999], weight_decay [0, 0.999].
- [OBS] (default-input.json in 2018-19 job logs): ``nms_topk=400``, ``kv_store=device``,
  ``_kvstore=device``, ``_num_kv_servers=auto``, ``_tuning_objective_metric=''``, empty
  ``num_classes`` and ``num_training_samples``. The same logs show ``use_pretrained_model=0``;
  we keep the documented 1 (our choice: the documented mAP needs the pretrained base).
- Ours, where the reference is silent or contradicts itself:
  ``momentum`` [0, 1] and ``weight_decay`` [0, 1): the documented valid ranges ((0, 1] and
  (0, 1)) exclude the 0 that the documented tuning ranges include, so a tuning job could send
  0; we accept the union. ``momentum`` (sgd only) and ``weight_decay`` (sgd, rmsprop) are
  accepted with every optimizer, as a tuning job tunes them beside ``optimizer``.
  ``lr_scheduler_step``: items are integers >= 1, spaces around them allowed (the docs write
  "10, 20"), strictly increasing (MXNet's MultiFactorScheduler, which the upstream SSD
  example builds from this list, asserts it [INF]); steps at or past ``epochs`` are accepted
  and never fire. ``label_width`` >= 7 (the 2-value header and one 5-value object; 350 holds
  69 objects). ``nms_topk`` >= 1. ``kv_store`` one of MXNet's kvstore types (device, local,
  dist_sync, dist_async, dist_device_sync). ``freeze_layer_pattern`` is searched for in each
  base-network parameter name (the docs: frozen layers are those whose name "contains" a
  match); an empty pattern freezes nothing.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

from sagedock.toolkit.errors import UserError

from ..hyperparameters import (
    Hyperparameter,
    Interval,
    Kind,
    as_text,
    given_hyperparameters,
    in_range,
    int32,
    parse_text,
    tunable,
)

BaseNetwork: TypeAlias = Literal["vgg-16", "resnet-50"]
Optimizer: TypeAlias = Literal["sgd", "adam", "rmsprop", "adadelta"]

BASE_NETWORKS: tuple[str, ...] = ("vgg-16", "resnet-50")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "rmsprop", "adadelta")
#: MXNet's kvstore types (``kv_store`` is passed to MXNet's ``mx.kv.create``) [INF].
KV_STORES: tuple[str, ...] = ("device", "local", "dist_sync", "dist_async", "dist_device_sync")
REQUIRED: tuple[str, ...] = ("num_classes", "num_training_samples")

#: Values of the packed label before the objects (header width, object width) and per object
#: (class, xmin, ymin, xmax, ymax): a label of width ``label_width`` holds
#: ``(label_width - 2) // 5`` objects.
LABEL_HEADER_WIDTH, LABEL_OBJECT_WIDTH = 2, 5

#: default-input.json [OBS], with the documented ``use_pretrained_model=1`` [DOC]: what a key
#: not given takes. The two required keys are empty, as SageMaker prints them.
DEFAULT_INPUT: Mapping[str, str] = MappingProxyType(
    {
        "base_network": "vgg-16",
        "use_pretrained_model": "1",
        "num_classes": "",
        "num_training_samples": "",
        "epochs": "30",
        "mini_batch_size": "32",
        "learning_rate": "0.001",
        "lr_scheduler_step": "",
        "lr_scheduler_factor": "0.1",
        "optimizer": "sgd",
        "momentum": "0.9",
        "weight_decay": "0.0005",
        "overlap_threshold": "0.5",
        "nms_threshold": "0.45",
        "nms_topk": "400",
        "image_shape": "300",
        "label_width": "350",
        "freeze_layer_pattern": "",
        "kv_store": "device",
        "early_stopping": "False",
        "early_stopping_min_epochs": "10",
        "early_stopping_patience": "5",
        "early_stopping_tolerance": "0.0",
        "_kvstore": "device",
        "_num_kv_servers": "auto",
        "_tuning_objective_metric": "",
    }
)

#: The hidden keys of default-input.json [OBS]; any other ``_`` key is accepted too.
HIDDEN_KEYS: tuple[str, ...] = ("_kvstore", "_num_kv_servers", "_tuning_objective_metric")

# -- the schema ---------------------------------------------------------------------------------

_INT32 = int32("the trainer", 1)
_POSITIVE_INT = Interval(min_closed=1)
_UNIT_CLOSED = Interval(min_open=0, max_closed=1)
_TRUE_FALSE = ("true", "false")


def _hp(
    name: str, kind: Kind, allowed: Interval | tuple[Any, ...] | None = None, **kw: Any
) -> Hyperparameter:
    if kind == "int":
        kw.setdefault("library_limit", _INT32)
    return Hyperparameter(name=name, kind=kind, range=allowed, **kw)


#: Every hyperparameter of §5.2, in the reference's order: the single source of truth for
#: validation, the README table and the tests. Booleans are categorical ``true``/``false``
#: (read case-insensitively: the docs and the SDK write ``True``); ``use_pretrained_model``
#: is ``0``/``1``. ``lr_scheduler_step`` and ``freeze_layer_pattern`` have their own parsers.
SCHEMA: Mapping[str, Hyperparameter] = MappingProxyType(
    {
        hp.name: hp
        for hp in (
            _hp("num_classes", "int", _POSITIVE_INT, required=True),
            _hp("num_training_samples", "int", _POSITIVE_INT, required=True),
            _hp("base_network", "categorical", BASE_NETWORKS),
            _hp("use_pretrained_model", "categorical", ("0", "1")),
            _hp("epochs", "int", _POSITIVE_INT),
            _hp("mini_batch_size", "int", _POSITIVE_INT, tunable_range=tunable(8, 64)),
            _hp("learning_rate", "float", _UNIT_CLOSED, tunable_range=tunable(1e-6, 0.5)),
            _hp("lr_scheduler_step", "list", _POSITIVE_INT,
                description="comma-separated increasing epochs, e.g. 10,20"),
            _hp("lr_scheduler_factor", "float", Interval(min_open=0, max_open=1)),
            _hp("optimizer", "categorical", OPTIMIZERS),
            _hp("momentum", "float", Interval(min_closed=0, max_closed=1),
                tunable_range=tunable(0, 0.999), description="sgd"),
            _hp("weight_decay", "float", Interval(min_closed=0, max_open=1),
                tunable_range=tunable(0, 0.999), description="sgd, rmsprop"),
            _hp("overlap_threshold", "float", _UNIT_CLOSED),
            _hp("nms_threshold", "float", _UNIT_CLOSED),
            _hp("nms_topk", "int", _POSITIVE_INT),
            _hp("image_shape", "int", Interval(min_closed=300)),
            _hp("label_width", "int",
                Interval(min_closed=LABEL_HEADER_WIDTH + LABEL_OBJECT_WIDTH)),
            _hp("freeze_layer_pattern", "categorical", None,
                description="a regular expression over base-network parameter names"),
            _hp("kv_store", "categorical", KV_STORES),
            _hp("early_stopping", "categorical", _TRUE_FALSE),
            _hp("early_stopping_min_epochs", "int", _POSITIVE_INT),
            _hp("early_stopping_patience", "int", _POSITIVE_INT),
            _hp("early_stopping_tolerance", "float", Interval(min_closed=0, max_closed=1)),
        )
    }
)  # fmt: skip

_BOOLEANS = frozenset({"early_stopping"})
_STEPS_ALLOWED = "epochs as increasing positive integers separated by commas, such as 10,20"


@dataclass(frozen=True)
class ObjectDetectionConfig:
    """Validated hyperparameters, every value typed (see the module docstring for sources)."""

    num_classes: int
    num_training_samples: int
    base_network: BaseNetwork
    use_pretrained_model: bool
    epochs: int
    mini_batch_size: int
    learning_rate: float
    #: The epochs after which the learning rate is multiplied by :attr:`lr_scheduler_factor`;
    #: ``()``: a constant learning rate.
    lr_scheduler_step: tuple[int, ...]
    lr_scheduler_factor: float
    optimizer: Optimizer
    momentum: float
    weight_decay: float
    overlap_threshold: float
    nms_threshold: float
    nms_topk: int
    image_shape: int
    label_width: int
    #: ``""``: nothing frozen.
    freeze_layer_pattern: str
    kv_store: str
    early_stopping: bool
    early_stopping_min_epochs: int
    early_stopping_patience: int
    early_stopping_tolerance: float
    #: ``validation:mAP`` when a tuning job runs this one; else ``None``.
    tuning_objective_metric: str | None
    #: The ``_*`` keys, as text (defaults merged).
    hidden: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: What the job gave (canonical text, ``sagemaker_*`` left out), for the
    #: ``Merging with provided configuration`` log line.
    given: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: default-input merged with :attr:`given`, as text: the ``Final configuration`` line.
    final: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def max_objects(self) -> int:
        """How many boxes one image's packed label of :attr:`label_width` values holds."""
        return (self.label_width - LABEL_HEADER_WIDTH) // LABEL_OBJECT_WIDTH

    @property
    def tuning(self) -> bool:
        return self.tuning_objective_metric is not None

    def learning_rate_at(self, epoch: int) -> float:
        """The learning rate of 0-based *epoch*: :attr:`learning_rate` times the factor once
        for every step at or below *epoch* (``"10,20"``: epochs 10..19, the 11th to the 20th,
        train at ``lr * factor``, epochs from 20 on at ``lr * factor**2``)."""
        passed = sum(1 for step in self.lr_scheduler_step if step <= epoch)
        return float(self.learning_rate * self.lr_scheduler_factor**passed)

    def freezes(self, parameter_name: str) -> bool:
        """Whether :attr:`freeze_layer_pattern` keeps the base-network parameter unchanged."""
        pattern = self.freeze_layer_pattern
        return bool(pattern) and re.search(pattern, parameter_name) is not None

    def to_json(self) -> dict[str, Any]:
        """Every resolved value, JSON-ready (the step tuple as a list)."""
        result: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            result[name] = value
        return result


# -- parsing ------------------------------------------------------------------------------------


def _allowed(name: str) -> str:
    hp = SCHEMA[name]
    if isinstance(hp.range, tuple):
        shown = ("True", "False") if name in _BOOLEANS else hp.range
        return ", ".join(shown)
    return {"int": "an integer", "float": "a number"}[hp.kind] + f" in {hp.range}"


def _parse_one(name: str, value: Any) -> Any:
    hp = SCHEMA[name]
    text = as_text(value)
    if name in _BOOLEANS:
        text = text.lower()
    parsed = parse_text(hp, text, _allowed(name))
    hp.validate_range(parsed)
    return parsed


def _parse_steps(value: Any) -> tuple[int, ...]:
    hp = SCHEMA["lr_scheduler_step"]
    text = as_text(value)
    if not text.strip():
        return ()
    steps: list[int] = []
    for item in text.split(","):
        try:
            steps.append(int(item))
        except ValueError:
            raise UserError(
                f"Hyperparameter lr_scheduler_step: could not parse value {text!r} "
                f"({item.strip()!r} is not an integer); allowed: {_STEPS_ALLOWED}"
            ) from None
    outside = [step for step in steps if not in_range(step, hp.range)]
    if outside:
        raise UserError(
            f"Hyperparameter lr_scheduler_step: {text!r} has {outside[0]}, which is not in "
            f"{hp.range}; allowed: {_STEPS_ALLOWED}"
        )
    if any(later <= earlier for earlier, later in itertools.pairwise(steps)):
        raise UserError(
            f"Hyperparameter lr_scheduler_step: {text!r} is not increasing; "
            f"allowed: {_STEPS_ALLOWED}"
        )
    return tuple(steps)


def _parse_pattern(value: Any) -> str:
    text = as_text(value)
    try:
        re.compile(text)
    except (re.error, RecursionError, OverflowError) as exc:
        raise UserError(
            f"Hyperparameter freeze_layer_pattern: {text!r} is not a regular expression: {exc}; "
            "allowed: a Python regular expression over base-network parameter names, "
            "such as ^(conv1_|conv2_).*"
        ) from None
    return text


def parse_hyperparameters(raw: Mapping[str, Any]) -> ObjectDetectionConfig:
    """Validate a job's hyperparameters (strings or JSON-decoded values) as SageMaker's Object
    Detection does and type every value; a UserError says what is wrong."""
    given = given_hyperparameters(raw, SCHEMA)
    final = {**DEFAULT_INPUT, **given}
    missing = [f"'{name}'" for name in REQUIRED if not final[name].strip()]
    if missing:
        raise UserError(
            f"No value(s) were specified for {', '.join(missing)} which are required "
            "hyperparameter(s); allowed: positive integers"
        )
    special = {"lr_scheduler_step", "freeze_layer_pattern"}
    values = {name: _parse_one(name, final[name]) for name in SCHEMA if name not in special}
    hidden = {k: v for k, v in final.items() if k.startswith("_")}
    return ObjectDetectionConfig(
        num_classes=values["num_classes"],
        num_training_samples=values["num_training_samples"],
        base_network=values["base_network"],
        use_pretrained_model=values["use_pretrained_model"] == "1",
        epochs=values["epochs"],
        mini_batch_size=values["mini_batch_size"],
        learning_rate=values["learning_rate"],
        lr_scheduler_step=_parse_steps(final["lr_scheduler_step"]),
        lr_scheduler_factor=values["lr_scheduler_factor"],
        optimizer=values["optimizer"],
        momentum=values["momentum"],
        weight_decay=values["weight_decay"],
        overlap_threshold=values["overlap_threshold"],
        nms_threshold=values["nms_threshold"],
        nms_topk=values["nms_topk"],
        image_shape=values["image_shape"],
        label_width=values["label_width"],
        freeze_layer_pattern=_parse_pattern(final["freeze_layer_pattern"]),
        kv_store=values["kv_store"],
        early_stopping=values["early_stopping"] == "true",
        early_stopping_min_epochs=values["early_stopping_min_epochs"],
        early_stopping_patience=values["early_stopping_patience"],
        early_stopping_tolerance=values["early_stopping_tolerance"],
        tuning_objective_metric=hidden.get("_tuning_objective_metric") or None,
        hidden=MappingProxyType(hidden),
        given=MappingProxyType(given),
        final=MappingProxyType(final),
    )
