"""S3 data types beyond a prefix: ``ManifestFile`` and ``AugmentedManifestFile``.

A manifest file is a JSON array whose first element is ``{"prefix": "<location>/"}`` and whose
other elements are paths relative to that prefix. An augmented manifest is JSON Lines, one
object per record; the channel's ``AttributeNames`` pick the attributes streamed for each line
(an attribute whose name ends in ``-ref`` holds the location of an object whose content is
streamed; any other attribute's value is streamed itself).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sagedock.toolkit.errors import UserError

from . import locations
from .locations import DataObject


def read_manifest(location: str, *, environ: Mapping[str, str] | None = None) -> list[DataObject]:
    """The objects a manifest file at *location* lists, in its order."""
    raw = locations.read_bytes(location, environ=environ)
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"manifest {location} is not valid JSON: {exc}") from None
    if (
        not isinstance(value, list)
        or not value
        or not isinstance(value[0], dict)
        or not isinstance(value[0].get("prefix"), str)
    ):
        raise UserError(
            f'manifest {location}: expected a JSON array starting with {{"prefix": "..."}}'
        )
    prefix = value[0]["prefix"]
    try:
        base = locations.normalize(prefix)
    except UserError as exc:
        raise UserError(f"manifest {location}: prefix {prefix!r}: {exc.message}") from None
    out = []
    for i, item in enumerate(value[1:], start=1):
        if not isinstance(item, str) or not item or item.startswith("/") or ".." in item.split("/"):
            raise UserError(
                f"manifest {location}: element {i} must be a relative path, got {item!r}"
            )
        source = base + item if locations.is_s3(base) else locations.join(base, item)
        out.append(DataObject(source, item))
    return out


@dataclass(frozen=True)
class AugmentedRecord:
    """One attribute of one augmented-manifest line: inline bytes, or a location to read."""

    line: int
    attribute: str
    data: bytes | None = None
    location: str | None = None


def read_augmented_manifest(
    location: str, attribute_names: tuple[str, ...], *, environ: Mapping[str, str] | None = None
) -> list[list[AugmentedRecord]]:
    """Per line (in order), the attributes named by *attribute_names*, in that order."""
    raw = locations.read_bytes(location, environ=environ)
    out = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj: Any = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(
                f"augmented manifest {location} line {number}: not JSON: {exc}"
            ) from None
        if not isinstance(obj, dict):
            raise UserError(f"augmented manifest {location} line {number}: expected a JSON object")
        records = []
        for name in attribute_names:
            if name not in obj:
                raise UserError(
                    f"augmented manifest {location} line {number}: no attribute {name!r}"
                )
            value = obj[name]
            if name.endswith("-ref"):
                if not isinstance(value, str):
                    raise UserError(
                        f"augmented manifest {location} line {number}: {name} must be a URI"
                    )
                records.append(AugmentedRecord(number, name, location=locations.normalize(value)))
            else:
                text = value if isinstance(value, str) else json.dumps(value)
                records.append(AugmentedRecord(number, name, data=text.encode("utf-8")))
        out.append(records)
    return out
