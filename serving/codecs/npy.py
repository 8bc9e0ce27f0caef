"""``application/x-npy``: one numpy array in the ``.npy`` format, never unpickled.

Decoding reads the array with ``allow_pickle=False``: an object array (which would need
unpickling, i.e. running code from the request) is refused with a 400. Encoding writes any
array-like of a non-object dtype.
"""

from __future__ import annotations

import io
import math
import tokenize
from typing import Any, ClassVar

import numpy as np

from ..errors import BadRequest
from ..negotiation import MediaType
from .base import Codec

_OBJECT_REFUSED = (
    "holds an object array, which could only be read by unpickling it (running code from the "
    "request); send a numeric, boolean or string dtype instead"
)


# What reading a .npy header can raise on hostile input: numpy filters the header through
# tokenize (TokenError) and ast.literal_eval (SyntaxError, RecursionError, ValueError ...), then
# builds a dtype from it (TypeError, KeyError, IndexError ...).
_HEADER_ERRORS = (
    ValueError,
    SyntaxError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    RecursionError,
    tokenize.TokenError,
)
#: Most elements accepted for a dtype of no bytes (``<U0``, ``V0``): such an array costs no
#: memory, but anything that walks it (``tolist()``, a model) takes time per element.
MAX_EMPTY_ITEMS = 1 << 20


def _declared_size(shape: tuple[int, ...], dtype: np.dtype[Any], available: int, what: str) -> None:
    """Refuse a header that declares more data than the body holds, before numpy allocates
    the array (a 100-byte body may declare 8 TiB)."""
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if nbytes > available or count > 2**63 - 1:
        raise BadRequest(
            f"{what} is truncated or corrupt: its header declares shape {shape} of {dtype} "
            f"({nbytes} bytes), but {available} bytes of data follow"
        )
    if dtype.itemsize == 0 and count > MAX_EMPTY_ITEMS:
        raise BadRequest(
            f"{what} declares {count} elements of the empty dtype {dtype}; at most "
            f"{MAX_EMPTY_ITEMS} are accepted"
        )


def read_npy(stream: io.BytesIO, what: str) -> np.ndarray:
    """One ``.npy`` array from *stream*, refusing pickles; BadRequest naming *what* on error."""
    try:
        version = np.lib.format.read_magic(stream)
    except ValueError as exc:
        raise BadRequest(f"{what} is not a .npy file: {exc}") from None
    start = stream.tell()
    try:
        if version == (1, 0):
            shape, _order, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _order, dtype = np.lib.format.read_array_header_2_0(stream)
    except _HEADER_ERRORS as exc:
        raise BadRequest(f"{what} has an invalid .npy header: {exc}") from None
    if dtype.hasobject:
        raise BadRequest(f"{what} {_OBJECT_REFUSED}")
    _declared_size(shape, dtype, len(stream.getbuffer()) - stream.tell(), what)
    stream.seek(start - 8)  # back to the magic for read_array
    try:
        return np.lib.format.read_array(stream, allow_pickle=False)
    except _HEADER_ERRORS as exc:
        raise BadRequest(f"{what} is truncated or corrupt: {exc}") from None


class NpyCodec(Codec):
    """``application/x-npy``."""

    content_type: ClassVar[str] = "application/x-npy"

    def decode(self, body: bytes, media: MediaType) -> np.ndarray:
        stream = io.BytesIO(body)
        array = read_npy(stream, f"{media.mime} body")
        if stream.tell() != len(body):
            raise BadRequest(
                f"{media.mime} body has {len(body) - stream.tell()} bytes after the array "
                f"(position {stream.tell()}); send exactly one .npy array"
            )
        return array

    def encode(self, value: Any, media: MediaType) -> bytes:
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise ValueError("object arrays are not written as .npy (they would need pickling)")
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, array, allow_pickle=False)
        return buffer.getvalue()

    def can_encode(self, value: Any) -> bool:
        if isinstance(value, bytes | bytearray | memoryview | str | dict):
            return False
        try:
            return not np.asarray(value).dtype.hasobject
        except (TypeError, ValueError):
            return False
