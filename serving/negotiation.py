"""Content negotiation: the request's ``Content-Type`` and the response type from ``Accept``.

- :func:`parse_content_type` turns a ``Content-Type`` header into a :class:`MediaType`
  (lower-cased type, every parameter kept: ``charset`` for decoding, the rest - ``label_size``,
  ``verbose``, ``header`` ... - for the hooks);
- :func:`choose_accept` picks the response type from an ``Accept`` header and the types we can
  produce: q-values, ``type/*`` and ``*/*``, ``q=0`` exclusions, the most specific range
  winning (RFC 9110 section 12.5.1, through werkzeug's ``MIMEAccept``). A missing, empty or
  ``*/*`` Accept means the configured default (``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header, parse_options_header

from .errors import BadRequest, NotAcceptable

# Distinct headers remembered by the parsing caches (bounded: headers come from clients).
_CACHE_SIZE = 256
_TOKEN = r"[!#$%&'*+.^_`|~0-9a-z-]+"
_MIME_RE = re.compile(rf"({_TOKEN})/({_TOKEN})")

#: Bare names SageMaker's algorithms accept as a Content-Type, and what they stand for.
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "csv": "text/csv",
        "libsvm": "text/libsvm",
        "json": "application/json",
        "jsonlines": "application/jsonlines",
    }
)


@dataclass(frozen=True)
class MediaType:
    """A parsed media type such as ``text/csv; charset=utf-8; header=present``.

    :param type: the top-level type, lower case (``text``).
    :param subtype: the subtype, lower case (``csv``).
    :param params: every parameter, names lower case, values as sent (unquoted).
    """

    type: str
    subtype: str
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def mime(self) -> str:
        """``"type/subtype"`` in lower case, without parameters."""
        return f"{self.type}/{self.subtype}"

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter in lower case, or None when not given."""
        value = self.params.get("charset")
        return value.strip().lower() if value else None

    def param(self, name: str, default: str | None = None) -> str | None:
        """A parameter by case-insensitive name."""
        return self.params.get(name.lower(), default)

    def matches(self, pattern: str) -> bool:
        """True if this type falls under *pattern* (``text/csv``, ``image/*`` or ``*/*``)."""
        kind, _, sub = pattern.lower().partition("/")
        return (kind in ("*", self.type)) and (sub in ("*", self.subtype))

    def __str__(self) -> str:
        parts = [self.mime]
        for name, value in self.params.items():
            quoted = value if re.fullmatch(_TOKEN, value.lower() or '""') else _quote(value)
            parts.append(f"{name}={quoted}")
        return "; ".join(parts)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@lru_cache(maxsize=_CACHE_SIZE)
def parse_media_type(value: str) -> MediaType:
    """Parse one media type; raise ``ValueError`` saying what is wrong with it.

    Results are cached (a server sees the same few headers over and over; MediaType is
    immutable).
    """
    mime, params = parse_options_header(value)
    mime = mime.strip().lower()
    mime = ALIASES.get(mime, mime)
    matched = _MIME_RE.fullmatch(mime)
    if matched is None:
        raise ValueError(f"{value.strip()!r} is not a media type (expected type/subtype)")
    return MediaType(matched.group(1), matched.group(2), MappingProxyType(dict(params)))


def parse_content_type(header: str | None, default: str) -> MediaType:
    """The request's media type; *default* when the header is missing or blank.

    :raises BadRequest: the header is not a media type, or names a wildcard (``text/*``).
    """
    value = header if header is not None and header.strip() else default
    try:
        media = parse_media_type(value)
    except ValueError as exc:
        raise BadRequest(f"invalid Content-Type header: {exc}") from None
    if "*" in (media.type, media.subtype):
        raise BadRequest(
            f"invalid Content-Type header: {value.strip()!r} is a range, not a media type"
        )
    return media


def _mime_only(item: str) -> str:
    """An Accept item without its parameters (``application/json;verbose=1`` -> type only)."""
    return item.partition(";")[0].strip().lower()


def parse_accept(header: str | None) -> MIMEAccept:
    """The Accept header as werkzeug's :class:`MIMEAccept`, parameters other than ``q`` dropped.

    SageMaker clients send parameters such as ``application/json;verbose=True``; they select
    nothing about the media type, so matching ignores them (hooks read them from the header).
    """
    parsed = parse_accept_header(header, MIMEAccept)
    return MIMEAccept([(_mime_only(item), quality) for item, quality in parsed])


def accept_params(header: str | None, mime: str) -> Mapping[str, str]:
    """The parameters (other than ``q``) the Accept header gives for *mime*, e.g. ``verbose``."""
    for item in (header or "").split(","):
        media, params = parse_options_header(item)
        if media.strip().lower() == mime.lower():
            return MappingProxyType({k: v for k, v in params.items() if k != "q"})
    return MappingProxyType({})


def choose_accept(accept: str | None, offered: Sequence[str], default: str) -> str:
    """The response media type: the best of *offered* for the *accept* header.

    A missing or blank header, or one that is only ``*/*``, gives *default* (even when it is
    not offered: the caller then reports that it cannot encode it). Otherwise the highest
    q-value wins, each offered type taking the q of the most specific range that matches it
    (so ``*/*, text/csv;q=0`` excludes CSV); among equal q-values the more specific range,
    then the client's order, then *default*, then the order of *offered*.

    :raises NotAcceptable: nothing offered is acceptable; the message lists *offered*.
    """
    if accept is None or not accept.strip():
        return default
    if accept in offered:  # the common case: one exact type
        return accept
    chosen = _choose(accept, tuple(offered), default)
    if chosen is None:
        supported = ", ".join(offered)
        raise NotAcceptable(
            f"cannot produce any type the Accept header allows ({accept.strip()!r}); "
            f"supported: {supported}"
        )
    return chosen


@lru_cache(maxsize=_CACHE_SIZE)
def _choose(accept: str, offered: tuple[str, ...], default: str) -> str | None:
    parsed = parse_accept(accept)
    if all(item == "*/*" and quality > 0 for item, quality in parsed) and len(parsed):
        return default
    best: tuple[float, int, bool, int] | None = None
    chosen = None
    for position, mime in enumerate(offered):
        try:
            quality = parsed.quality(mime)
            item = parsed.find(mime)  # most specific matching range; ties in client order
        except ValueError:  # an offered type werkzeug cannot match against
            continue
        if quality <= 0:
            continue
        key = (-quality, item, mime != default, position)
        if best is None or key < best:
            best, chosen = key, mime
    return chosen
