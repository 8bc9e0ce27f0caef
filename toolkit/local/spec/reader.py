"""Reading SageMaker request JSON with errors that name the JSON path of the bad field.

A :class:`Node` wraps one JSON value and the path that leads to it
(``InputDataConfig[1].DataSource.S3DataSource.S3Uri``); its accessors read values, apply
defaults and check what the local platform adds to the API's own rules, raising
:class:`SpecError` saying which field is wrong and why. The API's names, types and enums are
checked before, against botocore's model (:mod:`.schema`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagedock.toolkit.errors import UserError


class SpecError(UserError):
    """A request document (or the flags that build one) is invalid; the message starts with the
    JSON path of the field at fault."""


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def describe_kind(value: Any) -> str:
    """The JSON kind of *value* for a message (``a string``, ``an object``, ``null``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


@dataclass(frozen=True)
class Node:
    """A JSON value at *path* in a request document."""

    value: Any
    path: str = ""

    # -- errors ---------------------------------------------------------------------------
    def error(self, problem: str, key: str | int | None = None) -> SpecError:
        path = self.path if key is None else _join(self.path, key)
        return SpecError(f"{path or '(document)'}: {problem}")

    # -- structure ------------------------------------------------------------------------
    def as_object(self) -> dict[str, Any]:
        if not isinstance(self.value, dict):
            raise self.error(f"expected an object, got {describe_kind(self.value)}")
        return self.value

    def has(self, key: str) -> bool:
        return key in self.as_object() and self.as_object()[key] is not None

    def child(self, key: str | int) -> Node:
        if isinstance(key, int):
            return Node(self.value[key], _join(self.path, key))
        return Node(self.as_object().get(key), _join(self.path, key))

    def object(self, key: str, *, required: bool = False) -> Node | None:
        """The object under *key*, or None when absent (an error when *required*)."""
        node = self.child(key)
        if node.value is None:
            if required:
                raise self.error("is required", key)
            return None
        node.as_object()
        return node

    def items(self, key: str, *, required: bool = False, min_items: int = 0) -> list[Node]:
        """The elements of the list under *key* (empty when absent)."""
        node = self.child(key)
        if node.value is None:
            if required:
                raise self.error("is required", key)
            return []
        if not isinstance(node.value, list):
            raise node.error(f"expected a list, got {describe_kind(node.value)}")
        if len(node.value) < min_items:
            raise node.error(f"needs at least {min_items} element(s)")
        return [node.child(i) for i in range(len(node.value))]

    # -- scalars --------------------------------------------------------------------------
    def string(
        self,
        key: str,
        *,
        required: bool = False,
        default: str | None = None,
        pattern: str | None = None,
        allow_empty: bool = False,
    ) -> str | None:
        """The string under *key*; absent gives *default* (an error when *required*)."""
        value = self.as_object().get(key)
        if value is None:
            if required:
                raise self.error("is required", key)
            return default
        if not isinstance(value, str):
            raise self.error(f"expected a string, got {describe_kind(value)}", key)
        if not value and not allow_empty:
            if required:
                raise self.error("must not be empty", key)
            return default
        if pattern is not None and not re.fullmatch(pattern, value):
            raise self.error(f"{value!r} does not match {pattern}", key)
        return value

    def integer(
        self,
        key: str,
        *,
        required: bool = False,
        default: int | None = None,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        value = self.as_object().get(key)
        if value is None:
            if required:
                raise self.error("is required", key)
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"expected an integer, got {describe_kind(value)}", key)
        if minimum is not None and value < minimum:
            raise self.error(f"{value} is below the minimum {minimum}", key)
        if maximum is not None and value > maximum:
            raise self.error(f"{value} is above the maximum {maximum}", key)
        return value

    def string_map(self, key: str) -> dict[str, str]:
        """A ``{string: string}`` object (empty when absent)."""
        node = self.child(key)
        if node.value is None:
            return {}
        out: dict[str, str] = {}
        for k, v in node.as_object().items():
            if not isinstance(v, str):
                raise node.error(f"expected a string, got {describe_kind(v)}", k)
            out[k] = v
        return out

    def string_list(self, key: str) -> tuple[str, ...]:
        out = []
        for item in self.items(key):
            if not isinstance(item.value, str):
                raise item.error(f"expected a string, got {describe_kind(item.value)}")
            out.append(item.value)
        return tuple(out)


def load_document(source: str | Path) -> Node:
    """Parse a request document from a file: a path or a ``file://`` URI (``file:///abs``,
    ``file://relative``), as anywhere else a location is taken."""
    from sagedock.toolkit.local import locations

    if isinstance(source, Path):
        path = source
    else:
        if locations.is_s3(source):
            raise SpecError(
                f"cannot read spec {source}: a spec is a local file (a path or file:// URI)"
            )
        try:
            path = Path(locations.normalize(source))
        except UserError as exc:
            raise SpecError(f"cannot read spec file {source!r}: {exc.message}") from None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec file {path}: {exc.strerror or exc}") from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    node = Node(value)
    node.as_object()
    return node


def walk(node: Node) -> Iterator[Node]:
    """Every node under *node*, depth first (used to rewrite URIs)."""
    yield node
    if isinstance(node.value, dict):
        for key in node.value:
            yield from walk(node.child(key))
    elif isinstance(node.value, list):
        for i in range(len(node.value)):
            yield from walk(node.child(i))


def parse_key_values(items: Iterable[str], flag: str) -> dict[str, str]:
    """``["A=1", "B=x=y"]`` -> ``{"A": "1", "B": "x=y"}``; a missing ``=`` names *flag*."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def as_mapping(value: Mapping[str, Any] | Node) -> Node:
    return value if isinstance(value, Node) else Node(dict(value))
