"""Request documents checked against the SageMaker API's own model.

botocore ships the service models boto3 and the AWS CLI are generated from (``sagemaker`` and
``sagemaker-runtime``). :func:`check_request` walks a request document along the input shape
of an operation (``CreateTrainingJob``, ``CreateModel``, ``InvokeEndpoint``, ...): member
names, JSON types, enums, required members, length, count and value ranges, unions. So the
local platform takes exactly the names and values the API takes, and a new botocore brings new
fields with no list of ours to update. Errors carry the JSON path of the bad value
(``InputDataConfig[0].DataSource.S3DataSource.S3DataDistributionType: ...``).

What the local platform does differently is said in one :class:`LocalRules` per operation,
by *schema path*: member names from the request's root, ``[]`` for a list's elements and
``{}`` for a map's values (``InputDataConfig[].DataSource.S3DataSource.ModelAccessConfig``).
The tests resolve every such path in the model, so a rule cannot name a field the API lacks.

Patterns are not checked: they are the service's (Java) regular expressions, and where the
API takes an S3 URI the local platform takes a path or ``file://`` URI as well.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .reader import Node, SpecError, describe_kind

#: The service of each operation we check that is not in ``sagemaker``.
SERVICE_OF = {"InvokeEndpoint": "sagemaker-runtime"}

#: Enums longer than this are not listed in a message (instance types: hundreds).
LISTED_ENUM_VALUES = 12


@functools.cache
def service_model(service: str) -> Mapping[str, Any]:
    """botocore's model of *service* (``sagemaker``, ``sagemaker-runtime``), loaded once."""
    # Imported here: loading the models costs a quarter of a second, paid only by commands
    # that read a request.
    from botocore.loaders import Loader

    model: Mapping[str, Any] = Loader().load_service_model(service, "service-2")
    return model


def _operation(operation: str) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    model = service_model(SERVICE_OF.get(operation, "sagemaker"))
    try:
        return model["shapes"], model["operations"][operation]
    except KeyError:
        raise ValueError(f"botocore's SageMaker model has no operation {operation!r}") from None


def input_shape(operation: str) -> str:
    """The name of the input shape of *operation* (``CreateTrainingJobRequest``)."""
    return str(_operation(operation)[1]["input"]["shape"])


def output_members(operation: str) -> frozenset[str]:
    """The top-level members of *operation*'s answer (what DescribeTrainingJob returns)."""
    shapes, op = _operation(operation)
    return frozenset(shapes[op["output"]["shape"]].get("members", {}))


def resolve(operation: str, schema_path: str) -> Mapping[str, Any]:
    """The shape at *schema_path* in *operation*'s input (``ResourceConfig.InstanceType``,
    ``InputDataConfig[].ChannelName``).

    :raises KeyError: when the path leaves the model.
    """
    shapes, op = _operation(operation)
    shape: Mapping[str, Any] = shapes[op["input"]["shape"]]
    for step in schema_path.replace("[]", ".[]").replace("{}", ".{}").split("."):
        if step == "[]" and shape["type"] == "list":
            shape = shapes[shape["member"]["shape"]]
        elif step == "{}" and shape["type"] == "map":
            shape = shapes[shape["value"]["shape"]]
        elif shape["type"] == "structure" and step in shape["members"]:
            shape = shapes[shape["members"][step]["shape"]]
        else:
            raise KeyError(f"{schema_path}: {step!r} is not in the model of {operation}")
    return shape


@dataclass(frozen=True)
class LocalRules:
    """How the local platform departs from the API for one operation (by schema path)."""

    #: Accepted, and meaningless on one machine: listed in the log when a request sets them.
    ignored: frozenset[str] = frozenset()
    #: Required by the API, but the local platform does without (a role, a default name).
    optional: frozenset[str] = frozenset()
    #: Values accepted besides the API's enum (``local`` as an instance type).
    extra_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Blobs that may also be any JSON value, sent as its JSON text (an inline JSON ``Body``).
    any_json: frozenset[str] = frozenset()

    def paths(self) -> frozenset[str]:
        """Every schema path the rules name."""
        return self.ignored | self.optional | set(self.extra_values) | self.any_json


NO_RULES = LocalRules()


@dataclass(frozen=True)
class Checked:
    """A document that the API would take (under the local rules)."""

    #: JSON paths of the members set that the local platform ignores, in document order.
    ignored: tuple[str, ...] = ()


def check_request(
    document: Node | Mapping[str, Any], operation: str, rules: LocalRules = NO_RULES
) -> Checked:
    """Check *document* against the input shape of *operation*.

    :raises SpecError: naming the JSON path of the first value the API would refuse.
    """
    node = document if isinstance(document, Node) else Node(dict(document))
    shapes, op = _operation(operation)
    walker = _Walker(shapes, rules, operation)
    walker.value(node.value, op["input"]["shape"], node.path, "")
    return Checked(tuple(walker.ignored))


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _schema_child(schema_path: str, step: str) -> str:
    if step in ("[]", "{}"):
        return schema_path + step
    return f"{schema_path}.{step}" if schema_path else step


def _suggest(word: str, options: list[str]) -> str:
    """`` (did you mean 'X'?)`` naming the options closest to *word*, or ``""``."""
    # A wrong case is the likeliest mistake, and difflib ranks it no higher than others.
    folded = [o for o in options if o.lower() == word.lower()]
    scored = sorted(
        ((difflib.SequenceMatcher(None, word, o).ratio(), o) for o in options),
        reverse=True,
    )
    # Only the names about as close as the best one: 'OutputDataConfg' is 'OutputDataConfig',
    # not also 'InputDataConfig'.
    best = scored[0][0] if scored else 0.0
    close = [o for score, o in scored[:3] if score >= 0.6 and score >= best - 0.05]
    close = list(dict.fromkeys(folded + close))[:3]
    if not close:
        return ""
    if len(close) == 1:
        return f" (did you mean {close[0]!r}?)"
    names = ", ".join(repr(c) for c in close[:-1])
    return f" (did you mean {names} or {close[-1]!r}?)"


def _error(path: str, problem: str) -> SpecError:
    return SpecError(f"{path or '(document)'}: {problem}")


class _Walker:
    def __init__(self, shapes: Mapping[str, Any], rules: LocalRules, operation: str) -> None:
        self.shapes = shapes
        self.rules = rules
        self.operation = operation
        self.ignored: list[str] = []

    def value(self, value: Any, shape_name: str, path: str, schema_path: str) -> None:
        shape = self.shapes[shape_name]
        kind = shape["type"]
        if kind == "blob" and schema_path in self.rules.any_json and not isinstance(value, str):
            return  # any JSON value: sent as its JSON text
        check = getattr(self, f"_{kind}", None)
        if check is None:  # pragma: no cover - a type the model does not use today
            raise ValueError(f"{shape_name}: shape type {kind!r} is not known")
        check(value, shape, shape_name, path, schema_path)

    # -- containers -----------------------------------------------------------------------
    def _structure(
        self, value: Any, shape: Mapping[str, Any], name: str, path: str, schema_path: str
    ) -> None:
        if not isinstance(value, dict):
            raise _error(path, f"expected an object, got {describe_kind(value)}")
        members: Mapping[str, Any] = shape.get("members", {})
        for key in value:
            if key not in members:
                hint = _suggest(str(key), list(members))
                if not hint and len(members) <= LISTED_ENUM_VALUES:
                    hint = f" ({name} has {', '.join(members)})"
                raise _error(_child(path, key), f"unknown field{hint}")
        for key in shape.get("required", ()):
            member_path = _schema_child(schema_path, key)
            if key not in value and member_path not in self.rules.optional:
                raise _error(_child(path, key), "is required")
        if shape.get("union"):
            given = [key for key in value if value[key] is not None]
            if len(given) != 1:
                raise _error(path, f"give exactly one of {', '.join(members)}")
        for key, item in value.items():
            member_path = _schema_child(schema_path, key)
            # An empty list or object (the SDK sends "Tags": []) sets nothing worth a mention.
            if member_path in self.rules.ignored and item not in ([], {}):
                self.ignored.append(_child(path, key))
            self.value(item, members[key]["shape"], _child(path, key), member_path)

    def _list(
        self, value: Any, shape: Mapping[str, Any], name: str, path: str, schema_path: str
    ) -> None:
        if not isinstance(value, list):
            raise _error(path, f"expected a list, got {describe_kind(value)}")
        self._count(len(value), shape, path, "element")
        member = shape["member"]["shape"]
        for i, item in enumerate(value):
            self.value(item, member, _child(path, i), _schema_child(schema_path, "[]"))

    def _map(
        self, value: Any, shape: Mapping[str, Any], name: str, path: str, schema_path: str
    ) -> None:
        if not isinstance(value, dict):
            raise _error(path, f"expected an object, got {describe_kind(value)}")
        self._count(len(value), shape, path, "entry")
        key_name = shape["key"]["shape"]
        for key, item in value.items():
            # JSON keys are strings: only the key shape's enum and length can be wrong.
            problem = self._string_problem(key, self.shapes[key_name], key_name, "")
            if problem:
                raise _error(_child(path, key), f"key {problem}")
            self.value(
                item, shape["value"]["shape"], _child(path, key), _schema_child(schema_path, "{}")
            )

    @staticmethod
    def _count(count: int, shape: Mapping[str, Any], path: str, noun: str) -> None:
        plural = "entries" if noun == "entry" else f"{noun}s"
        if "min" in shape and count < shape["min"]:
            least = shape["min"]
            raise _error(path, f"needs at least {least} {noun if least == 1 else plural}")
        if "max" in shape and count > shape["max"]:
            raise _error(path, f"has {count} {plural}, at most {shape['max']} allowed")

    # -- scalars --------------------------------------------------------------------------
    def _string(
        self, value: Any, shape: Mapping[str, Any], name: str, path: str, schema_path: str
    ) -> None:
        if not isinstance(value, str):
            raise _error(path, f"expected a string, got {describe_kind(value)}")
        problem = self._string_problem(value, shape, name, schema_path)
        if problem:
            raise _error(path, problem)

    def _string_problem(
        self, value: str, shape: Mapping[str, Any], name: str, schema_path: str
    ) -> str | None:
        if "enum" in shape:
            options = [*shape["enum"], *self.rules.extra_values.get(schema_path, ())]
            if value in options:
                return None
            if len(options) <= LISTED_ENUM_VALUES:
                problem = f"{value!r} is not one of {', '.join(options)}"
            else:
                problem = f"{value!r} is not a valid {name}"
            return problem + _suggest(value, options)
        if "min" in shape and len(value) < shape["min"]:
            if shape["min"] == 1:
                return "must not be empty"
            return f"is shorter than {shape['min']} characters"
        if "max" in shape and len(value) > shape["max"]:
            return f"is longer than {shape['max']} characters"
        return None

    def _blob(
        self, value: Any, shape: Mapping[str, Any], name: str, path: str, schema_path: str
    ) -> None:
        # In JSON a blob is text (boto3 encodes a str as UTF-8).
        if not isinstance(value, str):
            raise _error(path, f"expected a string, got {describe_kind(value)}")
        size = len(value.encode("utf-8"))
        if "max" in shape and size > shape["max"]:
            raise _error(path, f"is {size} bytes, at most {shape['max']} allowed")

    def _integer(
        self, value: Any, shape: Mapping[str, Any], name: str, path: str, schema_path: str
    ) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _error(path, f"expected an integer, got {describe_kind(value)}")
        self._range(value, shape, path)

    _long = _integer

    def _double(
        self, value: Any, shape: Mapping[str, Any], name: str, path: str, schema_path: str
    ) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _error(path, f"expected a number, got {describe_kind(value)}")
        self._range(value, shape, path)

    _float = _double

    @staticmethod
    def _range(value: float, shape: Mapping[str, Any], path: str) -> None:
        if "min" in shape and value < shape["min"]:
            raise _error(path, f"{value} is below the minimum {shape['min']}")
        if "max" in shape and value > shape["max"]:
            raise _error(path, f"{value} is above the maximum {shape['max']}")

    def _boolean(
        self, value: Any, shape: Mapping[str, Any], name: str, path: str, schema_path: str
    ) -> None:
        if not isinstance(value, bool):
            raise _error(path, f"expected true or false, got {describe_kind(value)}")

    def _timestamp(
        self, value: Any, shape: Mapping[str, Any], name: str, path: str, schema_path: str
    ) -> None:
        # What boto3 and the AWS CLI take in JSON: epoch seconds or an ISO 8601 string.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return
        if isinstance(value, str):
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
                return
            except ValueError:
                pass
        raise _error(
            path,
            f"expected a timestamp (ISO 8601 text or epoch seconds), got {describe_kind(value)}",
        )


__all__ = [
    "NO_RULES",
    "Checked",
    "LocalRules",
    "check_request",
    "input_shape",
    "output_members",
    "resolve",
    "service_model",
]
