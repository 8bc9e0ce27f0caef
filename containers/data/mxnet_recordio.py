"""MXNet image RecordIO (``application/x-recordio``): the ``.rec`` + ``.idx`` files of
Object Detection.

A ``.rec`` file is dmlc RecordIO framing (:mod:`sagedock.toolkit.formats.recordio`, whose
streaming reader this module uses, multipart records joined) around payloads packed as MXNet's
``recordio.pack`` does::

    IRHeader (struct '<IfQQ': flag u32, label f32, id u64, id2 u64; 24 bytes)
    | flag float32 labels (when flag > 0; they replace the scalar label)
    | the encoded image (JPEG or PNG bytes, not decoded here)

An ``.idx`` file is text, one ``key<TAB>byte_offset`` line per record (``im2rec`` and
``MXIndexedRecordIO`` write it): the offset of the record's first part header.

:func:`iter_image_records` reads a stream record by record (a Pipe-mode FIFO works);
:class:`ImageRecordFile` reads a file in order or, given its ``.idx``, by key.
:func:`parse_detection_label` turns a record's packed detection label
``[A, B, <A-2 extra header values>, cls, xmin, ymin, xmax, ymax, <B-5 extra>, ...]`` into an
``(objects, B)`` float32 array. Every malformed record gives a UserError naming the file, the
record and its byte offset.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np

from sagedock.toolkit.errors import UserError
from sagedock.toolkit.formats.recordio import RecordIOError, iter_framed

#: MXNet's ``IRHeader``: flag, label, id, id2 (``_IR_FORMAT = 'IfQQ'``, little-endian on disk).
IR_HEADER = struct.Struct("<IfQQ")
#: Bytes of an IRHeader.
IR_HEADER_SIZE = IR_HEADER.size

#: SageMaker's text for a label shorter than a header and one object.
NOT_ENOUGH_LABEL = "Not enough label packed in img_list or rec file."
#: SageMaker's text for an object width under five.
NOT_ENOUGH_ANNOTATION = (
    "Not enough annotation packed in the list file or the RecordIO file. Each object requires "
    "at least five numbers [label_id, xmin, ymin, ymax] for annotation."
)


@dataclass(frozen=True, eq=False)
class ImageRecord:
    """One record of an image RecordIO file.

    :param id: the IRHeader's ``id`` (im2rec: the image's index in the ``.lst`` file).
    :param id2: the IRHeader's ``id2`` (usually 0).
    :param label: float32 labels: the ``flag`` values after the header, or the scalar header
        label as one value when ``flag`` is 0.
    :param image: the encoded image bytes (JPEG/PNG; not checked or decoded).
    :param where: the file, record number and byte offset, for error messages.
    """

    id: int
    id2: int
    label: np.ndarray
    image: bytes
    where: str

    def detection_objects(
        self, *, num_classes: int | None = None, label_width: int | None = None
    ) -> np.ndarray:
        """This record's label as detection objects (see :func:`parse_detection_label`)."""
        return parse_detection_label(
            self.label, num_classes=num_classes, label_width=label_width, where=self.where
        )


def _where(name: str, index: int, offset: int) -> str:
    return f"{name}: record {index} at byte offset {offset}"


def unpack_image_record(payload: bytes, *, where: str = "record") -> ImageRecord:
    """One RecordIO payload as an :class:`ImageRecord` (MXNet's ``recordio.unpack``).

    Raises a UserError starting with *where* when the payload is shorter than its IRHeader
    or than the labels the header announces.
    """
    if len(payload) < IR_HEADER_SIZE:
        raise UserError(
            f"{where}: {len(payload)} bytes, shorter than the {IR_HEADER_SIZE}-byte image "
            "record header (IRHeader: flag, label, id, id2); is this an MXNet image .rec file?"
        )
    flag, scalar, rid, rid2 = IR_HEADER.unpack_from(payload)
    if flag > 0:
        end = IR_HEADER_SIZE + 4 * flag
        if end > len(payload):
            raise UserError(
                f"{where}: the header announces {flag} float32 labels ({4 * flag} bytes), "
                f"only {len(payload) - IR_HEADER_SIZE} bytes follow it"
            )
        label = np.frombuffer(payload, dtype="<f4", count=flag, offset=IR_HEADER_SIZE)
        label = label.astype(np.float32)
    else:
        end = IR_HEADER_SIZE
        label = np.array([scalar], dtype=np.float32)
    return ImageRecord(id=rid, id2=rid2, label=label, image=payload[end:], where=where)


def framed_records(stream: BinaryIO, name: str) -> Iterator[tuple[int, int, bytes]]:
    """``(index, offset, payload)`` of each RecordIO record of *stream*, as
    :func:`~sagedock.toolkit.formats.recordio.iter_framed` reads them; corrupt framing is a
    UserError that *name* (the file, or ``pipe``) starts."""
    framed = iter_framed(stream)
    while True:
        try:
            item = next(framed, None)
        except RecordIOError as exc:
            raise UserError(f"{name}: {exc.message}") from None
        if item is None:
            return
        yield item


def iter_image_records(stream: BinaryIO, *, name: str = "pipe") -> Iterator[ImageRecord]:
    """Each record of an image RecordIO *stream*, in order, read incrementally (one record
    in memory at a time). *name* (the file, or ``pipe``) starts every error message."""
    for index, offset, payload in framed_records(stream, name):
        yield unpack_image_record(payload, where=_where(name, index, offset))


def read_index(path: Path) -> dict[int, int]:
    """The ``key -> byte offset`` map of an ``.idx`` file, in the file's order.

    Lines are ``key<TAB>offset`` (surrounding whitespace and blank lines ignored), both
    non-negative integers; a malformed line or a repeated key is a UserError naming the line.
    """
    index: dict[int, int] = {}
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line:
                continue
            fields = line.split(b"\t")
            key = offset = -1
            if len(fields) == 2:
                with contextlib.suppress(ValueError):
                    key, offset = int(fields[0]), int(fields[1])
            if key < 0 or offset < 0:
                shown = line[:80].decode("utf-8", "replace")
                raise UserError(
                    f"{path.name}: line {number}: expected 'key<TAB>byte offset' (two "
                    f"non-negative integers), found {shown!r}"
                )
            if key in index:
                raise UserError(f"{path.name}: line {number}: key {key} appears twice")
            index[key] = offset
    return index


class ImageRecordFile:
    """An image ``.rec`` file, read in order, or by key through its ``.idx`` (*idx*).

    Use as a context manager (or call :meth:`close`)::

        with ImageRecordFile(rec, idx) as records:
            for record in records: ...          # in file order, streaming
            one = records.read(records.keys()[5])
    """

    def __init__(self, rec: Path, idx: Path | None = None) -> None:
        self.path = rec
        self._index = read_index(idx) if idx is not None else None
        self._fh: BinaryIO = rec.open("rb")

    def __enter__(self) -> ImageRecordFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._fh.close()

    def __iter__(self) -> Iterator[ImageRecord]:
        """Every record from the start of the file, in order (ignores the index; reads
        through its own file handle, so :meth:`read` may be called meanwhile)."""
        return read_mxnet_recordio(self.path)

    def keys(self) -> list[int]:
        """The index's keys, in the ``.idx`` file's order (a UserError without an index)."""
        return list(self._require_index())

    def read(self, key: int) -> ImageRecord:
        """The record the index lists under *key* (a UserError for an unknown key)."""
        index = self._require_index()
        if key not in index:
            raise UserError(f"{self.path.name}: no record with key {key} in its index")
        return self.read_at(index[key], key=key)

    def read_at(self, offset: int, *, key: int | None = None) -> ImageRecord:
        """The record whose (first) part header starts at byte *offset*."""
        named = f"record with key {key}" if key is not None else "record"
        where = f"{self.path.name}: {named} at byte offset {offset}"
        self._fh.seek(offset)
        try:
            item = next(iter_framed(self._fh), None)
        except RecordIOError as exc:
            raise UserError(
                f"{where}: corrupt RecordIO data at byte offset {offset + exc.offset}: "
                f"{exc.problem} (does the .idx file belong to this .rec file?)"
            ) from None
        if item is None:
            raise UserError(f"{where}: the offset is at or past the end of the file")
        return unpack_image_record(item[2], where=where)

    def _require_index(self) -> dict[int, int]:
        if self._index is None:
            raise UserError(f"{self.path.name}: random access needs the .idx file")
        return self._index


def read_mxnet_recordio(rec: Path) -> Iterator[ImageRecord]:
    """Every record of the ``.rec`` file *rec*, in order, streaming."""
    with rec.open("rb") as fh:
        yield from iter_image_records(fh, name=rec.name)


def _whole(value: float) -> int | None:
    return int(value) if np.isfinite(value) and value == int(value) else None


def parse_detection_label(
    label: np.ndarray,
    *,
    num_classes: int | None = None,
    label_width: int | None = None,
    where: str = "label",
) -> np.ndarray:
    """A packed detection label as an ``(objects, B)`` float32 array of rows
    ``[cls, xmin, ymin, xmax, ymax, <B-5 extra>]``.

    *label* is ``[A, B, <A-2 extra header values>, obj1 (B values), obj2, ...]`` (im2rec's
    ``--pack-label``): A, the header width, is a whole number >= 2 (usually 2); B, the object
    width, a whole number >= 5 (usually 5). At least one object; coordinates normalised to
    [0, 1] with xmin < xmax and ymin < ymax; class ids whole numbers >= 0 (and below
    *num_classes* when given). With *label_width* (the hyperparameter), a label of more values
    is an error too. Each problem is a UserError starting with *where*.
    """
    raw = np.asarray(label, dtype=np.float32).ravel()
    size = raw.size
    if label_width is not None and size > label_width:
        raise UserError(
            f"Invalid parameter value 'label_width'. {where}: the packed label has {size} "
            f"values, more than label_width={label_width}; set label_width to at least the "
            "longest label (header plus 5 values per object)"
        )
    if size < 2:
        raise UserError(
            f"{where}: {NOT_ENOUGH_LABEL} The label has {size} value(s); a detection label "
            "starts with the header width and the object width"
        )
    header = _whole(float(raw[0]))
    if header is None or header < 2:
        raise UserError(
            f"{where}: the label's header width (its first value) is {float(raw[0])!r}; it "
            "must be a whole number of at least 2 ([header width, object width, ...])"
        )
    width = _whole(float(raw[1]))
    if width is None or width < 5:
        raise UserError(
            f"{where}: {NOT_ENOUGH_ANNOTATION} The label's object width (its second value) "
            f"is {float(raw[1])!r}"
        )
    if size < header + width:
        raise UserError(
            f"{where}: {NOT_ENOUGH_LABEL} The label has {size} values, fewer than its header "
            f"({header}) and one object ({width})"
        )
    if (size - header) % width:
        raise UserError(
            f"{where}: the label has {size} values, not the header width {header} plus a "
            f"whole number of objects of {width} values"
        )
    objects = raw[header:].reshape(-1, width).copy()
    classes, boxes = objects[:, 0], objects[:, 1:5]
    whole = np.isfinite(classes) & (classes == np.floor(classes))
    bad = np.flatnonzero(~whole | (classes < 0))
    if bad.size:
        i = int(bad[0])
        raise UserError(
            f"{where}: object {i} has class id {float(classes[i])!r}; class ids are whole "
            "numbers from 0"
        )
    if num_classes is not None:
        bad = np.flatnonzero(classes >= num_classes)
        if bad.size:
            i = int(bad[0])
            raise UserError(
                f"{where}: object {i} has class id {int(classes[i])}, outside 0 to "
                f"{num_classes - 1} (num_classes={num_classes})"
            )
    inside = np.all((boxes >= 0) & (boxes <= 1), axis=1)
    bad = np.flatnonzero(~inside)
    if bad.size:
        i = int(bad[0])
        raise UserError(
            f"{where}: object {i} has box {_box(boxes[i])}; coordinates are normalised "
            "to [0, 1] (xmin, ymin, xmax, ymax as fractions of the image width and height)"
        )
    bad = np.flatnonzero((boxes[:, 0] >= boxes[:, 2]) | (boxes[:, 1] >= boxes[:, 3]))
    if bad.size:
        i = int(bad[0])
        raise UserError(
            f"{where}: object {i} has box {_box(boxes[i])}; xmin must be below xmax and "
            "ymin below ymax"
        )
    return objects


def _box(box: np.ndarray) -> str:
    return "[" + ", ".join(f"{float(v):g}" for v in box) + "]"
