"""SageMaker's ``aialgs.data.Record`` protobuf in RecordIO: ``application/x-recordio-protobuf``.

The schema is ``record.proto`` next to this module. This codec reads and writes the protobuf
wire format itself, with numpy doing the bulk work, instead of going through the protobuf
runtime: a file of uniform records (what SageMaker's SDK writes) is parsed as one 2-D byte
array, which is an order of magnitude faster than decoding record objects one by one (see
``bench/recordio``). Records that do not fit a common layout fall back to a per-record parser,
so every valid file is read.

What a caller gets:

- :func:`to_arrays` - the whole stream as ``(features, labels)``: a dense ``float32`` ndarray
  (or a ``scipy.sparse.csr_matrix`` when any record is sparse) from ``features["values"]`` and
  the ``label["values"]`` as an ndarray (1-D for scalar labels), or ``None`` without labels;
- :func:`iter_batches` - the same in batches of bounded size, for streams larger than memory;
- :func:`read_recordio_protobuf` - :class:`Record` objects, one per record;
- :func:`write_recordio_protobuf` / :func:`encode_recordio_protobuf` - a dense array or a
  scipy sparse matrix (and optional labels) as records, one per row;
- :func:`decode_record` / :func:`encode_record` - one payload <-> one :class:`Record`.

Malformed input raises :class:`RecordFormatError` (a ``UserError``) naming the record index and
its byte offset in the stream.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TypeAlias

import numpy as np

from sagedock.toolkit.errors import UserError

from . import recordio

if TYPE_CHECKING:
    import numpy.typing as npt

TensorType: TypeAlias = Literal["float32", "float64", "int32"]

#: The content type of this format.
CONTENT_TYPE = "application/x-recordio-protobuf"
#: The map key holding the feature vector and the label.
VALUES_KEY = "values"

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1

# Value oneof field numbers.
_VALUE_FIELD: dict[str, int] = {"float32": 2, "float64": 3, "int32": 7}
_FIELD_VALUE: dict[int, TensorType] = {2: "float32", 3: "float64", 7: "int32"}
_BYTES_FIELD = 9
# Little-endian numpy dtypes of packed values, by tensor type.
_WIRE_DTYPE: dict[str, str] = {"float32": "<f4", "float64": "<f8"}
# Wire type of one unpacked value, by tensor type (5 fixed32, 1 fixed64, 0 varint).
_SCALAR_WIRETYPE: dict[str, int] = {"float32": 5, "float64": 1, "int32": 0}


#: Most elements a tensor's shape may declare (int64's range, which indices are kept in).
_MAX_ELEMENTS = 2**63 - 1
#: Most values a sparse label is expanded to, per record: labels are dense in the result, and a
#: 20-byte record could otherwise declare terabytes of them.
MAX_SPARSE_LABEL_VALUES = 1 << 20


class RecordFormatError(UserError):
    """A recordio-protobuf record is malformed or does not fit the requested shape.

    :param index: the record's number in the stream (0-based).
    :param offset: the byte offset of the record's RecordIO header in the stream.
    :param problem: what is wrong with it.
    """

    def __init__(self, index: int, offset: int, problem: str) -> None:
        super().__init__(
            f"invalid recordio-protobuf data: record {index} at byte offset {offset}: {problem}"
        )
        self.index = index
        self.offset = offset
        self.problem = problem


class _WireError(Exception):
    """A protobuf wire-format problem at absolute position *pos* of the buffer being parsed."""

    def __init__(self, problem: str, pos: int) -> None:
        super().__init__(problem)
        self.problem = problem
        self.pos = pos

    def describe(self, payload_start: int) -> str:
        return f"malformed protobuf: {self.problem} at payload byte {self.pos - payload_start}"


# --------------------------------------------------------------------------------------------
# The data model


@dataclass(frozen=True, eq=False)
class Tensor:
    """A ``Float32Tensor``, ``Float64Tensor`` or ``Int32Tensor``.

    :param dtype: ``"float32"``, ``"float64"`` or ``"int32"``: which message it is on the wire.
    :param values: every value (dense) or the non-zero ones (sparse), 1-D.
    :param keys: sparse only: the flat position of each value (uint64); empty when dense.
    :param shape: the tensor's shape; required for sparse tensors.
    """

    dtype: TensorType
    values: np.ndarray
    keys: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    shape: tuple[int, ...] = ()

    @property
    def is_sparse(self) -> bool:
        """True when the values are addressed by keys (or a shape is given without values)."""
        return len(self.keys) > 0 or (len(self.values) == 0 and len(self.shape) > 0)

    @property
    def size(self) -> int:
        """Number of elements of the dense tensor."""
        if self.shape:
            return math.prod(self.shape)
        return len(self.values)

    def to_dense(self) -> np.ndarray:
        """The values as a dense 1-D array (sparse tensors expanded to ``prod(shape)``)."""
        if not self.is_sparse:
            return self.values
        out = np.zeros(self.size, dtype=self.values.dtype)
        out[self.keys.astype(np.int64)] = self.values
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tensor):
            return NotImplemented
        return (
            self.dtype == other.dtype
            and self.shape == other.shape
            and np.array_equal(self.values, other.values, equal_nan=True)
            and np.array_equal(self.keys, other.keys)
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class BytesValue:
    """A ``Bytes`` value: opaque byte strings with an optional content type."""

    values: tuple[bytes, ...]
    content_type: str | None = None


Value: TypeAlias = Tensor | BytesValue


@dataclass(frozen=True)
class Record:
    """One ``aialgs.data.Record``.

    Features and labels are maps of name -> :data:`Value`; the feature vector and the label
    conventionally live under the key ``"values"`` (:data:`VALUES_KEY`).
    """

    features: Mapping[str, Value] = field(default_factory=dict)
    label: Mapping[str, Value] = field(default_factory=dict)
    uid: str | None = None
    metadata: str | None = None
    configuration: str | None = None


# --------------------------------------------------------------------------------------------
# Wire-format primitives


def _read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise _WireError("truncated varint", pos)
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    pos += 1
    while True:
        if pos >= end:
            raise _WireError("truncated varint", pos)
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 70:
            raise _WireError("varint longer than 10 bytes", pos)


def _varint_bytes(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _decode_varints(raw: np.ndarray) -> np.ndarray:
    """Decode a uint8 array of concatenated varints to uint64 (vectorised)."""
    if raw.size == 0:
        return np.empty(0, dtype=np.uint64)
    last = raw < 0x80
    if last.all():
        return raw.astype(np.uint64)
    ends = np.flatnonzero(last)
    if ends.size == 0 or ends[-1] != raw.size - 1:
        raise ValueError("truncated varint")
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if int(lengths.max()) > 10:
        raise ValueError("varint longer than 10 bytes")
    within = np.arange(raw.size, dtype=np.int64) - np.repeat(starts, lengths)
    parts = (raw & 0x7F).astype(np.uint64) << (within * 7).astype(np.uint64)
    return np.add.reduceat(parts, starts)


def _encode_varints(values: np.ndarray) -> bytes:
    """Encode a uint64 array as concatenated varints (vectorised)."""
    v = np.ascontiguousarray(values, dtype=np.uint64)
    if v.size == 0:
        return b""
    if int(v.max()) < 0x80:
        return v.astype(np.uint8).tobytes()
    nbytes = np.ones(v.shape, dtype=np.int64)
    for k in range(1, 10):
        nbytes += v >= np.uint64(1 << (7 * k))
    ends = np.cumsum(nbytes)
    starts = ends - nbytes
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    for j in range(int(nbytes.max())):
        sel = nbytes > j
        chunk = (v[sel] >> np.uint64(7 * j)) & np.uint64(0x7F)
        more = (nbytes[sel] > j + 1).astype(np.uint64) << np.uint64(7)
        out[starts[sel] + j] = (chunk | more).astype(np.uint8)
    return out.tobytes()


def _skip_field(buf: bytes, pos: int, end: int, wiretype: int) -> int:
    if wiretype == 0:
        return _read_varint(buf, pos, end)[1]
    if wiretype == 1:
        pos += 8
    elif wiretype == 2:
        length, pos = _read_varint(buf, pos, end)
        pos += length
    elif wiretype == 5:
        pos += 4
    else:
        raise _WireError(f"unsupported wire type {wiretype}", pos)
    if pos > end:
        raise _WireError("field runs past the end of its message", end)
    return pos


def _read_len(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """A length-delimited field's ``(start, stop)``, checked against *end*."""
    length, pos = _read_varint(buf, pos, end)
    stop = pos + length
    if stop > end:
        raise _WireError(
            f"length-delimited field of {length} bytes runs past the end of its message", pos
        )
    return pos, stop


# --------------------------------------------------------------------------------------------
# Decoding one payload


@dataclass
class _Layout:
    """Where a tensor's packed arrays lie in a payload (absolute offsets) - for templates."""

    dtype: TensorType
    values: tuple[int, int] | None = None  # (start, stop)
    keys: tuple[int, int] | None = None
    shape: tuple[int, ...] = ()
    regular: bool = True  # one packed chunk per field: a template can describe it


def _parse_tensor(buf: bytes, pos: int, end: int, dtype: TensorType) -> tuple[Tensor, _Layout]:
    layout = _Layout(dtype)
    value_chunks: list[np.ndarray] = []
    key_chunks: list[np.ndarray] = []
    shape: list[int] = []
    wire_dtype = _WIRE_DTYPE.get(dtype)
    while pos < end:
        tag, pos = _read_varint(buf, pos, end)
        number, wiretype = tag >> 3, tag & 7
        if number == 1:
            if wiretype == 2:
                start, stop = _read_len(buf, pos, end)
                if wire_dtype is not None:
                    itemsize = 4 if dtype == "float32" else 8
                    if (stop - start) % itemsize:
                        raise _WireError(
                            f"packed {dtype} values of {stop - start} bytes "
                            f"(not a multiple of {itemsize})",
                            start,
                        )
                    value_chunks.append(
                        np.frombuffer(
                            buf, dtype=wire_dtype, count=(stop - start) // itemsize, offset=start
                        )
                    )
                else:
                    raw = np.frombuffer(buf, dtype=np.uint8, count=stop - start, offset=start)
                    try:
                        decoded = _decode_varints(raw)
                    except ValueError as exc:
                        raise _WireError(f"int32 values: {exc}", start) from None
                    value_chunks.append(decoded.view(np.int64).astype(np.int32))
                if layout.values is not None:
                    layout.regular = False
                layout.values = (start, stop)
                pos = stop
            elif wiretype == _SCALAR_WIRETYPE[dtype]:
                layout.regular = False
                if wiretype == 0:
                    raw_int, pos = _read_varint(buf, pos, end)
                    value_chunks.append(
                        np.array([raw_int], dtype=np.uint64).view(np.int64).astype(np.int32)
                    )
                else:
                    size = 4 if wiretype == 5 else 8
                    if pos + size > end:
                        raise _WireError("truncated value", pos)
                    value_chunks.append(
                        np.frombuffer(buf, dtype=wire_dtype, count=1, offset=pos).copy()
                    )
                    pos += size
            else:
                raise _WireError(f"{dtype} values with wire type {wiretype}", pos)
        elif number in (2, 3):
            if wiretype == 2:
                start, stop = _read_len(buf, pos, end)
                raw = np.frombuffer(buf, dtype=np.uint8, count=stop - start, offset=start)
                try:
                    decoded = _decode_varints(raw)
                except ValueError as exc:
                    name = "keys" if number == 2 else "shape"
                    raise _WireError(f"{name}: {exc}", start) from None
                pos = stop
            elif wiretype == 0:
                single, pos = _read_varint(buf, pos, end)
                decoded = np.array([single], dtype=np.uint64)
                layout.regular = False
            else:
                raise _WireError(f"keys/shape with wire type {wiretype}", pos)
            if number == 2:
                if layout.keys is not None or wiretype == 0:
                    layout.regular = False
                if wiretype == 2:
                    layout.keys = (start, stop)
                key_chunks.append(decoded)
            else:
                shape.extend(int(x) for x in decoded)
        else:
            pos = _skip_field(buf, pos, end, wiretype)
    if pos != end:
        raise _WireError("tensor message overruns its length", end)
    np_dtype = np.float32 if dtype == "float32" else np.float64 if dtype == "float64" else np.int32
    values = (
        value_chunks[0]
        if len(value_chunks) == 1
        else np.concatenate(value_chunks)
        if value_chunks
        else np.empty(0, dtype=np_dtype)
    )
    keys = (
        key_chunks[0]
        if len(key_chunks) == 1
        else np.concatenate(key_chunks)
        if key_chunks
        else np.empty(0, dtype=np.uint64)
    )
    if len(keys) and len(keys) != len(values):
        raise _WireError(f"sparse tensor has {len(keys)} keys but {len(values)} values", end)
    if math.prod(shape) > _MAX_ELEMENTS:
        # Row widths and sparse indices are int64 from here on (numpy, scipy).
        raise _WireError(f"shape {shape} has more than 2**63 - 1 elements", end)
    layout.shape = tuple(shape)
    return Tensor(dtype, values, keys, tuple(shape)), layout


def _parse_string(buf: bytes, start: int, stop: int) -> str:
    try:
        return buf[start:stop].decode("utf-8")
    except UnicodeDecodeError:
        raise _WireError("string field is not valid UTF-8", start) from None


def _parse_value(buf: bytes, pos: int, end: int) -> tuple[Value | None, _Layout | None]:
    value: Value | None = None
    layout: _Layout | None = None
    while pos < end:
        tag, pos = _read_varint(buf, pos, end)
        number, wiretype = tag >> 3, tag & 7
        if wiretype == 2 and number in _FIELD_VALUE:
            start, stop = _read_len(buf, pos, end)
            value, layout = _parse_tensor(buf, start, stop, _FIELD_VALUE[number])
            pos = stop
        elif wiretype == 2 and number == _BYTES_FIELD:
            start, stop = _read_len(buf, pos, end)
            items: list[bytes] = []
            content_type = None
            inner = start
            while inner < stop:
                itag, inner = _read_varint(buf, inner, stop)
                if itag == 0x0A:
                    s, e = _read_len(buf, inner, stop)
                    items.append(bytes(buf[s:e]))
                    inner = e
                elif itag == 0x12:
                    s, e = _read_len(buf, inner, stop)
                    content_type = _parse_string(buf, s, e)
                    inner = e
                else:
                    inner = _skip_field(buf, inner, stop, itag & 7)
            value, layout = BytesValue(tuple(items), content_type), None
            pos = stop
        else:
            pos = _skip_field(buf, pos, end, wiretype)
    return value, layout


def _parse_map_entry(buf: bytes, pos: int, end: int) -> tuple[str, Value | None, _Layout | None]:
    key = ""
    value: Value | None = None
    layout: _Layout | None = None
    while pos < end:
        tag, pos = _read_varint(buf, pos, end)
        if tag == 0x0A:
            start, stop = _read_len(buf, pos, end)
            key = _parse_string(buf, start, stop)
            pos = stop
        elif tag == 0x12:
            start, stop = _read_len(buf, pos, end)
            value, layout = _parse_value(buf, start, stop)
            pos = stop
        else:
            pos = _skip_field(buf, pos, end, tag & 7)
    return key, value, layout


def _parse_record(buf: bytes, pos: int, end: int) -> tuple[Record, _Layout | None, _Layout | None]:
    """Parse one payload ``buf[pos:end]``; also where the "values" tensors lie."""
    features: dict[str, Value] = {}
    label: dict[str, Value] = {}
    layouts: dict[int, _Layout | None] = {1: None, 2: None}
    strings: dict[int, str] = {}
    while pos < end:
        tag, pos = _read_varint(buf, pos, end)
        number, wiretype = tag >> 3, tag & 7
        if wiretype == 2 and number in (1, 2):
            start, stop = _read_len(buf, pos, end)
            key, value, layout = _parse_map_entry(buf, start, stop)
            if value is not None:
                (features if number == 1 else label)[key] = value
                if key == VALUES_KEY:
                    layouts[number] = layout
            pos = stop
        elif wiretype == 2 and number in (3, 4, 5):
            start, stop = _read_len(buf, pos, end)
            strings[number] = _parse_string(buf, start, stop)
            pos = stop
        else:
            pos = _skip_field(buf, pos, end, wiretype)
    record = Record(
        features=MappingProxyType(features),
        label=MappingProxyType(label),
        uid=strings.get(3),
        metadata=strings.get(4),
        configuration=strings.get(5),
    )
    return record, layouts[1], layouts[2]


def decode_record(payload: bytes, *, index: int = 0, offset: int = 0) -> Record:
    """Decode one RecordIO payload into a :class:`Record`.

    *index* and *offset* only name the record in a :class:`RecordFormatError`.
    """
    payload = bytes(payload)
    try:
        return _parse_record(payload, 0, len(payload))[0]
    except _WireError as exc:
        raise RecordFormatError(index, offset, exc.describe(0)) from None


def read_recordio_protobuf(stream: BinaryIO) -> Iterator[Record]:
    """Yield a :class:`Record` for each record of a RecordIO *stream* (read incrementally)."""
    for index, offset, payload in recordio.iter_framed(stream):
        yield decode_record(payload, index=index, offset=offset)


# --------------------------------------------------------------------------------------------
# Whole streams to numpy / scipy


_OUT_DTYPES = (np.float32, np.float64)
_GATHER_BYTES = 1 << 24


@dataclass
class _Block:
    """Rows parsed together: features as (n, m) values (+ keys if sparse), labels (n, k)."""

    rows: np.ndarray  # int64 record positions
    values: np.ndarray  # (n, m)
    keys: np.ndarray | None  # (n, m) int64 for sparse rows, None for dense
    widths: np.ndarray  # (n,) declared width of each row
    labels: np.ndarray | None  # (n, k) or None


def _read_input(source: BinaryIO | bytes | bytearray | memoryview) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, bytearray | memoryview):
        return bytes(source)
    data = source.read()
    return bytes(data) if data is not None else b""


def _row_width(tensor: Tensor) -> int:
    if tensor.is_sparse:
        if tensor.shape:
            return math.prod(tensor.shape)
        return int(tensor.keys.max()) + 1 if len(tensor.keys) else 0
    return len(tensor.values)


def _single_block(
    row: int,
    record: Record,
    index: int,
    offset: int,
    dtype: npt.DTypeLike,
) -> _Block:
    feature = record.features.get(VALUES_KEY)
    if feature is None:
        names = ", ".join(repr(k) for k in record.features) or "none"
        raise RecordFormatError(
            index, offset, f"no features[{VALUES_KEY!r}] tensor (feature keys: {names})"
        )
    if isinstance(feature, BytesValue):
        raise RecordFormatError(
            index, offset, f"features[{VALUES_KEY!r}] holds bytes, not a numeric tensor"
        )
    values = feature.values.astype(dtype, copy=False)[None, :]
    keys: np.ndarray | None = None
    width = _row_width(feature)
    if feature.is_sparse:
        keys = feature.keys.astype(np.int64)[None, :]
        if len(feature.keys) and int(feature.keys.max()) >= width:
            raise RecordFormatError(
                index,
                offset,
                f"sparse key {int(feature.keys.max())} is outside the tensor's shape "
                f"{list(feature.shape)}",
            )
    labels: np.ndarray | None = None
    label = record.label.get(VALUES_KEY)
    if label is not None:
        if isinstance(label, BytesValue):
            raise RecordFormatError(
                index, offset, f"label[{VALUES_KEY!r}] holds bytes, not a numeric tensor"
            )
        if label.is_sparse and label.size > MAX_SPARSE_LABEL_VALUES:
            raise RecordFormatError(
                index,
                offset,
                f"label[{VALUES_KEY!r}] of shape {list(label.shape)} is too large to expand: "
                f"{label.size} values, at most {MAX_SPARSE_LABEL_VALUES} per record",
            )
        labels = label.to_dense().astype(dtype, copy=False)[None, :]
    return _Block(np.array([row]), values, keys, np.array([width]), labels)


class _Template:
    """The byte layout shared by a group of equal-length payloads, learnt from one of them."""

    def __init__(
        self, start: int, payload_len: int, feature: _Layout, label: _Layout | None
    ) -> None:
        self.feature = feature
        self.label = label
        variable = np.zeros(payload_len, dtype=bool)
        for layout in (feature, label):
            if layout is None:
                continue
            for region in (layout.values, layout.keys):
                if region is not None:
                    variable[region[0] - start : region[1] - start] = True
        self.fixed = np.flatnonzero(~variable)

    @staticmethod
    def usable(feature: _Layout | None, label: _Layout | None, record: Record) -> bool:
        if feature is None or not feature.regular:
            return False
        if label is not None and (
            not label.regular or label.keys is not None or (label.values is None and label.shape)
        ):
            return False
        tensor = record.features[VALUES_KEY]
        return isinstance(tensor, Tensor) and not (tensor.is_sparse and feature.keys is None)


def _payload_matrix(buf: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """A (n, length) uint8 view (arithmetic starts) or copy of the payloads at *starts*."""
    n = len(starts)
    if n == 1 or (n > 1 and np.all(np.diff(starts) == starts[1] - starts[0])):
        step = int(starts[1] - starts[0]) if n > 1 else length
        if step > 0:
            return np.lib.stride_tricks.as_strided(
                buf[int(starts[0]) :], shape=(n, length), strides=(step, 1), writeable=False
            )
    return buf[starts[:, None] + np.arange(length)]


def _region_values(
    mat: np.ndarray, region: tuple[int, int] | None, base: int, dtype: TensorType
) -> np.ndarray | None:
    """(n, m) values decoded from a packed region of every payload, or None if irregular."""
    n = mat.shape[0]
    if region is None:
        return np.empty((n, 0), dtype=np.float64 if dtype == "float64" else np.float32)
    lo, hi = region[0] - base, region[1] - base
    raw = np.ascontiguousarray(mat[:, lo:hi])
    if dtype in _WIRE_DTYPE:
        return raw.view(_WIRE_DTYPE[dtype]).reshape(n, -1)
    return _varint_rows(raw, signed=True)


def _varint_rows(raw: np.ndarray, *, signed: bool) -> np.ndarray | None:
    """Decode (n, b) bytes holding the same number of varints per row, else None."""
    n, width = raw.shape
    if width == 0:
        return np.empty((n, 0), dtype=np.int64)
    terminators = raw < 0x80
    counts = terminators.sum(axis=1)
    if not np.all(counts == counts[0]) or not terminators[:, -1].all():
        return None
    decoded = _decode_varints(raw.reshape(-1)).view(np.int64).reshape(n, int(counts[0]))
    return decoded.astype(np.int32) if signed else decoded


def _template_blocks(
    buf: np.ndarray,
    data: bytes,
    rows: np.ndarray,
    starts: np.ndarray,
    length: int,
    dtype: npt.DTypeLike,
) -> tuple[list[_Block], np.ndarray]:
    """Parse equal-length payloads with a shared layout; return blocks and unmatched rows."""
    blocks: list[_Block] = []
    pending = np.arange(len(rows))
    for _attempt in range(4):
        if len(pending) < 2:
            break
        first = int(starts[pending[0]])
        try:
            record, feature, label = _parse_record(data, first, first + length)
        except _WireError:
            break
        if VALUES_KEY not in record.features or not _Template.usable(feature, label, record):
            break
        assert feature is not None
        template = _Template(first, length, feature, label)
        mat = _payload_matrix(buf, starts[pending], length)
        reference = buf[first + template.fixed]
        same = np.all(mat[:, template.fixed] == reference, axis=1)
        matched = pending[same]
        mat = mat[same] if not same.all() else mat
        values = _region_values(mat, feature.values, first, feature.dtype)
        keys = None
        if feature.keys is not None:
            lo, hi = feature.keys[0] - first, feature.keys[1] - first
            keys = _varint_rows(np.ascontiguousarray(mat[:, lo:hi]), signed=False)
        labels = None
        if label is not None:
            labels = _region_values(mat, label.values, first, label.dtype)
        if (
            values is None
            or (feature.keys is not None and (keys is None or keys.shape != values.shape))
            or (label is not None and labels is None)
        ):
            break
        tensor = record.features[VALUES_KEY]
        assert isinstance(tensor, Tensor)
        width = _row_width(tensor)
        if keys is not None and not tensor.shape:
            widths = keys.max(axis=1) + 1 if keys.shape[1] else np.zeros(len(keys), np.int64)
        else:
            widths = np.full(len(matched), width, dtype=np.int64)
        blocks.append(
            _Block(
                rows[matched],
                values.astype(dtype, copy=False),
                keys,
                widths,
                None if labels is None else labels.astype(dtype, copy=False),
            )
        )
        pending = pending[~same]
    return blocks, rows[pending]


def _row_error(row: int, offsets: np.ndarray, base_index: int, problem: str) -> RecordFormatError:
    return RecordFormatError(base_index + row, int(offsets[row]), problem)


def _assemble(
    blocks: list[_Block], n: int, offsets: np.ndarray, dtype: npt.DTypeLike, base_index: int
) -> tuple[Any, np.ndarray | None]:
    if n == 0:
        return np.empty((0, 0), dtype=dtype), None
    # Labels: all records or none, all the same length.
    label_len = np.full(n, -1, dtype=np.int64)
    for b in blocks:
        label_len[b.rows] = -1 if b.labels is None else b.labels.shape[1]
    if not np.all(label_len == label_len[0]):
        row = int(np.flatnonzero(label_len != label_len[0])[0])
        if label_len[0] == -1 or label_len[row] == -1:
            has = "has" if label_len[row] != -1 else "has no"
            first = "does not" if label_len[0] == -1 else "does"
            problem = f"{has} label[{VALUES_KEY!r}] while record {base_index} {first}"
        else:
            problem = (
                f"label has {label_len[row]} values while record {base_index}'s has {label_len[0]}"
            )
        raise _row_error(row, offsets, base_index, problem)
    labels: np.ndarray | None = None
    if label_len[0] >= 0:
        labels = np.empty((n, int(label_len[0])), dtype=dtype)
        for b in blocks:
            assert b.labels is not None
            labels[b.rows] = b.labels
        if labels.shape[1] == 1:
            labels = labels[:, 0]

    if all(b.keys is None for b in blocks):
        widths = np.empty(n, dtype=np.int64)
        for b in blocks:
            widths[b.rows] = b.values.shape[1]
        if not np.all(widths == widths[0]):
            row = int(np.flatnonzero(widths != widths[0])[0])
            raise _row_error(
                row,
                offsets,
                base_index,
                f"has {widths[row]} features while record {base_index} has {widths[0]} "
                "(dense records must all have the same number of features)",
            )
        features = np.empty((n, int(widths[0])), dtype=dtype)
        for b in blocks:
            features[b.rows] = b.values
        return features, labels

    import scipy.sparse

    nnz = np.empty(n, dtype=np.int64)
    width = 0
    for b in blocks:
        nnz[b.rows] = b.values.shape[1]
        if len(b.widths):
            width = max(width, int(b.widths.max()))
        if b.keys is not None and b.keys.size:
            # Keys are uint64 on the wire, read as int64: one of 2**63 or more is negative here.
            too_big = (b.keys.max(axis=1) >= b.widths) | (b.keys.min(axis=1) < 0)
            if too_big.any():
                row = int(b.rows[np.flatnonzero(too_big)[0]])
                raise _row_error(
                    row, offsets, base_index, "a sparse key is outside the tensor's shape"
                )
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(nnz, out=indptr[1:])
    data = np.empty(int(indptr[-1]), dtype=dtype)
    indices = np.empty(int(indptr[-1]), dtype=np.int64)
    for b in blocks:
        m = b.values.shape[1]
        if m == 0:
            continue
        positions = (indptr[b.rows][:, None] + np.arange(m)).reshape(-1)
        data[positions] = b.values.reshape(-1)
        indices[positions] = (
            np.broadcast_to(np.arange(m), (len(b.rows), m)) if b.keys is None else b.keys
        ).reshape(-1)
    if width <= np.iinfo(np.int32).max and len(indices) <= np.iinfo(np.int32).max:
        indices = indices.astype(np.int32)
        indptr = indptr.astype(np.int32)
    matrix = scipy.sparse.csr_matrix((data, indices, indptr), shape=(n, width))
    return matrix, labels


def arrays_from_buffer(
    data: bytes, *, dtype: npt.DTypeLike = np.float32, base_offset: int = 0, base_index: int = 0
) -> tuple[Any, np.ndarray | None]:
    """:func:`to_arrays` for a complete in-memory RecordIO buffer."""
    if np.dtype(dtype) not in [np.dtype(d) for d in _OUT_DTYPES]:
        raise ValueError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    framing = recordio.scan_records(
        data, final=True, base_offset=base_offset, base_index=base_index
    )
    return _arrays(data, framing, dtype, base_offset, base_index)


# A Float64Tensor value beyond float32's range reads as +-inf when float32 is asked for, as
# XGBoost's own float32 matrices hold it (and then refuse it: "Input data contains `inf` or a
# value too large"); numpy's "overflow encountered in cast" warning on every batch is no news.
@np.errstate(over="ignore")
def _arrays(
    data: bytes,
    framing: recordio.Framing,
    dtype: npt.DTypeLike,
    base_offset: int,
    base_index: int,
) -> tuple[Any, np.ndarray | None]:
    n = len(framing)
    offsets = framing.offsets(base_offset)
    blocks: list[_Block] = []
    leftovers: list[int] = list(framing.joined)
    if n:
        buf = np.frombuffer(data, dtype=np.uint8)
        single = np.flatnonzero(framing.starts >= 0)
        lengths = framing.lengths[single]
        order = np.argsort(lengths, kind="stable")
        cuts = np.flatnonzero(np.diff(lengths[order])) + 1
        for group in np.split(order, cuts):
            rows = single[group]
            if len(rows) < 4:
                leftovers.extend(rows.tolist())
                continue
            length = int(framing.lengths[rows[0]])
            # Bound the byte matrix gathered for scattered payloads to a few MB at a time.
            chunk = max(4, _GATHER_BYTES // max(length, 1))
            for lo in range(0, len(rows), chunk):
                part = rows[lo : lo + chunk]
                found, rest = _template_blocks(buf, data, part, framing.starts[part], length, dtype)
                blocks.extend(found)
                leftovers.extend(rest.tolist())
    for row in leftovers:
        if row in framing.joined:
            payload, start = framing.joined[row], 0
            stop = len(payload)
        else:
            payload, start = data, int(framing.starts[row])
            stop = start + int(framing.lengths[row])
        index = base_index + row
        try:
            record = _parse_record(payload, start, stop)[0]
        except _WireError as exc:
            raise RecordFormatError(index, int(offsets[row]), exc.describe(start)) from None
        blocks.append(_single_block(row, record, index, int(offsets[row]), dtype))
    return _assemble(blocks, n, offsets, dtype, base_index)


def to_arrays(
    stream: BinaryIO | bytes | bytearray | memoryview, *, dtype: npt.DTypeLike = np.float32
) -> tuple[Any, np.ndarray | None]:
    """Read a whole recordio-protobuf stream into ``(features, labels)``.

    :param stream: a binary file object (read to the end) or the bytes themselves.
    :param dtype: ``float32`` (default) or ``float64`` for features and labels.
    :returns: *features* from each record's ``features["values"]``: a dense ``(n, d)`` ndarray
        when every record is dense, else a ``scipy.sparse.csr_matrix`` of width ``max(shape)``
        (dense records in a sparse file become rows of it). *labels* from ``label["values"]``:
        ``(n,)`` for scalar labels, ``(n, k)`` for vectors, ``None`` when no record has one.
        Float32, Float64 and Int32 tensors are all accepted.
    :raises RecordFormatError: a malformed record, a missing ``features["values"]``, dense rows
        of different widths, labels on some records only; the message names the record and its
        byte offset. :class:`~.recordio.RecordIOError` for broken framing.
    """
    return arrays_from_buffer(_read_input(stream), dtype=dtype)


def iter_batches(
    stream: BinaryIO, *, batch_bytes: int = 1 << 26, dtype: npt.DTypeLike = np.float32
) -> Iterator[tuple[Any, np.ndarray | None]]:
    """Read a stream in pieces of about *batch_bytes*, yielding ``(features, labels)`` per piece.

    Each batch is what :func:`to_arrays` returns for its records, so memory stays bounded by
    the batch size (a Pipe-mode FIFO or a file larger than memory can feed an xgboost data
    iterator). Sparse batches are as wide as their own widest record: pad with
    ``matrix.resize`` if one width is needed. Error messages count records and byte offsets
    from the start of the stream.
    """
    if np.dtype(dtype) not in [np.dtype(d) for d in _OUT_DTYPES]:
        raise ValueError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    carry = b""
    offset = 0
    index = 0
    while True:
        chunk = stream.read(batch_bytes)
        if not chunk:
            if carry:
                yield arrays_from_buffer(carry, dtype=dtype, base_offset=offset, base_index=index)
            return
        data = carry + bytes(chunk) if carry else bytes(chunk)
        framing = recordio.scan_records(data, final=False, base_offset=offset, base_index=index)
        if framing.consumed == 0:
            carry = data  # a record longer than one batch: read on
            continue
        if framing.consumed < len(data):
            carry = data[framing.consumed :]
            data = data[: framing.consumed]
        else:
            carry = b""
        yield _arrays(data, framing, dtype, offset, index)
        offset += framing.consumed
        index += len(framing)


# --------------------------------------------------------------------------------------------
# Encoding


def _tensor_type(array: np.ndarray, what: str) -> TensorType:
    kind = array.dtype.kind
    if array.dtype == np.float32:
        return "float32"
    if array.dtype == np.float64:
        return "float64"
    if kind == "f" and array.dtype.itemsize < 4:
        return "float32"
    if kind in "iub":
        if array.size and kind != "b":
            lo, hi = int(array.min()), int(array.max())
            if lo < _INT32_MIN or hi > _INT32_MAX:
                raise ValueError(
                    f"{what} of dtype {array.dtype} hold values outside int32 "
                    f"({lo}..{hi}); convert them to float64"
                )
        return "int32"
    raise TypeError(
        f"{what} of dtype {array.dtype} cannot be written as recordio-protobuf "
        "(use float32, float64 or an integer type)"
    )


def _cast(values: np.ndarray, dtype: TensorType) -> np.ndarray:
    if dtype == "int32":
        return values.astype(np.int32, copy=False)
    return values.astype(np.float32 if dtype == "float32" else np.float64, copy=False)


def _tensor_payload(tensor: Tensor) -> bytes:
    parts: list[bytes] = []
    values = np.asarray(tensor.values).reshape(-1)
    if values.size:
        if tensor.dtype == "int32":
            packed = _encode_varints(values.astype(np.int64).view(np.uint64))
        else:
            packed = values.astype(_WIRE_DTYPE[tensor.dtype], copy=False).tobytes()
        parts += [b"\x0a", _varint_bytes(len(packed)), packed]
    keys = np.asarray(tensor.keys).reshape(-1)
    if keys.size:
        packed = _encode_varints(keys.astype(np.uint64))
        parts += [b"\x12", _varint_bytes(len(packed)), packed]
    if tensor.shape:
        packed = _encode_varints(np.asarray(tensor.shape, dtype=np.uint64))
        parts += [b"\x1a", _varint_bytes(len(packed)), packed]
    return b"".join(parts)


def _value_payload(value: Value) -> bytes:
    if isinstance(value, Tensor):
        inner = _tensor_payload(value)
        return _varint_bytes(_VALUE_FIELD[value.dtype] << 3 | 2) + _varint_bytes(len(inner)) + inner
    parts: list[bytes] = []
    for item in value.values:
        parts += [b"\x0a", _varint_bytes(len(item)), bytes(item)]
    if value.content_type is not None:
        encoded = value.content_type.encode("utf-8")
        parts += [b"\x12", _varint_bytes(len(encoded)), encoded]
    inner = b"".join(parts)
    return b"\x4a" + _varint_bytes(len(inner)) + inner


def _map_entry(tag: bytes, key: str, value: Value) -> bytes:
    key_bytes = key.encode("utf-8")
    value_bytes = _value_payload(value)
    entry = (
        b"\x0a"
        + _varint_bytes(len(key_bytes))
        + key_bytes
        + b"\x12"
        + _varint_bytes(len(value_bytes))
        + value_bytes
    )
    return tag + _varint_bytes(len(entry)) + entry


def encode_record(record: Record) -> bytes:
    """Serialise a :class:`Record` to its protobuf payload (without RecordIO framing)."""
    parts = [_map_entry(b"\x0a", k, v) for k, v in record.features.items()]
    parts += [_map_entry(b"\x12", k, v) for k, v in record.label.items()]
    for tag, text in (
        (b"\x1a", record.uid),
        (b"\x22", record.metadata),
        (b"\x2a", record.configuration),
    ):
        if text is not None:
            encoded = text.encode("utf-8")
            parts += [tag, _varint_bytes(len(encoded)), encoded]
    return b"".join(parts)


def _label_rows(labels: Any, n: int) -> np.ndarray | None:
    if labels is None:
        return None
    array = np.asarray(labels)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] != n:
        raise ValueError(
            f"labels must have one entry (or one row) per feature row: {n} rows of features, "
            f"labels of shape {np.asarray(labels).shape}"
        )
    return array


def _dense_fast(
    features: np.ndarray, ftype: TensorType, labels: np.ndarray | None, ltype: TensorType | None
) -> bytes:
    """Every row framed at once: dense float rows all share one byte layout."""
    n, d = features.shape
    if n == 0:
        return b""
    header_row = Record(
        features={VALUES_KEY: Tensor(ftype, np.zeros(d, dtype=_WIRE_DTYPE[ftype]))},
        label={}
        if labels is None
        else {VALUES_KEY: Tensor(ltype or "float32", np.zeros(labels.shape[1]))},
    )
    template = encode_record(header_row)
    fbytes = d * np.dtype(_WIRE_DTYPE[ftype]).itemsize
    # Layout: [feature entry prefix][feature values][label entry prefix][label values]
    fprefix_len = len(_map_entry(b"\x0a", VALUES_KEY, header_row.features[VALUES_KEY])) - fbytes
    payload_len = len(template)
    stride = 8 + ((payload_len + 3) & ~3)
    out = np.zeros((n, stride), dtype=np.uint8)
    out[:, :8] = np.frombuffer(struct.pack("<II", recordio.MAGIC, payload_len), dtype=np.uint8)
    out[:, 8 : 8 + payload_len] = np.frombuffer(template, dtype=np.uint8)
    if d:
        start = 8 + fprefix_len
        out[:, start : start + fbytes] = (
            np.ascontiguousarray(features, dtype=_WIRE_DTYPE[ftype]).view(np.uint8).reshape(n, -1)
        )
    if labels is not None and ltype is not None and labels.shape[1]:
        lbytes = labels.shape[1] * np.dtype(_WIRE_DTYPE[ltype]).itemsize
        out[:, 8 + payload_len - lbytes : 8 + payload_len] = (
            np.ascontiguousarray(labels, dtype=_WIRE_DTYPE[ltype]).view(np.uint8).reshape(n, -1)
        )
    # A payload holding the magic word at an aligned offset must be split (rare: one bit
    # pattern). Re-frame just those rows through the general writer.
    words = out.view("<u4")
    hits = np.flatnonzero((words[:, 1:] == recordio.MAGIC).any(axis=1))
    if not hits.size:
        return out.tobytes()
    pieces = []
    previous = 0
    for row in hits.tolist():
        pieces.append(out[previous:row].tobytes())
        pieces.append(recordio.encode_record(bytes(out[row, 8 : 8 + payload_len])))
        previous = row + 1
    pieces.append(out[previous:].tobytes())
    return b"".join(pieces)


def encode_recordio_protobuf(features: Any, labels: Any = None) -> bytes:
    """A dense array or scipy sparse matrix (plus optional labels) as recordio-protobuf bytes.

    One record per row: ``features["values"]`` holds the row (sparse rows as ``keys`` + values
    with ``shape=[n_columns]``); ``label["values"]`` holds ``labels[i]`` (a scalar or a row of
    a 2-D label array). The tensor type follows the dtype: float32 -> Float32Tensor, float64
    -> Float64Tensor, integers -> Int32Tensor (values must fit int32).
    """
    if _is_sparse(features):
        return _encode_sparse(features, labels)
    array = np.asarray(features)
    if array.ndim == 1:
        raise ValueError(
            "features must be 2-D (one row per record); reshape a single row with "
            "array.reshape(1, -1) or a column with array.reshape(-1, 1)"
        )
    if array.ndim != 2:
        raise ValueError(f"features must be 2-D (one row per record), got shape {array.shape}")
    ftype = _tensor_type(array, "features")
    label_rows = _label_rows(labels, array.shape[0])
    ltype = None if label_rows is None else _tensor_type(label_rows, "labels")
    if ftype != "int32" and ltype != "int32":
        return _dense_fast(array, ftype, label_rows, ltype)
    features_cast = _cast(array, ftype)
    out = []
    for i in range(array.shape[0]):
        label_map: dict[str, Value] = {}
        if label_rows is not None and ltype is not None:
            label_map[VALUES_KEY] = Tensor(ltype, _cast(label_rows[i], ltype))
        record = Record(features={VALUES_KEY: Tensor(ftype, features_cast[i])}, label=label_map)
        out.append(recordio.encode_record(encode_record(record)))
    return b"".join(out)


def _is_sparse(value: Any) -> bool:
    module = type(value).__module__
    return module.startswith("scipy.sparse") and hasattr(value, "tocsr")


def _encode_sparse(features: Any, labels: Any) -> bytes:
    matrix = features.tocsr()
    n, width = matrix.shape
    ftype = _tensor_type(matrix.data, "features")
    data = _cast(matrix.data, ftype)
    indices = matrix.indices.astype(np.uint64)
    indptr = matrix.indptr
    label_rows = _label_rows(labels, n)
    ltype = None if label_rows is None else _tensor_type(label_rows, "labels")
    shape = (int(width),)
    out = []
    for i in range(n):
        lo, hi = int(indptr[i]), int(indptr[i + 1])
        label_map: dict[str, Value] = {}
        if label_rows is not None and ltype is not None:
            label_map[VALUES_KEY] = Tensor(ltype, _cast(label_rows[i], ltype))
        record = Record(
            features={VALUES_KEY: Tensor(ftype, data[lo:hi], indices[lo:hi], shape)},
            label=label_map,
        )
        out.append(recordio.encode_record(encode_record(record)))
    return b"".join(out)


def write_recordio_protobuf(stream: BinaryIO, features: Any, labels: Any = None) -> None:
    """Write *features* (and *labels*) to *stream*; see :func:`encode_recordio_protobuf`."""
    stream.write(encode_recordio_protobuf(features, labels))


def write_records(stream: BinaryIO, records: Sequence[Record]) -> None:
    """Write :class:`Record` objects to *stream*, each framed as one RecordIO record."""
    for record in records:
        recordio.write_record(stream, encode_record(record))


def records_to_bytes(records: Sequence[Record]) -> bytes:
    """:class:`Record` objects as one recordio-protobuf buffer."""
    buffer = io.BytesIO()
    write_records(buffer, records)
    return buffer.getvalue()
