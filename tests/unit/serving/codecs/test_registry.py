"""CodecRegistry: lookup by media type, duplicates, 415/406, choosing an encoder for a value."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from sagedock.serving.codecs import Codec, CodecRegistry, JSONCodec, default_registry
from sagedock.serving.errors import ModelError, NotAcceptable, UnsupportedMediaType
from sagedock.serving.negotiation import MediaType, parse_content_type

from .helpers import encode

ALL_TYPES = (
    "application/json",
    "application/jsonlines",
    "text/csv",
    "application/x-npy",
    "application/x-npz",
    "application/x-recordio-protobuf",
    "application/octet-stream",
    "text/plain",
    "image/*",
)


def test_default_registry_holds_every_builtin_type() -> None:
    registry = default_registry()
    assert registry.decodable_types == ALL_TYPES
    assert registry.encodable_types == ALL_TYPES


def test_default_registry_is_fresh_each_time() -> None:
    class Extra(Codec):
        content_type: ClassVar[str] = "text/libsvm"

    first = default_registry()
    first.register(Extra())
    assert "text/libsvm" in first
    assert "text/libsvm" not in default_registry()


def test_duplicate_registration_raises() -> None:
    registry = CodecRegistry([JSONCodec()])
    with pytest.raises(ValueError, match="a codec for application/json is registered already"):
        registry.register(JSONCodec())
    replacement = JSONCodec()
    registry.replace(replacement)
    assert registry.decoder_for(MediaType("application", "json")) is replacement


@pytest.mark.parametrize(
    ("content_type", "codec"),
    [
        ("application/json", "JSONCodec"),
        ("Application/JSON; charset=utf-8", "JSONCodec"),
        ("text/csv; header=present", "CSVCodec"),
        ("csv", "CSVCodec"),
        ("image/png", "ImageCodec"),
        ("image/jpeg", "ImageCodec"),
        ("application/x-recordio-protobuf", "RecordIOProtobufCodec"),
    ],
)
def test_decoder_lookup(content_type: str, codec: str) -> None:
    media = parse_content_type(content_type, "application/json")
    assert type(default_registry().decoder_for(media)).__name__ == codec


def test_unknown_content_type_is_415_listing_supported_types() -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        default_registry().decoder_for(parse_content_type("application/xml", "x/y"))
    assert caught.value.status == 415
    assert caught.value.message == (
        "Content-Type application/xml is not supported; supported: " + ", ".join(ALL_TYPES)
    )


def test_unknown_accept_type_is_406_listing_supported_types() -> None:
    with pytest.raises(NotAcceptable) as caught:
        default_registry().encoder_for("application/xml")
    assert caught.value.status == 406
    assert caught.value.message == (
        "Accept type application/xml is not supported; supported: " + ", ".join(ALL_TYPES)
    )
    assert type(default_registry().encoder_for("image/png")).__name__ == "ImageCodec"


@pytest.mark.parametrize(
    ("value", "accept", "default", "body", "content_type"),
    [
        (np.array([0.5, 1.5]), None, "text/csv", b"0.5\n1.5\n", "text/csv"),
        (np.array([0.5, 1.5]), "*/*", "application/json", b"[0.5,1.5]", "application/json"),
        (np.array([0.5, 1.5]), "application/json", "text/csv", b"[0.5,1.5]", "application/json"),
        ({"a": 1}, None, "text/csv", b'{"a":1}', "application/json"),  # CSV can't: next capable
        ("hi", "text/plain", "text/csv", b"hi", "text/plain; charset=utf-8"),
        (
            "hé",
            "text/plain; charset=latin-1",
            "x/y",
            "hé".encode("latin-1"),
            "text/plain; charset=latin-1",
        ),
        (b"\x89PNG\r\n\x1a\n..", "image/*", "text/csv", b"\x89PNG\r\n\x1a\n..", "image/png"),
        (b"\xff\xd8\xff..", "image/jpeg", "text/csv", b"\xff\xd8\xff..", "image/jpeg"),
        (b"raw", None, "text/csv", b"raw", "application/octet-stream"),
    ],
)
def test_encode_picks_a_type_that_can_represent_the_value(
    value: Any, accept: str | None, default: str, body: bytes, content_type: str
) -> None:
    assert encode(value, accept, default) == (body, content_type)


def test_unrepresentable_value_for_the_accept_is_406_naming_alternatives() -> None:
    with pytest.raises(NotAcceptable) as caught:
        encode({"a": 1}, "text/csv")
    assert caught.value.message == (
        "a prediction of type dict cannot be encoded as text/csv; it can be encoded as: "
        "application/json, application/jsonlines, application/x-npz"
    )


def test_encoder_failure_is_a_model_error() -> None:
    class Broken(Codec):
        content_type: ClassVar[str] = "application/x-broken"

        def encode(self, value: Any, media: MediaType) -> bytes:
            raise ValueError("shape (3, 4) is not supported")

    registry = CodecRegistry([Broken()])
    with pytest.raises(ModelError) as caught:
        registry.encode(1, None, "application/x-broken")
    assert caught.value.status == 500
    assert caught.value.message == (
        "could not encode the prediction as application/x-broken: shape (3, 4) is not supported"
    )


def test_accept_parameters_reach_the_codec() -> None:
    seen: list[MediaType] = []

    class Spy(Codec):
        content_type: ClassVar[str] = "application/x-spy"

        def encode(self, value: Any, media: MediaType) -> bytes:
            seen.append(media)
            return b""

    CodecRegistry([Spy()]).encode(1, "application/x-spy; verbose=True", "x/y")
    assert seen == [MediaType("application", "x-spy", {"verbose": "True"})]


def test_decode_only_codec_is_not_offered_for_responses() -> None:
    class ReadOnly(Codec):
        content_type: ClassVar[str] = "text/libsvm"
        encodes: ClassVar[bool] = False

        def decode(self, body: bytes, media: MediaType) -> Any:
            return body

    registry = CodecRegistry([ReadOnly(), JSONCodec()])
    assert registry.decodable_types == ("text/libsvm", "application/json")
    assert registry.encodable_types == ("application/json",)
    with pytest.raises(NotAcceptable):
        registry.encode([1], "text/libsvm", "application/json")
