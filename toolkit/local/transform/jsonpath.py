"""The JSONPath subset SageMaker batch transform accepts in ``InputFilter`` / ``OutputFilter``.

Supported (as the SageMaker docs list them): ``$`` (the root; required first), ``.name``
(child), ``*`` (wildcard), ``['a','b']`` (one or more children by name), ``[0]``, ``[1,3,-1]``
(indexes; negative counts from the end), ``[2:5]``, ``[:5]``, ``[2:]`` (slices), and unions of
indexes and slices such as ``$[0,5:]``. Brackets may follow a dot (``$.f.['a','b']``). Nested
paths inside brackets (``['a.b']``) are not supported, as on SageMaker.

Selecting one element (``$.features``, ``$[1]``) gives that element; slices, unions and
wildcards give a list; several names give an object with just those keys, in the given order.
An index or name that is not there is an error, as on SageMaker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


class JsonPathError(ValueError):
    """A filter expression that is malformed, or does not fit the record it is applied to."""


@dataclass(frozen=True)
class Index:
    value: int


@dataclass(frozen=True)
class Slice:
    start: int | None
    stop: int | None


@dataclass(frozen=True)
class Wildcard:
    pass


@dataclass(frozen=True)
class Names:
    names: tuple[str, ...]


@dataclass(frozen=True)
class Positions:
    items: tuple[Index | Slice, ...]


Segment = Names | Positions | Wildcard


@dataclass(frozen=True)
class JsonPath:
    expression: str
    segments: tuple[Segment, ...]

    @property
    def is_identity(self) -> bool:
        return not self.segments

    def apply(self, value: Any) -> Any:
        """Select from *value*; raises :class:`JsonPathError` when the path does not fit."""
        nodes: list[Any] = [value]
        single = True
        for seg in self.segments:
            out: list[Any] = []
            for node in nodes:
                if isinstance(seg, Wildcard):
                    if isinstance(node, dict):
                        out.extend(node.values())
                    elif isinstance(node, list):
                        out.extend(node)
                    else:
                        raise JsonPathError(f"{self.expression}: '*' applied to a scalar")
                    single = False
                elif isinstance(seg, Names):
                    if not isinstance(node, dict):
                        raise JsonPathError(
                            f"{self.expression}: field {seg.names[0]!r} asked of "
                            f"{_kind(node)}, not an object"
                        )
                    for name in seg.names:
                        if name not in node:
                            raise JsonPathError(f"{self.expression}: no field {name!r} in record")
                    if len(seg.names) == 1:
                        out.append(node[seg.names[0]])
                    else:
                        out.append({name: node[name] for name in seg.names})
                else:
                    if not isinstance(node, list):
                        raise JsonPathError(
                            f"{self.expression}: index asked of {_kind(node)}, not an array"
                        )
                    picked: list[Any] = []
                    for item in seg.items:
                        if isinstance(item, Index):
                            if not -len(node) <= item.value < len(node):
                                raise JsonPathError(
                                    f"{self.expression}: index {item.value} is outside a record "
                                    f"of {len(node)} element(s)"
                                )
                            picked.append(node[item.value])
                        else:
                            picked.extend(node[item.start : item.stop])
                    if len(seg.items) == 1 and isinstance(seg.items[0], Index):
                        out.append(picked[0])
                    else:
                        out.extend(picked)
                        single = False
            nodes = out
        return nodes[0] if single else nodes


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"the scalar {value!r}"


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_INT = re.compile(r"-?\d+")


def _parse_bracket(expr: str, body: str) -> Segment:
    body = body.strip()
    if body == "*":
        return Wildcard()
    parts = _split_commas(expr, body)
    if all(p[:1] in ("'", '"') for p in parts):
        names = []
        for p in parts:
            if len(p) < 2 or p[-1] != p[0]:
                raise JsonPathError(f"{expr}: unterminated quoted name {p}")
            name = p[1:-1]
            if not name or "." in name or "[" in name:
                raise JsonPathError(f"{expr}: nested paths inside brackets are not supported ({p})")
            names.append(name)
        return Names(tuple(names))
    items: list[Index | Slice] = []
    for p in parts:
        if ":" in p:
            bits = p.split(":")
            if len(bits) != 2 or not all(
                b.strip() == "" or _INT.fullmatch(b.strip()) for b in bits
            ):
                raise JsonPathError(f"{expr}: malformed slice [{p}]")
            start, stop = (int(b) if b.strip() else None for b in bits)
            items.append(Slice(start, stop))
        elif _INT.fullmatch(p):
            items.append(Index(int(p)))
        else:
            raise JsonPathError(f"{expr}: expected an index, a slice or a quoted name, got {p!r}")
    return Positions(tuple(items))


def _split_commas(expr: str, body: str) -> list[str]:
    parts, current, quote = [], "", ""
    for ch in body:
        if quote:
            current += ch
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            current += ch
        elif ch == ",":
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    if quote:
        raise JsonPathError(f"{expr}: unterminated quote")
    parts.append(current.strip())
    if any(not p for p in parts):
        raise JsonPathError(f"{expr}: empty element in brackets")
    return parts


@lru_cache(maxsize=64)
def parse_jsonpath(expression: str) -> JsonPath:
    """Parse *expression*; raises :class:`JsonPathError` saying what is wrong."""
    expr = expression.strip()
    if not expr.startswith("$"):
        raise JsonPathError(f"{expression!r}: a JSONPath must start with '$'")
    i = 1
    segments: list[Segment] = []
    while i < len(expr):
        ch = expr[i]
        if ch == ".":
            if expr.startswith("..", i):
                raise JsonPathError(f"{expression}: deep scan '..' is not supported")
            i += 1
            if i < len(expr) and expr[i] == "[":
                continue
            if i < len(expr) and expr[i] == "*":
                segments.append(Wildcard())
                i += 1
                continue
            m = _NAME.match(expr, i)
            if not m:
                raise JsonPathError(f"{expression}: expected a field name after '.' at {i}")
            segments.append(Names((m.group(0),)))
            i = m.end()
        elif ch == "[":
            end = _closing(expression, expr, i)
            segments.append(_parse_bracket(expression, expr[i + 1 : end]))
            i = end + 1
        else:
            raise JsonPathError(f"{expression}: unexpected {ch!r} at position {i}")
    return JsonPath(expression, tuple(segments))


def _closing(expression: str, expr: str, start: int) -> int:
    quote = ""
    for j in range(start + 1, len(expr)):
        ch = expr[j]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            raise JsonPathError(f"{expression}: nested brackets are not supported")
        elif ch == "]":
            return j
    raise JsonPathError(f"{expression}: missing ']'")
