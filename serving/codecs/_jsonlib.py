"""JSON reading and writing for the codecs: orjson when installed, the stdlib otherwise.

orjson parses and writes 8-25x faster than ``json`` on typical requests and predictions
(``bench/RESULTS.md``), numpy arrays included. Where it is stricter than the stdlib, the stdlib
takes over so behaviour does not depend on which is installed: input with ``NaN``/``Infinity``
literals or integers beyond 64 bits parses, and syntax errors are reported with the stdlib's
wording and position. Output is compact; NaN and infinities are written as ``null`` (RFC 8259
has no NaN) by both paths.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from typing import Any

try:  # an optional speed-up: declared as a dependency, but never required
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised only where orjson is absent
    _orjson = None  # type: ignore[assignment]

JSONDecodeError = json.JSONDecodeError


class JSONLimitError(ValueError):
    """Well-formed JSON beyond what the parser takes: nesting deeper than Python's recursion
    limit, or an integer longer than ``sys.get_int_max_str_digits()``. The message says which,
    in the client's terms."""


# orjson reads an integer literal outside 64 bits as a float, silently losing digits; 19 or more
# digits in a row may be such a literal (or sit inside a string), so the stdlib reads that text.
_MAYBE_BIG_INT = re.compile(rb"[0-9]{19,}")

_ORJSON_OPTIONS = 0
if _orjson is not None:
    _ORJSON_OPTIONS = _orjson.OPT_SERIALIZE_NUMPY | _orjson.OPT_NON_STR_KEYS


def loads(data: bytes | str) -> Any:
    """Parse JSON text (bytes must be UTF-8).

    :raises json.JSONDecodeError: not JSON.
    :raises JSONLimitError: JSON nested too deeply or with too long an integer.
    """
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates (from a charset such as unicode_escape)
            return _stdlib_loads(data)
    else:
        raw = data
    if _orjson is not None and _MAYBE_BIG_INT.search(raw) is None:
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError:
            pass  # the stdlib decides: it accepts NaN and big ints, and words errors well
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return _stdlib_loads(text)


def _stdlib_loads(text: str) -> Any:
    # The stdlib's scanner recurses once per level and converts integers with int(), so these
    # two limits of the interpreter surface as RecursionError and a bare ValueError.
    try:
        return json.loads(text)
    except RecursionError:
        raise JSONLimitError(
            "arrays or objects nested too deeply (the limit is about "
            f"{sys.getrecursionlimit()} levels)"
        ) from None
    except JSONDecodeError:
        raise
    except ValueError as exc:
        if "digits" not in str(exc):
            raise
        raise JSONLimitError(
            f"an integer has more than {sys.get_int_max_str_digits()} digits"
        ) from None


def _finite(value: Any) -> Any:
    """Replace non-finite floats by None, recursively (the stdlib writes them as NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def dumps(value: Any, default: Callable[[Any], Any]) -> bytes:
    """Compact UTF-8 JSON; *default* converts types JSON does not know (TypeError if none)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(value, default=default, option=_ORJSON_OPTIONS)
        except _orjson.JSONEncodeError:
            pass  # e.g. an int beyond 64 bits: the stdlib can, or raises a clear TypeError
    text = json.dumps(
        _finite(_resolve(value, default)), separators=(",", ":"), allow_nan=False, default=default
    )
    return text.encode("utf-8")


def _resolve(value: Any, default: Callable[[Any], Any]) -> Any:
    """Convert top-level and nested unknown objects up front, so NaN inside them is seen."""
    if isinstance(value, dict):
        return {k: _resolve(v, default) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_resolve(v, default) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return _resolve(default(value), default)
