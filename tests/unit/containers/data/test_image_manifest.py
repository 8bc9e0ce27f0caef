"""Object Detection's images + JSON annotations and augmented manifests (reference §5.3 B, C):
pairing, field errors, pixel boxes -> normalised [cls, xmin, ymin, xmax, ymax] rows, image
sizes from PNG/JPEG headers, and the Pipe-mode RecordIO stream of (image, label) records.

Pillow is not installed, so the images are written here byte by byte from the PNG and JPEG
specifications: a PNG signature + IHDR (+ IEND), a JPEG SOI + APPn segments + SOFn + EOI.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sagedock.containers.data.image_manifest import (
    AnnotatedImage,
    ImageSize,
    check_attribute_names,
    image_size_of,
    iter_manifest,
    iter_manifest_stream,
    normalise_boxes,
    pair_annotations,
    parse_label,
    parse_manifest_line,
    read_image_size,
)
from sagedock.containers.data.mxnet_recordio import iter_image_records
from sagedock.toolkit.errors import UserError
from sagedock.toolkit.formats.recordio import encode_record

# --- test images --------------------------------------------------------------------------


def png(width: int, height: int, colour: int = 2) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def jpeg(width: int, height: int, *, sof: int = 0xC0, channels: int = 3, app: bytes = b"") -> bytes:
    jfif = segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0")
    frame = struct.pack(">BHHB", 8, height, width, channels) + b"\x01\x11\x00" * channels
    table = segment(0xDB, bytes(65))  # a quantisation table before the frame
    return b"\xff\xd8" + jfif + app + table + segment(sof, frame) + b"\xff\xd9"


def box(cls: Any, left: Any, top: Any, width: Any, height: Any) -> dict[str, Any]:
    return {"class_id": cls, "left": left, "top": top, "width": width, "height": height}


def sized(width: float, height: float) -> list[dict[str, float]]:
    return [{"width": width, "height": height, "depth": 3}]


def expected(boxes: list[dict[str, Any]], width: int, height: int) -> np.ndarray:
    """The normalised rows, computed the obvious way (float64 division, then float32)."""
    rows = [
        [
            b["class_id"],
            b["left"] / width,
            b["top"] / height,
            (b["left"] + b["width"]) / width,
            (b["top"] + b["height"]) / height,
        ]
        for b in boxes
    ]
    return np.array(rows, dtype=np.float32)


# --- image headers ------------------------------------------------------------------------


@pytest.mark.parametrize(("colour", "depth"), [(0, 1), (2, 3), (3, 3), (4, 2), (6, 4)])
def test_png_size_and_depth_come_from_ihdr(colour: int, depth: int) -> None:
    assert image_size_of(png(640, 480, colour)) == ImageSize(640, 480, depth)


@pytest.mark.parametrize("sof", [0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCF])
def test_jpeg_size_comes_from_the_first_sofn_segment(sof: int) -> None:
    assert image_size_of(jpeg(500, 400, sof=sof)) == ImageSize(500, 400, 3)


def test_jpeg_segments_and_fill_bytes_before_the_frame_are_skipped() -> None:
    exif = segment(0xE1, b"Exif\0\0" + bytes(60000))  # a large APP1 (a thumbnail)
    dht = segment(0xC4, bytes(20))  # 0xC4 is a Huffman table, not a frame
    data = jpeg(33, 7, channels=1, app=exif + dht + b"\xff\xff\xff")
    assert image_size_of(data) == ImageSize(33, 7, 1)


class _Pipe(io.RawIOBase):
    """A non-seekable stream that hands out at most 5 bytes per read."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        got = self._data.read(min(len(buffer), 5))
        buffer[: len(got)] = got
        return len(got)


def test_header_reading_works_on_a_pipe_with_short_reads() -> None:
    data = jpeg(1920, 1080, app=segment(0xE1, bytes(65000)) * 2)
    assert read_image_size(_Pipe(data)) == ImageSize(1920, 1080, 3)
    assert read_image_size(_Pipe(png(3, 4))) == ImageSize(3, 4, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a JPEG or PNG image"),
        (b"GIF89a\x01\x00", "not a JPEG or PNG image"),
        (png(3, 4)[:20], "ends inside its PNG IHDR"),
        (png(0, 4), "size of 0x4 pixels"),
        (png(5, 0), "size of 5x0 pixels"),
        (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IDAT" + bytes(17), "IHDR"),
        (jpeg(0, 4), "size of 0x4 pixels"),
        (jpeg(8, 8)[:30], "JPEG"),
        (b"\xff\xd8" + segment(0xDA, b"\0\0") + b"\xff\xd9", "no frame header"),
        (b"\xff\xd8\xff\xd9", "no frame header"),
        (b"\xff\xd8\x00\x00", "does not start with 0xFF"),
        (b"\xff\xd8\xff\xe0\x00\x01", "segment length 1"),
        (b"\xff\xd8" + segment(0xC0, b"\x08\x00"), r"frame header \(SOFn\) of 2 bytes"),
        (b"\xff\xd8\xff\xe1\x40\x00" + bytes(10), "truncated"),
    ],
)
def test_a_bad_image_header_is_a_user_error(data: bytes, message: str) -> None:
    with pytest.raises(UserError, match=message) as caught:
        image_size_of(data, where="photos/a.jpg")
    assert caught.value.message.startswith("photos/a.jpg: ")


# --- labels -------------------------------------------------------------------------------


def test_pixel_boxes_become_normalised_rows_like_an_mxnet_recordio_label() -> None:
    boxes = [box(0, 111, 134, 61, 128), box(1, 101, 185, 42, 130), box(1, 0, 0, 500, 400)]
    label = parse_label({"image_size": sized(500, 400), "annotations": boxes})
    assert label.size == ImageSize(500, 400, 3)
    objects = label.objects()
    assert objects.dtype == np.float32 and objects.shape == (3, 5)
    np.testing.assert_array_equal(objects, expected(boxes, 500, 400))
    np.testing.assert_allclose(objects[0], [0, 0.222, 0.335, 0.344, 0.655], atol=1e-6)


def test_extra_fields_are_ignored_and_floats_are_accepted() -> None:
    boxes = [{**box(2, 1.5, 2.25, 3.0, 4.5), "score": 0.9, "name": "cat"}]
    label = parse_label(
        {"image_size": [{"width": 10.0, "height": 20}], "annotations": boxes, "categories": "x"}
    )
    assert label.size == ImageSize(10, 20, None)
    np.testing.assert_array_equal(label.objects(), expected(boxes, 10, 20))


def test_a_label_without_image_size_is_normalised_by_a_given_size() -> None:
    label = parse_label({"annotations": [box(0, 1, 2, 3, 4)]}, where="x.json")
    assert label.size is None
    np.testing.assert_array_equal(
        label.objects(ImageSize(10, 10)), expected([box(0, 1, 2, 3, 4)], 10, 10)
    )
    with pytest.raises(UserError, match=r"x\.json: no image_size"):
        label.objects()


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ([], "the label must be a JSON object"),
        ({}, "no 'annotations' field"),
        ({"annotations": {}}, "annotations must be a list"),
        ({"annotations": []}, "annotations is empty"),
        ({"annotations": [5]}, r"annotations\[0\] must be an object"),
        ({"annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 1}]}, "no 'height'"),
        ({"annotations": [box(0, "1", 1, 1, 1)]}, r"annotations\[0\]\.left is \"1\"; .* number"),
        ({"annotations": [box(True, 1, 1, 1, 1)]}, r"class_id is true; it must be a number"),
        ({"annotations": [box(0, 1, None, 1, 1)]}, r"top is null"),
        ({"annotations": [box(0, 1, 1, float("nan"), 1)]}, "width is NaN; .* finite"),
        ({"annotations": [box(0, 1, 1, 10**400, 1)]}, "finite number"),
        ({"annotations": [box(-1, 1, 1, 1, 1)]}, "class_id is -1; class ids are whole"),
        ({"annotations": [box(0.5, 1, 1, 1, 1)]}, "class_id is 0.5"),
        ({"annotations": [box(0, 1, 1, 1, 1), box(3, 1, 1, 1, 1)]}, r"\[1\].class_id is 3, "),
        ({"annotations": [box(0, -1, 1, 1, 1)]}, r"left is -1; the box lies outside"),
        ({"annotations": [box(0, 1, -0.5, 1, 1)]}, r"top is -0.5; the box lies outside"),
        ({"annotations": [box(0, 1, 1, 0, 1)]}, r"width is 0; a box's width and height"),
        ({"annotations": [box(0, 1, 1, 1, -2)]}, r"height is -2"),
        ({"annotations": [box(0, 1, 1, 1, 1)], "image_size": []}, "list of one object"),
        ({"annotations": [box(0, 1, 1, 1, 1)], "image_size": [1]}, "list of one object"),
        ({"annotations": [box(0, 1, 1, 1, 1)], "image_size": [{"height": 5}]}, "no 'width'"),
        (
            {"annotations": [box(0, 1, 1, 1, 1)], "image_size": sized(0, 5)},
            r"image_size\[0\]\.width is 0; it must be a whole number above 0",
        ),
        (
            {"annotations": [box(0, 1, 1, 1, 1)], "image_size": sized(5, -3)},
            r"image_size\[0\]\.height is -3",
        ),
        (
            {"annotations": [box(0, 1, 1, 1, 1)], "image_size": sized(5, 2.5)},
            r"height is 2.5",
        ),
    ],
)
def test_a_bad_label_names_the_file_and_field(label: Any, message: str) -> None:
    with pytest.raises(UserError, match=message) as caught:
        parse_label(label, where="ann/a.json", num_classes=3)
    assert caught.value.message.startswith("ann/a.json: ")


@pytest.mark.parametrize(
    ("b", "message"),
    [
        (box(0, 90, 10, 11, 10), r"annotations\[0\] \(left 90, top 10, width 11, height 10\) "),
        (box(0, 0, 41, 10, 10), "reaches past the 100x50 image"),
    ],
)
def test_a_box_past_the_right_or_bottom_edge_is_an_error(b: dict[str, Any], message: str) -> None:
    label = parse_label({"annotations": [b], "image_size": sized(100, 50)}, where="a.json")
    with pytest.raises(UserError, match=message):
        label.objects()


def test_a_box_too_thin_for_float32_is_caught_by_the_recordio_checks() -> None:
    with pytest.raises(UserError, match="xmin must be below xmax"):
        normalise_boxes(np.array([[0, 1, 1, 1e-9, 1]]), ImageSize(10, 10), where="a.json")


# --- images + JSON annotation files ---------------------------------------------------------


def write_channel(
    root: Path, images: dict[str, bytes], annotations: dict[str, Any]
) -> tuple[Path, Path]:
    image_dir, ann_dir = root / "train", root / "train_annotation"
    for name, data in images.items():
        (image_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (image_dir / name).write_bytes(data)
    ann_dir.mkdir(parents=True, exist_ok=True)
    for name, doc in annotations.items():
        (ann_dir / name).parent.mkdir(parents=True, exist_ok=True)
        text = doc if isinstance(doc, str | bytes) else json.dumps(doc)
        (ann_dir / name).write_bytes(text.encode() if isinstance(text, str) else text)
    return image_dir, ann_dir


def annotation(file: str, boxes: list[dict[str, Any]], size: tuple[int, int] | None) -> Any:
    doc: dict[str, Any] = {"file": file, "annotations": boxes}
    if size is not None:
        doc["image_size"] = sized(*size)
    doc["categories"] = [{"class_id": 0, "name": "dog"}]
    return doc


def test_mixed_jpg_and_png_images_pair_with_their_annotations(tmp_path: Path) -> None:
    b1, b2, b3 = (
        [box(0, 1, 2, 3, 4)],
        [box(1, 10, 10, 20, 30), box(0, 0, 0, 5, 5)],
        [box(1, 0, 0, 8, 8)],
    )
    images, anns = write_channel(
        tmp_path,
        {"a.jpg": jpeg(50, 40), "sub/b.PNG": png(64, 48), "c.jpeg": jpeg(8, 8)},
        {
            "a.json": annotation("a.jpg", b1, (50, 40)),
            "x/b.json": annotation("sub/b.PNG", b2, None),  # size from the PNG header
            "z.json": annotation("./c.jpeg", b3, (8, 8)),
        },
    )
    (images / "notes.txt").write_text("not an image")
    got = pair_annotations(images, anns, num_classes=2)
    assert [g.path for g in got] == [images / "a.jpg", images / "c.jpeg", images / "sub/b.PNG"]
    assert [g.where for g in got] == ["a.json", "z.json", "x/b.json"]
    assert [g.size for g in got] == [ImageSize(50, 40, 3), ImageSize(8, 8, 3), ImageSize(64, 48, 3)]
    for g, boxes in zip(got, [b1, b3, b2], strict=True):
        np.testing.assert_array_equal(g.objects, expected(boxes, g.size.width, g.size.height))
    assert got[2].image_bytes() == png(64, 48)


def test_a_file_with_a_directory_prefix_matches_a_uniquely_named_image(tmp_path: Path) -> None:
    # §5.3's example: "file": "your_image_directory/sample_image1.jpg".
    images, anns = write_channel(
        tmp_path,
        {"sample_image1.jpg": jpeg(500, 400)},
        {
            "sample_image1.json": annotation(
                "your_image_directory/sample_image1.jpg", [box(0, 1, 1, 1, 1)], None
            )
        },
    )
    (got,) = pair_annotations(images, anns)
    assert got.path == images / "sample_image1.jpg" and got.size == ImageSize(500, 400, 3)


def _pair_error(
    tmp_path: Path, images: dict[str, bytes], anns: dict[str, Any], message: str
) -> str:
    image_dir, ann_dir = write_channel(tmp_path, images, anns)
    with pytest.raises(UserError, match=message) as caught:
        pair_annotations(image_dir, ann_dir, num_classes=2)
    text: str = caught.value.message
    return text


ONE = [box(0, 1, 1, 1, 1)]


@pytest.mark.parametrize(
    ("anns", "message"),
    [
        ({"a.json": "{not json"}, r"^a\.json: not valid JSON \(Expecting property name"),
        ({"a.json": b'{"file": "\xff"}'}, r"^a\.json: not valid JSON \(not UTF-8 text\)"),
        ({"a.json": "[" * 5000 + "]" * 5000}, r"^a\.json: not valid JSON \(nested too deeply\)"),
        ({"a.json": "[1]"}, r"^a\.json: an annotation file holds one JSON object"),
        ({"a.json": {"annotations": ONE}}, r"^a\.json: no 'file' field naming its image"),
        ({"a.json": annotation("", ONE, None)}, r"^a\.json: file is \"\"; it must name an image"),
        ({"a.json": {"file": 3, "annotations": ONE}}, r"^a\.json: file is 3"),
        (
            {
                "a.json": annotation("a.jpg", ONE, None),
                "b.json": annotation("missing.jpg", ONE, None),
            },
            r"^b\.json: file \"missing\.jpg\" is not an image in the image channel \(no image",
        ),
        (
            {"a.json": annotation("a.jpg", ONE, None), "b.json": annotation("a.jpg", ONE, None)},
            r"^b\.json: annotates image 'a\.jpg', which a\.json annotates already",
        ),
        (
            {"a.json": annotation("a.jpg", [box(2, 1, 1, 1, 1)], None)},
            r"^a\.json: annotations\[0\]\.class_id is 2, outside 0 to 1 \(num_classes=2\)",
        ),
        (
            {"a.json": annotation("a.jpg", [box(0, 1, 1, 30, 1)], (20, 20))},
            r"^a\.json: annotations\[0\] .* reaches past the 20x20 image",
        ),
        (
            {"a.json": annotation("a.jpg", ONE, (0, 20))},
            r"^a\.json: image_size\[0\]\.width is 0",
        ),
    ],
)
def test_a_bad_annotation_file_names_itself(
    tmp_path: Path, anns: dict[str, Any], message: str
) -> None:
    _pair_error(tmp_path, {"a.jpg": jpeg(40, 30)}, anns, message)


def test_an_image_without_annotation_is_an_error(tmp_path: Path) -> None:
    images = {f"{c}.png": png(4, 4) for c in "abcde"}
    message = _pair_error(tmp_path, images, {"a.json": annotation("a.png", ONE, None)}, "4 image")
    assert "b.png, c.png, d.png and 1 more" in message


def test_an_ambiguous_image_name_is_an_error(tmp_path: Path) -> None:
    images = {"x/a.png": png(4, 4), "y/a.png": png(4, 4)}
    anns = {"1.json": annotation("a.png", ONE, None), "2.json": annotation("y/a.png", ONE, None)}
    _pair_error(tmp_path, images, anns, r"several images are named 'a\.png': x/a\.png, y/a\.png")


def test_an_unreadable_image_header_names_the_image(tmp_path: Path) -> None:
    _pair_error(
        tmp_path,
        {"a.jpg": b"\xff\xd8\xff\xd9"},
        {"a.json": annotation("a.jpg", ONE, None)},
        r"^a\.jpg: the JPEG image has no frame header",
    )


def test_empty_channels_are_errors(tmp_path: Path) -> None:
    _pair_error(tmp_path / "1", {"a.txt": b"x"}, {"a.json": "{}"}, "No .jpg or .png images")
    _pair_error(tmp_path / "2", {"a.png": png(2, 2)}, {"a.txt": "{}"}, "No .json annotation")


# --- augmented manifests ------------------------------------------------------------------

ATTRS = ["source-ref", "bounding-box"]
# §5.3 C's example line.
GT_LINE = (
    '{"source-ref":"s3://bucket/image1.jpg","bounding-box":{"image_size":[{"width":500,'
    '"height":400,"depth":3}],"annotations":[{"class_id":0,"left":111,"top":134,"width":61,'
    '"height":128}]},"bounding-box-metadata":{"class-map":{"0":"dog"},'
    '"type":"groundtruth/object-detection"}}'
)


def test_a_ground_truth_line_parses() -> None:
    entry = parse_manifest_line(GT_LINE, ATTRS)
    assert entry.source_ref == "s3://bucket/image1.jpg"
    np.testing.assert_array_equal(
        entry.label.objects(), expected([box(0, 111, 134, 61, 128)], 500, 400)
    )


def test_manifest_lines_are_read_in_order_with_line_numbers() -> None:
    lines = [GT_LINE, "", GT_LINE.replace("image1", "image2"), "{}"]
    stream = io.BytesIO("\n".join(lines).encode())
    entries = iter_manifest(stream, ATTRS, name="train.manifest")
    assert next(entries).source_ref.endswith("image1.jpg")
    assert next(entries).where == "train.manifest: line 3"
    with pytest.raises(UserError, match=r"^train\.manifest: line 4: no 'source-ref' attribute"):
        next(entries)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (
            ["bounding-box", "source-ref"],
            "the first attribute must be the image reference .* "
            r"\(the order matters: the image comes first\)",
        ),
        (["source-ref"], "Object Detection takes two attributes"),
        (["source-ref", "bounding-box", "x"], "takes two attributes"),
        (["image", "bounding-box"], "the first attribute must be the image reference"),
        (["source-ref", "other-ref"], "the second attribute must be the bounding-box label"),
    ],
)
def test_attribute_names_take_the_image_first(names: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        check_attribute_names(names)
    with pytest.raises(UserError, match=message):
        list(iter_manifest_stream(io.BytesIO(b""), names))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "a manifest line is one JSON object"),
        ('{"source-ref": "s3://b/x.jpg"}', "no 'bounding-box' attribute"),
        ('{"source-ref": 1, "bounding-box": {}}', "source-ref is 1"),
        ('{"source-ref": "s3://b/x.jpg", "bounding-box": {}}', "m: bounding-box: no 'annotations'"),
    ],
)
def test_a_bad_manifest_line_names_the_line(line: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as caught:
        parse_manifest_line(line, ATTRS, where="m")
    assert caught.value.message.startswith("m: ")


def label_json(boxes: list[dict[str, Any]], size: tuple[int, int] | None) -> bytes:
    label: dict[str, Any] = {"annotations": boxes}
    if size is not None:
        label["image_size"] = sized(*size)
    return json.dumps(label).encode()


def pipe(*payloads: bytes) -> io.BytesIO:
    return io.BytesIO(b"".join(encode_record(p) for p in payloads))


def test_a_pipe_stream_alternates_image_and_label_records() -> None:
    b1, b2 = [box(0, 1, 2, 3, 4)], [box(1, 5, 5, 10, 10), box(0, 0, 0, 1, 1)]
    # A JPEG holding the RecordIO magic word at an aligned offset: its record is multipart.
    image1 = jpeg(20, 20) + b"\0\0" + b"\x0a\x23\xd7\xce" + b"tail"
    stream = pipe(image1, label_json(b1, (20, 20)), png(30, 16), label_json(b2, None))
    got = list(iter_manifest_stream(stream, ATTRS, num_classes=2))
    assert [g.data for g in got] == [image1, png(30, 16)]
    assert [g.size for g in got] == [ImageSize(20, 20, 3), ImageSize(30, 16, 3)]
    np.testing.assert_array_equal(got[0].objects, expected(b1, 20, 20))
    np.testing.assert_array_equal(got[1].objects, expected(b2, 30, 16))
    assert got[1].where.startswith("pipe: image 1 (records 2-3 at byte offset")


def test_a_pipe_in_the_wrong_attribute_order_says_so() -> None:
    stream = pipe(label_json(ONE, (9, 9)), jpeg(9, 9))
    with pytest.raises(
        UserError,
        match=r"record 0 is not a JPEG or PNG image; it looks like JSON: "
        "is AttributeNames in the wrong order",
    ):
        list(iter_manifest_stream(stream, ATTRS))


@pytest.mark.parametrize(
    ("payloads", "message"),
    [
        ([jpeg(9, 9)], "ends after record 0 .* without the label record"),
        ([jpeg(9, 9), jpeg(9, 9)], "an image where the label's JSON was expected"),
        ([b"hello", label_json(ONE, None)], r"record 0 is not a JPEG or PNG image \(the channel"),
        ([png(9, 9), b"{"], r"bounding-box \(record 1 at byte offset \d+\): not valid JSON"),
        ([png(9, 9), label_json([box(5, 1, 1, 1, 1)], None)], "class_id is 5, outside 0 to 1"),
        ([png(9, 9), label_json([box(0, 1, 1, 9, 1)], None)], "reaches past the 9x9 image"),
    ],
)
def test_a_bad_pipe_stream_is_a_user_error(payloads: list[bytes], message: str) -> None:
    with pytest.raises(UserError, match=message):
        list(iter_manifest_stream(pipe(*payloads), ATTRS, num_classes=2))


def test_corrupt_framing_names_the_pipe() -> None:
    body = pipe(png(9, 9), label_json(ONE, None)).getvalue()
    with pytest.raises(UserError, match=r"^train_0: corrupt RecordIO data: record 1"):
        list(iter_manifest_stream(io.BytesIO(body[:-8]), ATTRS, name="train_0"))


# --- the three formats give the same targets --------------------------------------------------


def test_json_files_manifest_pipe_and_mxnet_recordio_give_the_same_targets(tmp_path: Path) -> None:
    from tests.unit.containers.data.test_mxnet_recordio import frame, pack

    dataset = [  # (name, image bytes, width, height, boxes)
        (
            "dog.jpg",
            jpeg(500, 375),
            500,
            375,
            [box(0, 111, 134, 61, 128), box(1, 101, 185, 42, 130)],
        ),
        ("cat.png", png(333, 500), 333, 500, [box(1, 0, 0, 333, 500)]),
        ("both.jpg", jpeg(641, 427), 641, 427, [box(2, 3.5, 7.25, 100, 99.5)] * 3),
    ]
    images, anns = write_channel(
        tmp_path,
        {name: data for name, data, *_ in dataset},
        {name + ".json": annotation(name, boxes, None) for name, _d, _w, _h, boxes in dataset},
    )
    by_file = {g.path.name: g for g in pair_annotations(images, anns, num_classes=3) if g.path}

    # Ground Truth's manifest lines, and the Pipe stream SageMaker makes of them.
    lines, records = [], []
    for name, data, width, height, boxes in dataset:
        label = json.loads(label_json(boxes, (width, height)))
        lines.append(json.dumps({"source-ref": f"s3://b/{name}", "bounding-box": label}))
        records += [data, json.dumps(label).encode()]
    manifest = io.BytesIO("\n".join(lines).encode())
    by_line = [e.label.objects() for e in iter_manifest(manifest, ATTRS, num_classes=3)]
    by_pipe = list(iter_manifest_stream(pipe(*records), ATTRS, num_classes=3))

    rec = io.BytesIO()
    for i, (_n, data, width, height, boxes) in enumerate(dataset):
        label = [2.0, 5.0, *expected(boxes, width, height).ravel().tolist()]
        rec.write(frame(pack(label, data, id=i)))
    rec.seek(0)
    by_rec = [r.detection_objects(num_classes=3) for r in iter_image_records(rec)]

    for i, (name, data, width, height, boxes) in enumerate(dataset):
        json_file: AnnotatedImage = by_file[name]
        assert json_file.size == by_pipe[i].size == ImageSize(width, height, 3)
        assert by_pipe[i].data == data == json_file.image_bytes()
        for objects in (by_line[i], by_pipe[i].objects, by_rec[i]):
            assert objects.dtype == json_file.objects.dtype == np.float32
            np.testing.assert_array_equal(objects, json_file.objects)
        np.testing.assert_array_equal(json_file.objects, expected(boxes, width, height))
