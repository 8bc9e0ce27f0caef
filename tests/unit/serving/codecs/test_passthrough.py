"""application/octet-stream, image/* and text/plain pass through untouched."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagedock.serving.codecs.passthrough import sniff_image_type
from sagedock.serving.errors import BadRequest

from .helpers import decode, encode


@given(st.binary())
def test_octet_stream_and_images_are_bytes_both_ways(body: bytes) -> None:
    assert decode(body, "application/octet-stream") == body
    assert decode(body, "image/jpeg") == body
    assert encode(body, "application/octet-stream") == (body, "application/octet-stream")
    assert encode(body, "image/webp")[0] == body


@given(st.text())
def test_text_plain_round_trip(text: str) -> None:
    body, content_type = encode(text, "text/plain")
    assert content_type == "text/plain; charset=utf-8"
    assert decode(body, content_type) == text


def test_text_plain_honours_charset() -> None:
    assert decode("naïve".encode("utf-16"), "text/plain; charset=utf-16") == "naïve"
    with pytest.raises(BadRequest) as caught:
        decode(b"ok \xe9", "text/plain")
    assert caught.value.message == "text/plain body is not valid utf-8: byte 0xe9 at position 3"


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0....", "image/jpeg"),
        (b"GIF89a....", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"BM......", "image/bmp"),
        (b"II*\x00....", "image/tiff"),
        (b"plain bytes", None),
    ],
)
def test_image_responses_are_labelled_by_their_magic(data: bytes, mime: str | None) -> None:
    assert sniff_image_type(data) == mime
    assert encode(data, "image/*")[1] == (mime or "application/octet-stream")
