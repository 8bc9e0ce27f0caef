"""Which data format a content type names, the way SageMaker's built-in algorithms read it.

A channel's ``ContentType`` (or a request's ``Content-Type``) names one of four formats:

==================  ======================================================================
format              content types
==================  ======================================================================
``csv``             ``csv``, ``text/csv``
``libsvm``          ``libsvm``, ``text/libsvm``, ``text/x-libsvm``; also a missing type
``parquet``         ``parquet``, ``application/x-parquet``
``recordio-protobuf`` ``recordio-protobuf``, ``application/x-recordio-protobuf``
==================  ======================================================================

:func:`parse_content_type` is lenient the way SageMaker's XGBoost is after channel validation
and at inference: case-insensitive, parameters allowed (``text/csv; label_size=1``,
``charset=utf-8``), ``label_size`` must be ``1``. Pure functions; nothing here reads files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeAlias

from sagedock.toolkit.errors import UserError

DataFormat: TypeAlias = Literal["csv", "libsvm", "parquet", "recordio-protobuf"]

CSV: DataFormat = "csv"
LIBSVM: DataFormat = "libsvm"
PARQUET: DataFormat = "parquet"
RECORDIO_PROTOBUF: DataFormat = "recordio-protobuf"

#: The content type assumed when a channel or request does not name one.
DEFAULT_CONTENT_TYPE = "text/libsvm"

#: Every accepted spelling, in the order SageMaker's error message lists them.
ACCEPTED_CONTENT_TYPES: tuple[str, ...] = (
    "csv",
    "libsvm",
    "parquet",
    "recordio-protobuf",
    "text/csv",
    "text/libsvm",
    "text/x-libsvm",
    "application/x-parquet",
    "application/x-recordio-protobuf",
)

_FORMAT_OF: Mapping[str, DataFormat] = MappingProxyType(
    {
        "csv": CSV,
        "text/csv": CSV,
        "libsvm": LIBSVM,
        "text/libsvm": LIBSVM,
        "text/x-libsvm": LIBSVM,
        "parquet": PARQUET,
        "application/x-parquet": PARQUET,
        "recordio-protobuf": RECORDIO_PROTOBUF,
        "application/x-recordio-protobuf": RECORDIO_PROTOBUF,
    }
)


@dataclass(frozen=True)
class ContentType:
    """A parsed content type: its data format, bare media type and parameters."""

    format: DataFormat
    media_type: str
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def invalid_content_type_message(value: str) -> str:
    """SageMaker's message for a content type no reader accepts."""
    return f"{value} is not an accepted ContentType: {', '.join(ACCEPTED_CONTENT_TYPES)}."


def split_content_type(value: str) -> tuple[str, dict[str, str]]:
    """``"Text/CSV; label_size=1"`` -> ``("text/csv", {"label_size": "1"})``.

    The media type and parameter names are lower-cased, quoted values unquoted. A parameter
    given twice is a UserError (its meaning would be ambiguous); a parameter without ``=`` is
    ignored, as ``cgi.parse_header`` did.
    """
    media, *raw_params = value.lower().split(";")
    params: dict[str, str] = {}
    for raw in raw_params:
        name, sep, param_value = raw.partition("=")
        if not sep:
            continue
        name = name.strip()
        param_value = param_value.strip()
        if len(param_value) >= 2 and param_value[0] == param_value[-1] == '"':
            param_value = param_value[1:-1]
        if name in params:
            raise UserError(
                f"{value} is not an accepted ContentType: parameter {name!r} is repeated"
            )
        params[name] = param_value
    return media.strip(), params


def parse_content_type(value: str | None) -> ContentType:
    """The format *value* names; ``None`` or an empty string means libsvm.

    Raises a UserError naming the content type (and the accepted ones) when no reader takes
    it, or when a CSV ``label_size`` parameter is not ``1``.
    """
    if value is None or not value.strip():
        return ContentType(LIBSVM, DEFAULT_CONTENT_TYPE)
    media, params = split_content_type(value)
    fmt = _FORMAT_OF.get(media)
    if fmt is None:
        raise UserError(invalid_content_type_message(value))
    if fmt == CSV and params.get("label_size", "1") != "1":
        raise UserError(
            f"{value} is not an accepted csv ContentType. "
            "Optional parameter label_size must be equal to 1"
        )
    return ContentType(fmt, media, MappingProxyType(params))
