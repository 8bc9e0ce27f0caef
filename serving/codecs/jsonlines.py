"""``application/jsonlines``: one JSON value per line.

Decoding gives a list with one parsed value per non-blank line. Encoding writes each element of
a list, tuple or array (each row of a 2-D array) on its own line, a dict or scalar as one line;
every line ends with ``\\n``.
"""

from __future__ import annotations

import json as _json
from typing import Any, ClassVar

from ..errors import BadRequest
from ..negotiation import MediaType
from . import _jsonlib
from .base import Codec, text_of
from .json import to_builtin


class JSONLinesCodec(Codec):
    """``application/jsonlines``."""

    content_type: ClassVar[str] = "application/jsonlines"

    def decode(self, body: bytes, media: MediaType) -> list[Any]:
        text = text_of(body, media)
        values = []
        # Only \n ends a line: str.splitlines() would also split inside strings at U+0085 etc.
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                values.append(_jsonlib.loads(line))
            except _json.JSONDecodeError as exc:
                raise BadRequest(
                    f"invalid {media.mime} body: line {number}: {exc.msg} at column {exc.colno}"
                ) from None
            except _jsonlib.JSONLimitError as exc:
                raise BadRequest(f"invalid {media.mime} body: line {number}: {exc}") from None
        if not values:
            raise BadRequest(f"empty {media.mime} body: no JSON lines")
        return values

    def encode(self, value: Any, media: MediaType) -> bytes:
        module = type(value).__module__
        if module.startswith("pandas") and hasattr(value, "columns"):
            value = value.to_dict(orient="records")
        elif module.startswith(("numpy", "pandas")) and hasattr(value, "tolist"):
            value = list(value) if getattr(value, "ndim", 1) > 1 else value.tolist()
        items = value if isinstance(value, list | tuple) else [value]
        body = b"".join(_jsonlib.dumps(item, to_builtin) + b"\n" for item in items)
        charset = media.charset
        if charset and charset not in ("utf-8", "utf8"):
            return body.decode("utf-8").encode(charset)
        return body

    def can_encode(self, value: Any) -> bool:
        return not isinstance(value, bytes | bytearray | memoryview)
