"""For any bytes, every codec's decoder returns a value or raises BadRequest (a 400), within a
bounded time and memory: never another exception, which the server would answer 500."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sagedock.serving.codecs import default_registry
from sagedock.serving.errors import BadRequest, ModelError, NotAcceptable
from sagedock.serving.negotiation import parse_content_type
from sagedock.toolkit.formats import protobuf
from tests.fuzz import any_bytes, outcome, property_settings

from .test_json import BACKENDS, backend

REGISTRY = default_registry()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=20,
)
number_rows = st.lists(
    st.lists(st.floats(allow_nan=False, width=32), min_size=1, max_size=6), min_size=1, max_size=6
)
arrays = hnp.arrays(
    st.sampled_from(["<f4", ">f8", "<i2", "|b1", "<U3", "|S2", "<c8", "|u1"]),
    hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@st.composite
def _npz(draw: st.DrawFn) -> bytes:
    buffer = io.BytesIO()
    if draw(st.booleans()):
        matrix = scipy.sparse.random(draw(st.integers(1, 5)), draw(st.integers(1, 5)), 0.5)
        scipy.sparse.save_npz(buffer, matrix.asformat(draw(st.sampled_from(["csr", "coo"]))))
    else:
        named = draw(st.dictionaries(st.sampled_from("abc"), arrays, min_size=1, max_size=3))
        save = np.savez_compressed if draw(st.booleans()) else np.savez
        save(buffer, **named)  # type: ignore[operator]
    return buffer.getvalue()


@st.composite
def _recordio(draw: st.DrawFn) -> bytes:
    rows = np.array(draw(number_rows)[:1] * draw(st.integers(1, 6)), dtype=np.float32)
    features: Any = scipy.sparse.csr_matrix(rows) if draw(st.booleans()) else rows
    labels = rows[:, 0] if draw(st.booleans()) else None
    return protobuf.encode_recordio_protobuf(features, labels)


def _csv(rows: list[list[float]]) -> bytes:
    return "".join(",".join(map(repr, row)) + "\n" for row in rows).encode()


VALID: dict[str, st.SearchStrategy[bytes]] = {
    "application/json": json_values.map(lambda v: json.dumps(v).encode()),
    "application/jsonlines": st.lists(json_values, min_size=1, max_size=4).map(
        lambda vs: "\n".join(json.dumps(v) for v in vs).encode()
    ),
    "text/csv": number_rows.map(_csv),
    "application/x-npy": arrays.map(_npy),
    "application/x-npz": _npz(),
    "application/x-recordio-protobuf": _recordio(),
    "text/plain": st.text(max_size=64).map(str.encode),
}
# Types whose body reaches the model as it came: nothing to decode, checked once.
PASS_THROUGH = ["application/octet-stream", "image/png"]
# Charsets a client may name: text encodings, codecs that are not (base64, rot13), ones whose
# decoders raise unusual errors (idna, punycode, utf-7, unicode_escape), and unknown names.
CHARSETS = [None, "utf-8", "latin-1", "utf-16", "idna", "punycode", "utf-7", "unicode_escape"]
CHARSETS += ["base64", "rot13", "undefined", "klingon"]


def test_every_decodable_type_is_covered() -> None:
    covered = {parse_content_type(t, "x").mime for t in [*VALID, *PASS_THROUGH]}
    assert set(REGISTRY.decodable_types) <= covered | {"image/*"}


@pytest.mark.parametrize("mime", PASS_THROUGH)
def test_pass_through_types_take_any_bytes(mime: str) -> None:
    body = bytes(range(256))
    assert REGISTRY.decode(body, parse_content_type(mime, "x")) == body


def _decode(body: bytes, content_type: str) -> Any:
    media = parse_content_type(content_type, "x")
    return outcome(lambda: REGISTRY.decode(body, media), (BadRequest,))


@pytest.mark.parametrize("mime", sorted(VALID))
def test_any_bytes_decode_to_a_value_or_a_400(mime: str) -> None:
    @property_settings()
    @given(body=any_bytes(VALID[mime]), charset=st.sampled_from(CHARSETS))
    def check(body: bytes, charset: str | None) -> None:
        content_type = mime if charset is None else f"{mime}; charset={charset}"
        if mime == "text/csv" and charset is None:
            content_type += "; header=present"
        _decode(body, content_type)

    check()


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("mime", ["application/json", "application/jsonlines"])
def test_any_json_text_decodes_to_a_value_or_a_400_with_either_backend(
    name: str, mime: str
) -> None:
    # Deep nesting and long integers are what the JSON parsers choke on: generate them.
    deep = st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n)
    digits = st.integers(1, 6000).map(lambda n: b"[" + b"9" * n + b"]")

    @property_settings()
    @given(body=st.one_of(any_bytes(VALID[mime]), deep, digits))
    def check(body: bytes) -> None:
        with backend(name):
            _decode(body, mime)

    check()


@property_settings()
@given(
    value=st.one_of(json_values, number_rows, st.text(max_size=8)),
    charset=st.sampled_from(CHARSETS),
)
def test_any_accept_charset_encodes_or_is_a_406(value: Any, charset: str | None) -> None:
    # A prediction no codec can write is the model's fault (500); a charset, the client's.
    for mime in ("application/json", "application/jsonlines", "text/csv", "text/plain"):
        accept = mime if charset is None else f"{mime}; charset={charset}"
        result = outcome(
            lambda accept=accept, mime=mime: REGISTRY.encode(value, accept, mime),
            (NotAcceptable, ModelError),
        )
        if isinstance(result, ModelError):
            assert charset not in ("base64", "rot13", "undefined", "klingon"), result.message
