"""Hyperparameter specs shared by the built-in algorithms: types, ranges, the range checks.

Each algorithm's ``hyperparameters.py`` lists its :class:`Hyperparameter` specs (names, kinds,
ranges exactly as SageMaker documents them) and keeps its own validation flow and messages;
what a range means is decided here, once, so every algorithm refuses the same things:

- a number outside its :class:`Interval`;
- NaN and infinity wherever a range is given: they compare false with every bound (``nan``
  would pass ``[0, 1]``) and no training library means them, so they are never in a range;
- a number inside SageMaker's documented range that the training library itself refuses
  (a :class:`LibraryLimit`: ``max_bin`` needs 2 bins, XGBoost keeps most parameters as 32-bit
  numbers), refused before any data is read, with the reason.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from sagedock.toolkit.errors import UserError

if TYPE_CHECKING:
    from sagedock.toolkit.env import TrainingEnv

Kind: TypeAlias = Literal["int", "float", "categorical", "list", "tuple", "nested_list"]
Bound: TypeAlias = int | float

#: The largest finite float32: what a C++ ``float`` parameter can hold.
FLOAT32_MAX = 3.4028234663852886e38
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True)
class Interval:
    """A range of finite numbers; prints the way SageMaker's messages do (``[1, +inf)``)."""

    min_closed: Bound | None = None
    min_open: Bound | None = None
    max_closed: Bound | None = None
    max_open: Bound | None = None

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return not (
            (self.min_open is not None and value <= self.min_open)
            or (self.min_closed is not None and value < self.min_closed)
            or (self.max_open is not None and value >= self.max_open)
            or (self.max_closed is not None and value > self.max_closed)
        )

    def __str__(self) -> str:
        if self.min_open is not None:
            low = f"({self.min_open}, "
        elif self.min_closed is not None:
            low = f"[{self.min_closed}, "
        else:
            low = "(-inf, "
        if self.max_open is not None:
            high = f"{self.max_open})"
        elif self.max_closed is not None:
            high = f"{self.max_closed}]"
        else:
            high = "+inf)"
        return low + high


@dataclass(frozen=True)
class LibraryLimit:
    """What the training library accepts where it is narrower than the documented range.

    :param range: the numbers the library takes (``[2, 2147483647]`` for XGBoost's ``max_bin``).
    :param reason: why, for the message (``XGBoost needs at least 2 bins per feature``).
    """

    range: Interval
    reason: str


def tunable(low: Bound, high: Bound) -> Interval:
    """The closed range automatic model tuning searches: ``[low, high]``."""
    return Interval(min_closed=low, max_closed=high)


def int32(library: str, low: Bound = INT32_MIN) -> LibraryLimit:
    """A parameter *library* keeps as a C++ ``int``, from *low* (a larger value fails or wraps
    around to a negative one)."""
    return LibraryLimit(
        Interval(min_closed=low, max_closed=INT32_MAX), f"{library} keeps it as a 32-bit integer"
    )


def float32(library: str, low: Bound = -FLOAT32_MAX) -> LibraryLimit:
    """A parameter *library* keeps as a C++ ``float``, from *low* (a larger value fails)."""
    return LibraryLimit(
        Interval(min_closed=low, max_closed=FLOAT32_MAX), f"{library} keeps it as a 32-bit float"
    )


#: ``check(value, dependencies)`` raises a UserError when *value* does not fit its dependencies.
DependencyCheck: TypeAlias = Callable[[Any, Mapping[str, Any]], None]


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter: how its value is parsed and what it may be.

    :param range: an :class:`Interval` for numbers and number lists, a tuple of allowed values
        for categories and string lists, or ``None``.
    :param element_check: replaces the range test for each value (``eval_metric`` items).
    :param depends_on: names whose validated values :attr:`check` receives.
    :param tunable_range: SageMaker's recommended tuning range, for documentation.
    :param library_limit: the narrower range the training library accepts, checked after
        :attr:`range` (numbers only).
    """

    name: str
    kind: Kind
    range: Interval | tuple[Any, ...] | None = None
    required: bool = False
    depends_on: tuple[str, ...] = ()
    check: DependencyCheck | None = None
    element_check: Callable[[Any], bool] | None = None
    tunable_range: Interval | None = None
    library_limit: LibraryLimit | None = None
    description: str = ""

    def parse(self, value: Any) -> Any:
        """The typed value of *value* (a string, or a JSON-decoded value)."""
        text = as_text(value)
        if self.kind == "int":
            return int(text)
        if self.kind == "float":
            return float(text)
        if self.kind == "categorical":
            return text
        if self.kind == "list":
            if isinstance(value, list | tuple):
                return [str(v) for v in value]
            return text.split(",")
        literal = value if isinstance(value, list | tuple) else ast.literal_eval(text)
        if self.kind == "tuple":
            if not isinstance(literal, list | tuple):
                raise ValueError(f"{text!r} is not a tuple such as (1,-1)")
            return tuple(literal)
        if not isinstance(literal, list | tuple) or not all(
            isinstance(inner, list | tuple) for inner in literal
        ):
            raise ValueError(f"{text!r} is not a list of lists such as [[1,2],[3,4]]")
        return [list(inner) for inner in literal]

    def validate_range(self, value: Any) -> None:
        """Raise a UserError naming this hyperparameter, *value* and the range it misses."""
        if self.kind in ("int", "float", "categorical"):
            self._validate_scalar(value)
            return
        if self.kind == "nested_list":
            elements: list[Any] = [e for inner in value for e in inner]
        else:
            elements = list(value)
        check = self.element_check or (lambda e: in_range(e, self.range))
        if not all(check(e) for e in elements):
            raise UserError(
                f"Hyperparameter {self.name}: value {value} not in range {self._shown_range()}"
                + _non_finite_note(elements)
            )

    def _validate_scalar(self, value: Any) -> None:
        ok = self.element_check(value) if self.element_check else in_range(value, self.range)
        if not ok:
            raise UserError(
                f"Hyperparameter {self.name}: {value} is not in {self._shown_range()}"
                + _non_finite_note([value])
            )
        limit = self.library_limit
        if limit is not None and value not in limit.range:
            raise UserError(
                f"Hyperparameter {self.name}: {value} is not in {limit.range}: {limit.reason}"
            )

    def _shown_range(self) -> object:
        return list(self.range) if isinstance(self.range, tuple) else self.range


def _non_finite_note(values: list[Any]) -> str:
    # "nan is not in [0, 1]" reads like a bug in the check; say why it is refused.
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        return " (NaN and infinity are not numbers in a range)"
    return ""


def in_range(value: Any, allowed: Interval | tuple[Any, ...] | None) -> bool:
    """Whether *value* is in *allowed* (an interval, a tuple of values, or anything: None)."""
    if allowed is None:
        return True
    if isinstance(allowed, Interval):
        return value in allowed
    return not isinstance(value, bool) and value in allowed


def as_text(value: Any) -> str:
    """*value* as the string SageMaker would have handed over."""
    # SageMaker hands every value over as a string; TrainingEnv JSON-decodes them. Both must
    # give the same answer, so decoded values go back to the text SageMaker would have seen.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)


def job_hyperparameters(env: TrainingEnv) -> dict[str, Any]:
    """Every hyperparameter of the job except the ``sagemaker_*`` framework parameters.

    ``TrainingEnv`` files ``_tuning_objective_metric`` with the framework parameters, as AWS's
    training toolkit does; for a built-in algorithm it is a hyperparameter like the others.
    """
    extra = {k: v for k, v in env.framework_params.items() if not k.startswith("sagemaker_")}
    return {**extra, **env.hyperparameters}


def given_hyperparameters(raw: Mapping[str, Any], known: Collection[str]) -> dict[str, str]:
    """The job's hyperparameters as text, ``sagemaker_*`` framework parameters left out.

    A name that is neither in *known* nor a hidden ``_*`` key is SageMaker's
    ``Extraneous hyperparameter found: <name>`` (with the closest known name, if any).
    """
    given: dict[str, str] = {}
    for key, value in raw.items():
        if key.startswith("sagemaker_"):
            continue
        if not key.startswith("_") and key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UserError(f"Extraneous hyperparameter found: {key}{hint}")
        given[key] = as_text(value)
    return given


def parse_text(hp: Hyperparameter, text: str, allowed: str) -> Any:
    """*text* parsed as *hp*'s kind; a value that does not parse names the key, the value and
    what is *allowed*. The caller checks the range (:meth:`Hyperparameter.validate_range`)."""
    try:
        return hp.parse(text)
    except (ValueError, SyntaxError, TypeError):
        raise UserError(
            f"Hyperparameter {hp.name}: could not parse value {text!r}; allowed: {allowed}"
        ) from None
