"""Client mistakes the codecs once answered 500 for (issue 11, section 3): each is a 4xx whose
message names the problem, not the parser's internals."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
import pytest

from sagedock.serving.codecs import NpzCodec, default_registry
from sagedock.serving.errors import BadRequest, NotAcceptable
from sagedock.serving.negotiation import parse_content_type
from sagedock.toolkit.formats import protobuf
from sagedock.toolkit.formats.protobuf import Record, Tensor

from .helpers import decode, encode
from .test_json import BACKENDS, backend

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("content_type", ["application/json", "application/jsonlines"])
@pytest.mark.parametrize("depth", [1500, 100_000])
def test_json_nested_too_deeply_is_400(name: str, content_type: str, depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    with backend(name), pytest.raises(BadRequest) as caught:
        decode(body, content_type)
    assert "nested too deeply" in caught.value.message
    assert "recursion" not in caught.value.message


@pytest.mark.parametrize("name", BACKENDS)
def test_json_nested_too_deeply_in_another_charset_is_400(name: str) -> None:
    with backend(name), pytest.raises(BadRequest, match="nested too deeply"):
        decode(DEEP.decode().encode("utf-16"), "application/json; charset=utf-16")


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize(
    ("content_type", "where"),
    [("application/json", ""), ("application/jsonlines", "line 2: ")],
)
def test_integer_over_4300_digits_is_400(name: str, content_type: str, where: str) -> None:
    body = b"[1]\n[" + b"7" * 5000 + b"]\n"
    if content_type == "application/json":
        body = b"[" + b"7" * 5000 + b"]"
    with backend(name), pytest.raises(BadRequest) as caught:
        decode(body, content_type)
    assert caught.value.message == (
        f"invalid {content_type} body: {where}an integer has more than 4300 digits"
    )


@pytest.mark.parametrize("charset", ["base64", "rot13", "hex", "zlib", "undefined"])
@pytest.mark.parametrize("mime", ["application/json", "text/csv", "text/plain"])
def test_a_non_text_charset_in_content_type_is_400(charset: str, mime: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode(b"MSwy", f"{mime}; charset={charset}")
    assert caught.value.message == (
        f"charset {charset!r} in Content-Type {mime} is not a text encoding"
    )


@pytest.mark.parametrize("charset", ["base64", "rot13", "klingon", "undefined"])
@pytest.mark.parametrize(
    ("value", "mime"),
    [([1, 2], "application/json"), ([1, 2], "text/csv"), ("hi", "text/plain")],
)
def test_a_charset_that_is_no_text_encoding_in_accept_is_406(
    charset: str, value: object, mime: str
) -> None:
    with pytest.raises(NotAcceptable) as caught:
        encode(value, f"{mime}; charset={charset}")
    assert caught.value.message.startswith(f"charset {charset!r} in Accept")


def test_a_prediction_the_accepted_charset_cannot_hold_is_406() -> None:
    with pytest.raises(NotAcceptable) as caught:
        encode("price: 5 €", "text/plain; charset=latin-1")
    assert caught.value.message == (
        "the prediction cannot be written in charset 'latin-1' (Accept): "
        "character '€' at position 9; ask for utf-8"
    )


def _npy_with_header(header: bytes) -> bytes:
    padded = header + b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(padded)) + padded


def test_npy_header_that_does_not_tokenize_is_400() -> None:
    body = _npy_with_header(b"{'descr': '<f8', 'fortran_order': False, 'shape': (3,), '''}")
    with pytest.raises(BadRequest, match=r"^application/x-npy body has an invalid \.npy header"):
        decode(body, "application/x-npy")


def test_npy_declaring_8_tib_is_400_before_allocating() -> None:
    body = _npy_with_header(
        b"{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }"
    )
    with pytest.raises(BadRequest) as caught:
        decode(body + b"\0" * 16, "application/x-npy")
    assert caught.value.message == (
        "application/x-npy body is truncated or corrupt: its header declares shape "
        "(1099511627776,) of float64 (8796093022208 bytes), but 16 bytes of data follow"
    )


@pytest.mark.parametrize(
    "shape", ["(9223372036854775807, 9223372036854775807)", "(99999999999999999999999,)"]
)
def test_npy_shape_beyond_int64_is_400(shape: str) -> None:
    body = _npy_with_header(
        b"{'descr': '<f8', 'fortran_order': False, 'shape': " + shape.encode() + b", }"
    )
    with pytest.raises(BadRequest, match="header declares shape"):
        decode(body, "application/x-npy")


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def _central_directory_offset(body: bytes) -> int:
    end = body.rindex(b"PK\x05\x06")
    return int(struct.unpack("<I", body[end + 16 : end + 20])[0])


def _corrupt_npz(kind: str) -> bytes:
    body = bytearray(_npz(x=np.arange(1000, dtype=np.float64)))
    central = _central_directory_offset(bytes(body))
    if kind == "bad offset":  # the member's local header offset points past the data
        struct.pack_into("<I", body, central + 42, len(body) - 30)
    elif kind == "unknown compression":  # method 99 in both headers
        struct.pack_into("<H", body, 8, 99)
        struct.pack_into("<H", body, central + 10, 99)
    elif kind == "bad deflate":  # garbage where the deflate stream starts
        name_len, extra_len = struct.unpack("<HH", body[26:30])
        start = 30 + name_len + extra_len
        body[start : start + 8] = b"\xff" * 8
    return bytes(body)


@pytest.mark.parametrize("kind", ["bad offset", "unknown compression", "bad deflate"])
def test_corrupt_npz_is_400_naming_the_member(kind: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode(_corrupt_npz(kind), "application/x-npz")
    assert caught.value.message.startswith("application/x-npz body")
    assert "'x.npy'" in caught.value.message or "not an .npz" in caught.value.message


def _zip_bomb(inflated: int) -> bytes:
    """A .npz whose one member inflates to *inflated* bytes of zeros (a valid .npy, CRC
    included), written by hand: the deflate stream of 1 MiB of zeros after a full flush is
    the same each time, so it is made once and repeated instead of deflating *inflated* bytes
    (which took 6 s)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (inflated,)}
    )
    head, mib = header.getvalue(), bytes(1 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = deflate.compress(head + mib) + deflate.flush(zlib.Z_FULL_FLUSH)
    again = deflate.compress(mib) + deflate.flush(zlib.Z_FULL_FLUSH)
    stream = first + again * (inflated // len(mib) - 1) + deflate.flush()
    crc = zlib.crc32(head)
    for _ in range(inflated // len(mib)):
        crc = zlib.crc32(mib, crc)
    name = b"x.npy"
    # version 2.0, no flags, deflate, a DOS time and date, crc, sizes, name length
    fields = struct.pack(
        "<HHHHHIIIH", 20, 0, 8, 0, 0x21, crc, len(stream), len(head) + inflated, len(name)
    )
    local = b"PK\x03\x04" + fields + b"\x00\x00" + name
    central = (
        b"PK\x01\x02" + struct.pack("<H", 20) + fields + struct.pack("<HHHHII", 0, 0, 0, 0, 0, 0)
    ) + name
    end = b"PK\x05\x06" + struct.pack(
        "<HHHHIIH", 0, 0, 1, 1, len(central), len(local) + len(stream), 0
    )
    return local + stream + central + end


_NPZ = parse_content_type("application/x-npz", "application/json")


def test_the_zip_bomb_is_a_valid_archive() -> None:
    body = _zip_bomb(1 << 22)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None  # deflate stream and CRC check out
    assert set(NpzCodec(max_payload_bytes=None).decode(body, _NPZ)) == {"x"}


def test_npz_inflating_far_beyond_the_payload_limit_is_400() -> None:
    body = _zip_bomb(1 << 30)
    assert len(body) < 2 << 20  # about a thousandth of what it expands to
    with pytest.raises(BadRequest) as caught:
        decode(body, "application/x-npz")
    assert caught.value.message.startswith(
        f"application/x-npz body expands to {(1 << 30) + 128} bytes, more than the limit of "
        f"{16 * 6 << 20} (16 x SAGEMAKER_MAX_PAYLOAD_IN_MB)"
    )


def test_npz_limit_follows_the_payload_limit() -> None:
    body = _npz(x=np.zeros(1 << 18))  # 2 MiB inflated
    media = parse_content_type("application/x-npz", "application/json")
    assert set(default_registry(max_payload_bytes=1 << 20).decode(body, media)) == {"x"}
    with pytest.raises(BadRequest, match="more than the limit of 1048576"):
        default_registry(max_payload_bytes=1 << 16).decode(body, media)
    assert NpzCodec(max_payload_bytes=None).max_inflated_bytes == 1 << 30


def _sparse_record(shape: tuple[int, ...], label_shape: tuple[int, ...] | None = None) -> bytes:
    one = np.array([1.0], dtype=np.float32)
    key = np.array([0], dtype=np.uint64)
    label = {} if label_shape is None else {"values": Tensor("float32", one, key, label_shape)}
    record = Record(features={"values": Tensor("float32", one, key, shape)}, label=label)
    return bytes(protobuf.records_to_bytes([record] * 5))


@pytest.mark.parametrize("shape", [(2**64 - 1,), (2**63,), (2**40, 2**40)])
def test_recordio_sparse_shape_beyond_int64_is_400(shape: tuple[int, ...]) -> None:
    with pytest.raises(BadRequest) as caught:
        decode(_sparse_record(shape), "application/x-recordio-protobuf")
    message = caught.value.message
    assert message.startswith(
        "invalid application/x-recordio-protobuf body: invalid recordio-protobuf data: record 0"
    )
    assert f"shape {list(shape)} has more than 2**63 - 1 elements" in message


def test_recordio_sparse_label_too_large_to_expand_is_400() -> None:
    with pytest.raises(BadRequest, match=r"label\['values'\] of shape \[1099511627776\]"):
        decode(_sparse_record((4,), (2**40,)), "application/x-recordio-protobuf")


@pytest.mark.parametrize("key", [2**64 - 1, 2**63])
@pytest.mark.parametrize("records", [1, 5])
def test_recordio_sparse_key_beyond_int64_is_400(key: int, records: int) -> None:
    # Five records of one layout take the vectorised path, which read such keys as negative.
    one = np.array([1.0], dtype=np.float32)
    tensor = Tensor("float32", one, np.array([key], dtype=np.uint64), (10,))
    body = bytes(protobuf.records_to_bytes([Record(features={"values": tensor})] * records))
    with pytest.raises(BadRequest, match=r"sparse key .*outside the tensor's shape"):
        decode(body, "application/x-recordio-protobuf")


@pytest.mark.parametrize("name", BACKENDS)
def test_json_text_with_lone_surrogates_from_its_charset_is_parsed(name: str) -> None:
    # unicode_escape turns \\ud800 into a lone surrogate, which UTF-8 cannot encode (found by
    # the any-bytes property: a UnicodeEncodeError, a 500).
    with backend(name):
        assert decode(b'["\\ud800"]', "application/json; charset=unicode_escape") == ["\ud800"]
        with pytest.raises(BadRequest, match="invalid application/json body"):
            decode(b"\\uda00", "application/json; charset=unicode_escape")


def test_an_accept_charset_whose_codec_refuses_the_prediction_is_406() -> None:
    # idna raises UnicodeError itself, not UnicodeEncodeError (found by the property).
    with pytest.raises(NotAcceptable, match="cannot be written in charset 'idna'"):
        encode("\x80", "application/json; charset=idna")
