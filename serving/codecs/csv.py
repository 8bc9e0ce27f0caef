"""``text/csv``: numbers in, numbers out.

Decoding gives a 2-D ``float64`` ndarray, one row per non-blank line (``header=present`` skips
the first line; an empty field is NaN, as SageMaker's XGBoost reads it). A ragged row or a
field that is not a number is a 400 naming its line and column. Encoding writes one row per
line (a 1-D array: one value per line, as SageMaker's algorithms answer) with a trailing
newline; floats are written in the shortest form that reads back exactly (Python's ``repr``;
float32 values in float32's shortest form).
"""

from __future__ import annotations

import csv as _csv
import io
from typing import Any, ClassVar

import numpy as np

from ..errors import BadRequest
from ..negotiation import MediaType
from .base import Codec, text_of


def _lines(text: str, skip_header: bool) -> list[tuple[int, str]]:
    lines = text.split("\n")  # \r\n too; unlike splitlines(), no other control characters
    numbered = [(n, line.removesuffix("\r")) for n, line in enumerate(lines, start=1)]
    if skip_header and numbered:
        numbered = numbered[1:]
    return [(n, line) for n, line in numbered if line.strip()]


def _slow_parse(lines: list[tuple[int, str]], mime: str) -> np.ndarray:
    """Parse field by field, naming the first bad line and column."""
    width = -1
    first_line = 0
    rows = []
    for number, line in lines:
        fields = line.split(",")
        if width < 0:
            width, first_line = len(fields), number
        elif len(fields) != width:
            raise BadRequest(
                f"invalid {mime} body: line {number} has {len(fields)} columns, "
                f"line {first_line} has {width}"
            )
        row = []
        for column, text in enumerate(fields, start=1):
            stripped = text.strip()
            if not stripped:
                row.append(np.nan)
                continue
            try:
                row.append(float(stripped))
            except ValueError:
                raise BadRequest(
                    f"invalid {mime} body: line {number} column {column}: "
                    f"{stripped[:40]!r} is not a number"
                ) from None
        rows.append(row)
    return np.array(rows, dtype=np.float64)


class CSVCodec(Codec):
    """``text/csv`` (comma-separated numbers)."""

    content_type: ClassVar[str] = "text/csv"

    def decode(self, body: bytes, media: MediaType) -> np.ndarray:
        text = text_of(body, media)
        skip_header = (media.param("header") or "").lower() == "present"
        lines = _lines(text, skip_header)
        if not lines:
            raise BadRequest(f"empty {media.mime} body: no rows")
        data = "\n".join(line for _, line in lines)
        try:
            # numpy's C reader; any complaint is re-diagnosed below with a precise message.
            array = np.loadtxt(io.StringIO(data), delimiter=",", dtype=np.float64, ndmin=2)
        except ValueError:
            return _slow_parse(lines, media.mime)
        if array.shape[0] != len(lines):  # loadtxt read something differently: be exact
            return _slow_parse(lines, media.mime)
        return array

    def encode(self, value: Any, media: MediaType) -> bytes:
        array = _as_table(value)
        if array.dtype.kind in "fiub":
            if array.dtype.kind == "f" and array.dtype.itemsize < 8:
                # Shortest text that reads back as the same float32 ("0.1", not 0.100000001...).
                rows = array.astype(str).tolist()
                text = "".join(",".join(row) + "\n" for row in rows)
            else:
                rows = array.tolist()
                text = "".join(",".join(map(_number, row)) + "\n" for row in rows)
        else:
            buffer = io.StringIO()
            writer = _csv.writer(buffer, lineterminator="\n")
            writer.writerows(array.tolist())
            text = buffer.getvalue()
        return text.encode(media.charset or "utf-8")

    def can_encode(self, value: Any) -> bool:
        if isinstance(value, bytes | bytearray | memoryview | dict | str):
            return False
        try:
            array = _as_table(value)
        except (TypeError, ValueError):
            return False
        return array.dtype.kind in "fiubUS"


def _number(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(int(value))


def _as_table(value: Any) -> np.ndarray:
    """A 2-D array of rows: scalars and 1-D arrays become one value per row."""
    if hasattr(value, "to_numpy") and hasattr(value, "columns"):  # pandas.DataFrame
        value = value.to_numpy()
    array = np.asarray(value)
    if array.dtype.kind == "O":
        raise ValueError("rows of different lengths or non-numeric values cannot be CSV")
    if array.ndim == 0:
        return array.reshape(1, 1)
    if array.ndim == 1:
        return array.reshape(-1, 1)
    if array.ndim == 2:
        return array
    raise ValueError(f"a {array.ndim}-D array cannot be written as CSV rows")
