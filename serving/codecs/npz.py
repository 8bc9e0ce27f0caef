"""``application/x-npz``: several named arrays, or a scipy sparse matrix, in ``.npz`` form.

Decoding gives a ``scipy.sparse`` matrix when the archive is one written by
``scipy.sparse.save_npz`` (what SageMaker's inference toolkit expects), else a dict of
name -> ndarray. Members are read without unpickling (object arrays are refused) and the
archive may not expand beyond :attr:`NpzCodec.max_inflated_bytes` (a multiple of
``SAGEMAKER_MAX_PAYLOAD_IN_MB``). Encoding takes a dict of
arrays, a single array (stored as ``arr_0``) or a scipy sparse matrix.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from typing import Any, ClassVar

import numpy as np

from ..errors import BadRequest
from ..negotiation import MediaType
from .base import Codec
from .npy import read_npy

# Members scipy.sparse.save_npz writes, by format.
_SPARSE_KEYS = {
    "csr": {"data", "indices", "indptr", "shape", "format"},
    "csc": {"data", "indices", "indptr", "shape", "format"},
    "bsr": {"data", "indices", "indptr", "shape", "format"},
    "coo": {"data", "row", "col", "shape", "format"},
    "dia": {"data", "offsets", "shape", "format"},
}


def _is_sparse(value: Any) -> bool:
    return type(value).__module__.startswith("scipy.sparse") and hasattr(value, "tocsr")


#: The inflated size allowed per byte of ``SAGEMAKER_MAX_PAYLOAD_IN_MB``: numeric arrays
#: compress a few times at most, so this leaves room for very sparse data while a zip bomb
#: (1 GiB from 100 KB) is refused before it is inflated.
INFLATE_FACTOR = 16
#: The inflated size allowed when the payload size is unlimited.
UNLIMITED_PAYLOAD_INFLATED_BYTES = 1 << 30
#: ``SAGEMAKER_MAX_PAYLOAD_IN_MB``'s default, for a codec built without settings.
DEFAULT_MAX_PAYLOAD_BYTES = 6 << 20

# What zipfile raises on a corrupt archive besides BadZipFile: an offset past the end
# (OSError, EOFError, ValueError), an unknown compression method (NotImplementedError), an
# encrypted member (RuntimeError), a broken deflate stream (zlib.error), a bad header
# (struct.error).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    zlib.error,
    struct.error,
)


class NpzCodec(Codec):
    """``application/x-npz``.

    :param max_payload_bytes: the request size limit (``SAGEMAKER_MAX_PAYLOAD_IN_MB``; None:
        unlimited); archives may inflate to :data:`INFLATE_FACTOR` times that.
    """

    content_type: ClassVar[str] = "application/x-npz"

    def __init__(self, max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        self.max_payload_bytes = max_payload_bytes
        #: Refuse archives whose members add up to more than this many bytes (zip bombs).
        self.max_inflated_bytes = (
            UNLIMITED_PAYLOAD_INFLATED_BYTES
            if max_payload_bytes is None
            else INFLATE_FACTOR * max_payload_bytes
        )

    def _limit(self) -> str:
        if self.max_payload_bytes is None:
            return str(self.max_inflated_bytes)
        return f"{self.max_inflated_bytes} ({INFLATE_FACTOR} x SAGEMAKER_MAX_PAYLOAD_IN_MB)"

    def decode(self, body: bytes, media: MediaType) -> Any:
        what = f"{media.mime} body"
        try:
            archive = zipfile.ZipFile(io.BytesIO(body))
        except _ZIP_ERRORS as exc:
            raise BadRequest(f"{what} is not an .npz (zip) archive: {exc}") from None
        with archive:
            members = archive.infolist()
            # zipfile never inflates a member beyond its declared size (it stops there and
            # the CRC check fails), so the declared sizes bound what is inflated.
            total = sum(m.file_size for m in members)
            if total > self.max_inflated_bytes:
                raise BadRequest(
                    f"{what} expands to {total} bytes, more than the limit of {self._limit()}"
                )
            arrays: dict[str, np.ndarray] = {}
            for member in members:
                name = member.filename[:-4] if member.filename.endswith(".npy") else member.filename
                try:
                    raw = archive.read(member)
                except _ZIP_ERRORS as exc:
                    raise BadRequest(
                        f"{what}: member {member.filename!r} is corrupt: {exc}"
                    ) from None
                arrays[name] = read_npy(io.BytesIO(raw), f"{what}: member {member.filename!r}")
        if "format" in arrays and set(arrays) == _SPARSE_KEYS.get(_format_name(arrays), set()):
            return self._sparse(arrays, what)
        return arrays

    @staticmethod
    def _sparse(arrays: dict[str, np.ndarray], what: str) -> Any:
        import scipy.sparse

        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]  # validated: no objects
        buffer.seek(0)
        try:
            return scipy.sparse.load_npz(buffer)
        except (ValueError, TypeError, IndexError) as exc:
            raise BadRequest(f"{what} is not a valid scipy sparse matrix: {exc}") from None

    def encode(self, value: Any, media: MediaType) -> bytes:
        buffer = io.BytesIO()
        if _is_sparse(value):
            import scipy.sparse

            scipy.sparse.save_npz(buffer, value)
            return buffer.getvalue()
        arrays = value if isinstance(value, dict) else {"arr_0": value}
        converted = {str(k): np.asarray(v) for k, v in arrays.items()}
        for name, array in converted.items():
            if array.dtype.hasobject:
                raise ValueError(f"array {name!r} has dtype object; .npz output is not pickled")
        np.savez(buffer, **converted)  # type: ignore[arg-type]
        return buffer.getvalue()

    def can_encode(self, value: Any) -> bool:
        if _is_sparse(value):
            return True
        if isinstance(value, bytes | bytearray | memoryview | str):
            return False
        items = value.values() if isinstance(value, dict) else [value]
        try:
            return all(not np.asarray(v).dtype.hasobject for v in items)
        except (TypeError, ValueError):
            return False


def _format_name(arrays: dict[str, np.ndarray]) -> str:
    fmt = arrays["format"]
    value = fmt.item() if fmt.ndim == 0 else ""
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
