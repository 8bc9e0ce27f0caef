"""``application/json``: any JSON value in, any JSON-serialisable prediction out.

Decoding gives the parsed value (dict, list, str, number, bool or None) - the shape of a
request is the model's business (``{"instances": [...]}``, a bare list ...). Encoding takes
Python values plus numpy arrays and scalars and pandas objects; output is compact UTF-8
(``NaN``/``Infinity`` are written as Python's ``json`` writes them, as XGBoost's container does).
"""

from __future__ import annotations

import json as _json
from typing import Any, ClassVar

from ..errors import BadRequest
from ..negotiation import MediaType
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
    #: Separators of the output; compact by default.
    separators: ClassVar[tuple[str, str]] = (",", ":")

    def decode(self, body: bytes, media: MediaType) -> Any:
        text = text_of(body, media)
        if not text.strip():
            raise BadRequest(f"empty {media.mime} body")
        try:
            return _json.loads(text)
        except _json.JSONDecodeError as exc:
            raise parse_error(media.mime, exc) from None

    def dumps(self, value: Any) -> str:
        """*value* as JSON text."""
        # Whole arrays convert in C via tolist(); json's default hook would recurse per item.
        if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
            value = value.tolist()
        return _json.dumps(value, separators=self.separators, default=to_builtin)

    def encode(self, value: Any, media: MediaType) -> bytes:
        return self.dumps(value).encode(media.charset or "utf-8")

    def can_encode(self, value: Any) -> bool:
        return not isinstance(value, bytes | bytearray | memoryview)
