"""``application/x-npz``: several named arrays, or a scipy sparse matrix, in ``.npz`` form.

Decoding gives a ``scipy.sparse`` matrix when the archive is one written by
``scipy.sparse.save_npz`` (what SageMaker's inference toolkit expects), else a dict of
name -> ndarray. Members are read without unpickling (object arrays are refused) and the
archive may not expand beyond :attr:`NpzCodec.max_uncompressed_bytes`. Encoding takes a dict of
arrays, a single array (stored as ``arr_0``) or a scipy sparse matrix.
"""

from __future__ import annotations

import io
import zipfile
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


class NpzCodec(Codec):
    """``application/x-npz``."""

    content_type: ClassVar[str] = "application/x-npz"
    #: Refuse archives that would expand beyond this many bytes (zip bombs).
    max_uncompressed_bytes: ClassVar[int] = 1 << 30

    def decode(self, body: bytes, media: MediaType) -> Any:
        what = f"{media.mime} body"
        try:
            archive = zipfile.ZipFile(io.BytesIO(body))
        except zipfile.BadZipFile as exc:
            raise BadRequest(f"{what} is not an .npz (zip) archive: {exc}") from None
        with archive:
            members = archive.infolist()
            total = sum(m.file_size for m in members)
            if total > self.max_uncompressed_bytes:
                raise BadRequest(
                    f"{what} expands to {total} bytes, more than the limit of "
                    f"{self.max_uncompressed_bytes}"
                )
            arrays: dict[str, np.ndarray] = {}
            for member in members:
                name = member.filename[:-4] if member.filename.endswith(".npy") else member.filename
                try:
                    raw = archive.read(member)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
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
