"""Pass-through types: ``application/octet-stream``, ``image/*`` and ``text/plain``.

The body reaches the model as it came: ``bytes`` for octet-stream and images, ``str`` for
text/plain (decoded with the Content-Type's charset, UTF-8 by default). Encoding takes bytes
(octet-stream, images) or a str (text/plain). An image response is labelled with the concrete
type the client accepted, else the type its magic bytes show (PNG, JPEG, GIF, WebP, BMP, TIFF).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..negotiation import MediaType
from .base import Codec, text_of

_BYTES = bytes | bytearray | memoryview

_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


def sniff_image_type(data: bytes) -> str | None:
    """The image media type its leading bytes show, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, mime in _IMAGE_MAGIC:
        if data.startswith(magic):
            return mime
    return None


class OctetStreamCodec(Codec):
    """``application/octet-stream``: bytes in, bytes out."""

    content_type: ClassVar[str] = "application/octet-stream"

    def decode(self, body: bytes, media: MediaType) -> bytes:
        return bytes(body)

    def encode(self, value: Any, media: MediaType) -> bytes:
        return bytes(value)

    def can_encode(self, value: Any) -> bool:
        return isinstance(value, _BYTES)


class ImageCodec(Codec):
    """``image/*``: the encoded image bytes, untouched."""

    content_type: ClassVar[str] = "image/*"

    def decode(self, body: bytes, media: MediaType) -> bytes:
        return bytes(body)

    def encode(self, value: Any, media: MediaType) -> bytes:
        return bytes(value)

    def can_encode(self, value: Any) -> bool:
        return isinstance(value, _BYTES)

    def response_type(self, value: Any, media: MediaType) -> str:
        if media.subtype != "*":
            return media.mime
        return sniff_image_type(bytes(value[:16])) or "application/octet-stream"


class TextCodec(Codec):
    """``text/plain``: a str in the request's charset; a str out."""

    content_type: ClassVar[str] = "text/plain"

    def decode(self, body: bytes, media: MediaType) -> str:
        return text_of(body, media)

    def encode(self, value: Any, media: MediaType) -> bytes:
        if not isinstance(value, str):
            raise TypeError(f"text/plain responses take a str, got {type(value).__name__}")
        return value.encode(media.charset or "utf-8")

    def can_encode(self, value: Any) -> bool:
        return isinstance(value, str)

    def response_type(self, value: Any, media: MediaType) -> str:
        return f"{media.mime}; charset={media.charset or 'utf-8'}"
