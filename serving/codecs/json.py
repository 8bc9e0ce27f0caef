"""``application/json``: any JSON value in, any JSON-serialisable prediction out.

Decoding gives the parsed value (dict, list, str, number, bool or None) - the shape of a
request is the model's business (``{"instances": [...]}``, a bare list ...). Encoding takes
Python values plus numpy arrays and scalars and pandas objects; output is compact UTF-8 in which
NaN and infinities become ``null`` (JSON has no NaN; Python's ``json`` and SageMaker's XGBoost
write a bare ``NaN`` token, which strict parsers reject). orjson does the work where installed.
"""

from __future__ import annotations

import json as _json
from typing import Any, ClassVar

from ..errors import BadRequest
from ..negotiation import MediaType
from . import _jsonlib
from .base import Codec, text_of


def to_builtin(value: Any) -> Any:
    """Convert numpy / pandas / scipy values to plain Python for JSON; TypeError otherwise.

    Used as ``json.dumps(default=...)``: only called for types json does not know.
    """
    tolist = getattr(value, "tolist", None)
    module = type(value).__module__
    if module.startswith("numpy"):
        if getattr(value, "dtype", None) is not None and value.dtype.kind in "OV":
            return value.tolist()
        if tolist is not None:
            return tolist()
    if module.startswith("pandas"):
        if hasattr(value, "to_dict") and hasattr(value, "columns"):
            return value.to_dict(orient="records")
        if tolist is not None:
            return tolist()
    if module.startswith("scipy.sparse") and hasattr(value, "toarray"):
        return value.toarray().tolist()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"a {type(value).__name__} is not JSON serialisable")


def parse_error(mime: str, exc: _json.JSONDecodeError, line_offset: int = 0) -> BadRequest:
    """A 400 naming the line, column and character of a JSON syntax error."""
    return BadRequest(
        f"invalid {mime} body: {exc.msg} at line {exc.lineno + line_offset} "
        f"column {exc.colno} (char {exc.pos})"
    )


class JSONCodec(Codec):
    """``application/json``."""

    content_type: ClassVar[str] = "application/json"

    def decode(self, body: bytes, media: MediaType) -> Any:
        try:
            if media.charset in (None, "utf-8", "utf8") and not body.startswith(b"\xef\xbb\xbf"):
                try:
                    return _jsonlib.loads(body)
                except (_jsonlib.JSONDecodeError, UnicodeDecodeError):
                    pass  # re-read below for a precise message
            text = text_of(body, media)
            if not text.strip():
                raise BadRequest(f"empty {media.mime} body")
            try:
                return _jsonlib.loads(text)
            except _json.JSONDecodeError as exc:
                raise parse_error(media.mime, exc) from None
        except _jsonlib.JSONLimitError as exc:
            raise BadRequest(f"invalid {media.mime} body: {exc}") from None

    def dumps(self, value: Any) -> bytes:
        """*value* as compact UTF-8 JSON."""
        return _jsonlib.dumps(value, to_builtin)

    def encode(self, value: Any, media: MediaType) -> bytes:
        body = self.dumps(value)
        charset = media.charset
        if charset and charset not in ("utf-8", "utf8"):
            return body.decode("utf-8").encode(charset)
        return body

    def can_encode(self, value: Any) -> bool:
        return not isinstance(value, bytes | bytearray | memoryview)
