"""Object Detection's image + annotation formats: images with JSON annotation files (File
mode) and Ground Truth augmented manifests (Pipe mode, ``RecordWrapperType=RecordIO``).

Both give :class:`AnnotatedImage` objects whose :attr:`~AnnotatedImage.objects` are the rows
:func:`~.mxnet_recordio.parse_detection_label` returns for an image RecordIO label:
``[cls, xmin, ymin, xmax, ymax]`` float32, normalised by the image width and height, so the
three input formats give the trainer the same targets for the same boxes.

- :func:`pair_annotations`: the images of a ``train``/``validation`` channel (``.jpg``,
  ``.jpeg``, ``.png``, mixed) paired with the JSON files of its ``*_annotation`` channel by
  the annotation's ``file`` field (relative to the image channel root; a path whose last
  component names exactly one image of the channel matches it too). Each JSON is::

      {"file": "a.jpg", "image_size": [{"width": 500, "height": 400, "depth": 3}],
       "annotations": [{"class_id": 0, "left": 111, "top": 134, "width": 61, "height": 128}],
       "categories": [{"class_id": 0, "name": "dog"}]}

  with pixel boxes from the top-left corner; ``categories`` is ignored.
- :func:`iter_manifest`: the JSON Lines of an augmented manifest, one
  :class:`ManifestEntry` (the image reference and its label) per line.
- :func:`iter_manifest_stream`: a Pipe-mode channel of an augmented manifest with
  ``RecordWrapperType=RecordIO``, where each line becomes one RecordIO record per attribute
  in ``AttributeNames`` order: the image's bytes, then the label attribute's JSON.

Where a label has no ``image_size``, the size comes from the image's header
(:func:`read_image_size`: PNG IHDR, JPEG SOFn; the pixels are not decoded). Every problem is a
UserError naming the file (or line, or record) and the field.
"""

from __future__ import annotations

import io
import json
import logging
import math
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import numpy as np

from sagedock.toolkit.errors import UserError

from .files import list_data_files
from .mxnet_recordio import framed_records, parse_detection_label

logger = logging.getLogger(__name__)

#: File name endings of the images a channel may hold (``application/x-image``: mixed).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: File name ending of an annotation file.
ANNOTATION_SUFFIX = ".json"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
# JPEG start-of-frame markers (SOF0-SOF15 less DHT C4, JPG C8 and DAC CC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RST0-7, SOI, EOI.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8), 0xD8, 0xD9})
# PNG colour type -> channels.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


@dataclass(frozen=True)
class ImageSize:
    """An image's size in pixels and its number of channels (``depth``; None when unknown)."""

    width: int
    height: int
    depth: int | None = None


@dataclass(frozen=True, eq=False)
class PixelLabel:
    """A bounding-box label as written: ``boxes`` rows ``[cls, left, top, width, height]`` in
    pixels (float64), ``size`` from its ``image_size`` (None where absent)."""

    boxes: np.ndarray
    size: ImageSize | None
    where: str

    def objects(
        self, size: ImageSize | None = None, *, num_classes: int | None = None
    ) -> np.ndarray:
        """The boxes as normalised ``[cls, xmin, ymin, xmax, ymax]`` float32 rows, by *size*
        (default: the label's own ``image_size``; one of them is needed). A box outside the
        image is a UserError."""
        size = size or self.size
        if size is None:
            raise UserError(
                f"{self.where}: no image_size, and the image's size is not known here; add "
                '"image_size": [{"width": W, "height": H, "depth": 3}]'
            )
        return normalise_boxes(self.boxes, size, where=self.where, num_classes=num_classes)


@dataclass(frozen=True, eq=False)
class AnnotatedImage:
    """One training image and its boxes.

    :param objects: ``(n, 5)`` float32 rows ``[cls, xmin, ymin, xmax, ymax]`` normalised to
        [0, 1], as :func:`~.mxnet_recordio.parse_detection_label` returns.
    :param size: the size the boxes were normalised by.
    :param where: the annotation file, manifest line or stream record, for messages.
    :param path: File mode: the image file (read with :meth:`image_bytes`).
    :param data: Pipe mode: the encoded image bytes.
    :param source_ref: a manifest's image reference (``s3://...``), where known.
    """

    objects: np.ndarray
    size: ImageSize
    where: str
    path: Path | None = None
    data: bytes | None = None
    source_ref: str | None = None

    def image_bytes(self) -> bytes:
        """The encoded image (JPEG or PNG bytes, not decoded)."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()


# --- image headers ----------------------------------------------------------------------


def _read_up_to(stream: BinaryIO, size: int) -> bytes:
    """*size* bytes, fewer only at the end of the stream (a pipe may return short reads)."""
    data = stream.read(size) or b""
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            break
        data += more
    return data


def _read(stream: BinaryIO, size: int, where: str, what: str) -> bytes:
    data = _read_up_to(stream, size)
    if len(data) < size:
        raise UserError(f"{where}: the image ends inside its {what}; is the file truncated?")
    return data


def read_image_size(stream: BinaryIO, *, where: str = "image") -> ImageSize:
    """The size of the PNG or JPEG image at the start of *stream*, from its header only (PNG
    IHDR; JPEG's first SOFn segment, skipping the segments before it without reading them
    into memory). Anything else, or a truncated or zero-sized header, is a UserError."""
    head = _read_up_to(stream, 8)
    if head.startswith(PNG_SIGNATURE):
        chunk = _read(stream, 8 + 13, where, "PNG IHDR chunk")
        length, kind = struct.unpack_from(">I4s", chunk)
        if kind != b"IHDR" or length != 13:
            raise UserError(f"{where}: a PNG image must start with its IHDR chunk")
        width, height, _bits, colour = struct.unpack_from(">IIBB", chunk, 8)
        return _sized(width, height, _PNG_CHANNELS.get(colour), where)
    if head.startswith(JPEG_SOI):
        return _jpeg_size(stream, head[2:], where)
    raise UserError(
        f"{where}: not a JPEG or PNG image (it starts with {head[:8].hex(' ') or 'nothing'})"
    )


def _jpeg_size(stream: BinaryIO, pending: bytes, where: str) -> ImageSize:
    buffer = io.BytesIO(pending)

    def byte() -> int:
        got = buffer.read(1) or stream.read(1) or b""
        if not got:
            raise UserError(f"{where}: the JPEG image ends before its frame header (SOFn)")
        return got[0]

    def take(size: int) -> bytes:
        got = buffer.read(size)
        return got + _read(stream, size - len(got), where, "JPEG header")

    while True:
        if byte() != 0xFF:
            raise UserError(f"{where}: corrupt JPEG header (a segment does not start with 0xFF)")
        marker = byte()
        while marker == 0xFF:  # fill bytes
            marker = byte()
        if marker in _STANDALONE:
            if marker == 0xD9:
                break
            continue
        if marker == 0xDA:  # start of scan: no frame header before the image data
            break
        (length,) = struct.unpack(">H", take(2))
        if length < 2:
            raise UserError(f"{where}: corrupt JPEG header (segment length {length})")
        if marker in _SOF_MARKERS:
            body = take(length - 2)
            if len(body) < 6:
                raise UserError(f"{where}: corrupt JPEG frame header (SOFn) of {len(body)} bytes")
            height, width, channels = struct.unpack_from(">HHB", body, 1)
            return _sized(width, height, channels, where)
        skip = length - 2
        rest = buffer.read(skip)
        skip -= len(rest)
        if skip:
            _skip(stream, skip, where)
    raise UserError(f"{where}: the JPEG image has no frame header (SOFn) before its data")


def _skip(stream: BinaryIO, size: int, where: str) -> None:
    if stream.seekable():
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        if end - here < size:
            raise UserError(f"{where}: the image ends inside its JPEG header; is it truncated?")
        stream.seek(here + size)
        return
    while size:
        got = stream.read(min(size, 1 << 16))
        if not got:
            raise UserError(f"{where}: the image ends inside its JPEG header; is it truncated?")
        size -= len(got)


def _sized(width: int, height: int, depth: int | None, where: str) -> ImageSize:
    if width <= 0 or height <= 0:
        raise UserError(f"{where}: the image header gives a size of {width}x{height} pixels")
    return ImageSize(width, height, depth)


def image_size_of(data: bytes, *, where: str = "image") -> ImageSize:
    """:func:`read_image_size` of an encoded image in memory."""
    return read_image_size(io.BytesIO(data), where=where)


# --- labels -----------------------------------------------------------------------------


def _number(value: Any, where: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"{where}: {field} is {_shown(value)}; it must be a number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise UserError(f"{where}: {field} is {_shown(value)}; it must be a finite number")
    return number


def _positive_whole(value: Any, where: str, field: str) -> int:
    number = _number(value, where, field)
    if number <= 0 or not number.is_integer():
        raise UserError(f"{where}: {field} is {_shown(value)}; it must be a whole number above 0")
    return int(number)


def _shown(value: Any) -> str:
    text = json.dumps(value) if value is not None else "null"
    return text if len(text) <= 60 else text[:57] + "..."


def _image_size(value: Any, where: str) -> ImageSize:
    entries = value if isinstance(value, list) else [value]
    if len(entries) != 1 or not isinstance(entries[0], dict):
        raise UserError(
            f"{where}: image_size must be a list of one object "
            '[{"width": W, "height": H, "depth": 3}], found ' + _shown(value)
        )
    entry = entries[0]
    sizes = []
    for key in ("width", "height"):
        if key not in entry:
            raise UserError(f"{where}: image_size[0] has no {key!r}")
        sizes.append(_positive_whole(entry[key], where, f"image_size[0].{key}"))
    depth = entry.get("depth")
    if depth is not None:
        depth = _positive_whole(depth, where, "image_size[0].depth")
    return ImageSize(sizes[0], sizes[1], depth)


_BOX_FIELDS = ("class_id", "left", "top", "width", "height")


def parse_label(label: Any, *, where: str = "label", num_classes: int | None = None) -> PixelLabel:
    """A decoded label object (``annotations`` and optional ``image_size``) as a
    :class:`PixelLabel`. Each annotation needs ``class_id`` (a whole number from 0, below
    *num_classes* when given), ``left``, ``top`` (>= 0) and ``width``, ``height`` (> 0);
    other keys are ignored. At least one annotation is needed, as in an image RecordIO label.
    """
    if not isinstance(label, dict):
        raise UserError(f"{where}: the label must be a JSON object, found {_shown(label)}")
    if "annotations" not in label:
        raise UserError(f"{where}: no 'annotations' field (a list of boxes)")
    annotations = label["annotations"]
    if not isinstance(annotations, list):
        raise UserError(f"{where}: annotations must be a list, found {_shown(annotations)}")
    if not annotations:
        raise UserError(
            f"{where}: annotations is empty; every training image needs at least one box"
        )
    rows = []
    for i, box in enumerate(annotations):
        if not isinstance(box, dict):
            raise UserError(f"{where}: annotations[{i}] must be an object, found {_shown(box)}")
        row = []
        for key in _BOX_FIELDS:
            if key not in box:
                raise UserError(f"{where}: annotations[{i}] has no {key!r}")
            row.append(_number(box[key], where, f"annotations[{i}].{key}"))
        cls, left, top, width, height = row
        if cls < 0 or not cls.is_integer():
            raise UserError(
                f"{where}: annotations[{i}].class_id is {_shown(box['class_id'])}; class ids "
                "are whole numbers from 0"
            )
        if num_classes is not None and cls >= num_classes:
            raise UserError(
                f"{where}: annotations[{i}].class_id is {int(cls)}, outside 0 to "
                f"{num_classes - 1} (num_classes={num_classes})"
            )
        for key, value in (("left", left), ("top", top)):
            if value < 0:
                raise UserError(
                    f"{where}: annotations[{i}].{key} is {_shown(box[key])}; the box lies "
                    "outside the image (pixels from the top-left corner are >= 0)"
                )
        for key, value in (("width", width), ("height", height)):
            if value <= 0:
                raise UserError(
                    f"{where}: annotations[{i}].{key} is {_shown(box[key])}; a box's width "
                    "and height must be above 0"
                )
        rows.append(row)
    size = _image_size(label["image_size"], where) if "image_size" in label else None
    return PixelLabel(np.array(rows, dtype=np.float64), size, where)


def normalise_boxes(
    boxes: np.ndarray, size: ImageSize, *, where: str = "label", num_classes: int | None = None
) -> np.ndarray:
    """Pixel rows ``[cls, left, top, width, height]`` as normalised
    ``[cls, xmin, ymin, xmax, ymax]`` float32 rows (checked as an image RecordIO label is).
    A box reaching past the image's right or bottom edge is a UserError."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    right = boxes[:, 1] + boxes[:, 3]
    bottom = boxes[:, 2] + boxes[:, 4]
    outside = np.flatnonzero((right > size.width) | (bottom > size.height))
    if outside.size:
        i = int(outside[0])
        left, top, width, height = (f"{float(v):g}" for v in boxes[i, 1:])
        raise UserError(
            f"{where}: annotations[{i}] (left {left}, top {top}, width {width}, height "
            f"{height}) reaches past the {size.width}x{size.height} image"
        )
    objects = np.empty_like(boxes)
    objects[:, 0] = boxes[:, 0]
    objects[:, 1] = boxes[:, 1] / size.width
    objects[:, 2] = boxes[:, 2] / size.height
    objects[:, 3] = right / size.width
    objects[:, 4] = bottom / size.height
    packed = np.concatenate([[2.0, 5.0], objects.ravel()]).astype(np.float32)
    return parse_detection_label(packed, num_classes=num_classes, where=where)


def _decode_json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        detail = str(exc) if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        if isinstance(exc, UnicodeDecodeError):
            detail = "not UTF-8 text"
        elif isinstance(exc, RecursionError):
            detail = "nested too deeply"
        raise UserError(f"{where}: not valid JSON ({detail})") from None


# --- images + JSON annotation files (File mode) -----------------------------------------


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path != root else path.name


def pair_annotations(
    images: Path, annotations: Path, *, num_classes: int | None = None
) -> list[AnnotatedImage]:
    """Each image of the channel directory *images* with the boxes of its JSON file in the
    channel directory *annotations*, in the images' sorted path order.

    Errors (each naming the file and field): an annotation without ``file``, or naming no
    image of the channel (or several, by name), two annotations for one image, an image
    without annotation, bad JSON or fields, a box outside the image. Files of other types in
    either channel are skipped with a warning.
    """
    image_files: dict[str, Path] = {}
    by_name: dict[str, list[str]] = {}
    skipped: list[Path] = []
    for path in list_data_files(images):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            key = _relative(path, images)
            image_files[key] = path
            by_name.setdefault(path.name, []).append(key)
        else:
            skipped.append(path)
    json_files = []
    for path in list_data_files(annotations):
        if path.suffix.lower() == ANNOTATION_SUFFIX:
            json_files.append(path)
        else:
            skipped.append(path)
    if skipped:
        logger.warning(
            "Skipped %d file(s) that are not %s images or %s annotations, e.g. %s",
            len(skipped),
            "/".join(IMAGE_SUFFIXES),
            ANNOTATION_SUFFIX,
            skipped[0],
        )
    if not image_files:
        raise UserError(f"No .jpg or .png images in the image channel path {images}")
    if not json_files:
        raise UserError(f"No .json annotation files in the annotation channel path {annotations}")
    claimed: dict[str, tuple[Path, PixelLabel]] = {}
    for path in json_files:
        where = _relative(path, annotations)
        key, label = _read_annotation(path, where, image_files, by_name, num_classes)
        if key in claimed:
            raise UserError(
                f"{where}: annotates image {key!r}, which "
                f"{_relative(claimed[key][0], annotations)} annotates already; keep one "
                "annotation file per image"
            )
        claimed[key] = (path, label)
    missing = [key for key in image_files if key not in claimed]
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise UserError(
            f"{len(missing)} image(s) of {images} have no annotation file in {annotations} "
            f"(no .json file whose 'file' names them): {shown}"
        )
    out = []
    for key in sorted(image_files):
        path, label = claimed[key]
        image = image_files[key]
        size = label.size
        if size is None:
            with image.open("rb") as fh:
                size = read_image_size(fh, where=key)
        objects = label.objects(size, num_classes=num_classes)
        out.append(AnnotatedImage(objects, size, label.where, path=image))
    return out


def _read_annotation(
    path: Path,
    where: str,
    image_files: Mapping[str, Path],
    by_name: Mapping[str, Sequence[str]],
    num_classes: int | None,
) -> tuple[str, PixelLabel]:
    document = _decode_json(path.read_bytes(), where)
    if not isinstance(document, dict):
        raise UserError(
            f"{where}: an annotation file holds one JSON object, found {_shown(document)}"
        )
    if "file" not in document:
        raise UserError(
            f"{where}: no 'file' field naming its image (relative to the image channel)"
        )
    name = document["file"]
    if not isinstance(name, str) or not name:
        raise UserError(f"{where}: file is {_shown(name)}; it must name an image of the channel")
    key = PurePosixPath(name).as_posix()
    if key not in image_files:
        candidates = by_name.get(PurePosixPath(key).name, [])
        if len(candidates) != 1:
            found = (
                f"several images are named {PurePosixPath(key).name!r}: "
                + ", ".join(candidates[:3])
                if candidates
                else "no image of the channel has that path or name"
            )
            raise UserError(
                f"{where}: file {_shown(name)} is not an image in the image channel ({found}); "
                "give the image's path relative to the channel"
            )
        key = candidates[0]
    return key, parse_label(document, where=where, num_classes=num_classes)


# --- augmented manifests ----------------------------------------------------------------


def check_attribute_names(attribute_names: Sequence[str]) -> tuple[str, str]:
    """The image and label attribute of an Object Detection ``AttributeNames``: exactly two,
    the image reference (a name ending ``-ref``, e.g. ``source-ref``) first."""
    names = list(attribute_names)
    if len(names) != 2 or not all(isinstance(n, str) and n for n in names):
        raise UserError(
            f"AttributeNames is {names!r}; Object Detection takes two attributes, the image "
            'reference then the label, e.g. ["source-ref", "bounding-box"]'
        )
    image, label = names
    if not image.endswith("-ref"):
        hint = " (the order matters: the image comes first)" if label.endswith("-ref") else ""
        raise UserError(
            f"AttributeNames is {names!r}: the first attribute must be the image reference "
            f'(a name ending in "-ref", e.g. "source-ref"){hint}'
        )
    if label.endswith("-ref"):
        raise UserError(
            f"AttributeNames is {names!r}: the second attribute must be the bounding-box "
            "label, not another reference"
        )
    return image, label


@dataclass(frozen=True, eq=False)
class ManifestEntry:
    """One augmented-manifest line: the image reference and its label."""

    source_ref: str
    label: PixelLabel
    where: str


def parse_manifest_line(
    line: bytes | str,
    attribute_names: Sequence[str],
    *,
    where: str = "manifest line",
    num_classes: int | None = None,
) -> ManifestEntry:
    """One JSON line of an augmented manifest: the image attribute (a string) and the label
    attribute (an object with ``annotations``, optionally ``image_size``); other attributes,
    such as ``<label>-metadata``, are ignored."""
    image, label = check_attribute_names(attribute_names)
    data = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
    record = _decode_json(data, where)
    if not isinstance(record, dict):
        raise UserError(f"{where}: a manifest line is one JSON object, found {_shown(record)}")
    for name in (image, label):
        if name not in record:
            raise UserError(
                f"{where}: no {name!r} attribute (AttributeNames {list(attribute_names)!r})"
            )
    ref = record[image]
    if not isinstance(ref, str) or not ref:
        raise UserError(f"{where}: {image} is {_shown(ref)}; it must be the image's URI")
    parsed = parse_label(record[label], where=f"{where}: {label}", num_classes=num_classes)
    return ManifestEntry(ref, parsed, where)


def iter_manifest(
    stream: BinaryIO,
    attribute_names: Sequence[str],
    *,
    name: str = "manifest",
    num_classes: int | None = None,
) -> Iterator[ManifestEntry]:
    """Each non-blank line of an augmented manifest *stream* as a :class:`ManifestEntry`,
    read a line at a time. *name* starts every message, with the line number."""
    check_attribute_names(attribute_names)
    for number, line in enumerate(stream, start=1):
        if line.strip():
            yield parse_manifest_line(
                line, attribute_names, where=f"{name}: line {number}", num_classes=num_classes
            )


def _looks_like_image(data: bytes) -> bool:
    return data.startswith(PNG_SIGNATURE) or data.startswith(JPEG_SOI)


def iter_manifest_stream(
    stream: BinaryIO,
    attribute_names: Sequence[str],
    *,
    name: str = "pipe",
    num_classes: int | None = None,
) -> Iterator[AnnotatedImage]:
    """Each image of a Pipe-mode augmented-manifest channel (``RecordWrapperType=RecordIO``):
    RecordIO records alternating the image's bytes and the label attribute's JSON, as
    ``AttributeNames`` orders them. Streams one pair at a time."""
    _image, label_name = check_attribute_names(attribute_names)
    pending: tuple[int, int, bytes] | None = None
    for item in framed_records(stream, name):
        if pending is None:
            pending = item
            continue
        (index, offset, image), (_i, label_offset, payload) = pending, item
        pending = None
        pair = index // 2
        where = f"{name}: image {pair} (records {index}-{index + 1} at byte offset {offset})"
        if not _looks_like_image(image):
            hint = ""
            if image.lstrip()[:1] == b"{":
                hint = (
                    "; it looks like JSON: is AttributeNames in the wrong order? The order "
                    "matters: the image comes first"
                )
            raise UserError(
                f"{where}: record {index} is not a JPEG or PNG image{hint} (the channel needs "
                "S3DataType=AugmentedManifestFile, RecordWrapperType=RecordIO and "
                'AttributeNames ["source-ref", "<label attribute>"])'
            )
        label_where = f"{where}: {label_name} (record {index + 1} at byte offset {label_offset})"
        if _looks_like_image(payload):
            raise UserError(
                f"{label_where}: an image where the label's JSON was expected; each image "
                "needs its label record after it (AttributeNames with two attributes)"
            )
        label = parse_label(
            _decode_json(payload, label_where), where=label_where, num_classes=num_classes
        )
        size = label.size or image_size_of(image, where=where)
        objects = label.objects(size, num_classes=num_classes)
        yield AnnotatedImage(objects, size, where, data=image)
    if pending is not None:
        index, offset, _data = pending
        raise UserError(
            f"{name}: the stream ends after record {index} (byte offset {offset}) without the "
            "label record that follows each image; records alternate image and label "
            "(AttributeNames with two attributes)"
        )
