"""The built-in XGBoost's ``input_fn``, for any body and content type: features, 204 No Content,
or a 4xx (400 undecodable, 415 unsupported type) - never another exception (a 500)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagedock.containers.xgboost import inference
from sagedock.serving.errors import BadRequest, UnsupportedMediaType
from sagedock.serving.handler import NO_CONTENT, ContentType
from sagedock.serving.negotiation import parse_content_type
from sagedock.toolkit.formats import protobuf
from tests.fuzz import any_bytes, outcome, property_settings

values = st.floats(allow_nan=False, allow_infinity=False, width=32)
tables = st.integers(1, 5).flatmap(
    lambda width: st.lists(st.lists(values, min_size=width, max_size=width), min_size=1, max_size=5)
)
csv_bodies = st.tuples(tables, st.sampled_from([",", "\t", ";", " "])).map(
    lambda t: "".join(t[1].join(map(repr, row)) + "\n" for row in t[0]).encode()
)
libsvm_bodies = tables.map(
    lambda rows: "".join(
        " ".join(f"{i}:{v!r}" for i, v in enumerate(row, start=1)) + "\n" for row in rows
    ).encode()
)
recordio_bodies = tables.map(lambda rows: protobuf.encode_recordio_protobuf(np.array(rows)))
CONTENT_TYPES = {
    "text/csv": csv_bodies,
    "text/csv; label_size=1; charset=utf-8": csv_bodies,
    "text/libsvm": libsvm_bodies,
    "text/x-libsvm": libsvm_bodies,
    "application/x-recordio-protobuf": recordio_bodies,
}


def _content_type(header: str) -> ContentType:
    return ContentType(parse_content_type(header, inference.default_content_type), header)


@pytest.mark.parametrize("header", sorted(CONTENT_TYPES))
def test_any_body_is_features_no_content_or_a_4xx(header: str) -> None:
    @property_settings()
    @given(body=any_bytes(CONTENT_TYPES[header]))
    def check(body: bytes) -> None:
        result = outcome(
            lambda: inference.input_fn(body, _content_type(header)),
            (BadRequest, UnsupportedMediaType),
        )
        assert result is NO_CONTENT or isinstance(
            result, inference.Features | BadRequest | UnsupportedMediaType
        )

    check()


@pytest.mark.parametrize(
    "body",
    ['1§"2"§3', '"1"\xa0"2"\xa0"3"', "1,2,3\r4,5,6", "1,2\r", "\r\r1,2"],
)
def test_csv_the_sniffer_or_a_bare_cr_once_crashed_is_features_or_400(body: str) -> None:
    # issue 11: a sniffed non-ASCII delimiter was a ValueError, a bare CR a csv.Error (500s).
    result = outcome(
        lambda: inference.input_fn(body.encode(), _content_type("text/csv")), (BadRequest,)
    )
    assert isinstance(result, inference.Features | BadRequest)


def test_a_bare_cr_ends_a_csv_request_row() -> None:
    features = inference.input_fn(b"1,2,3\r4,5,6", _content_type("text/csv"))
    assert isinstance(features, inference.Features)
    np.testing.assert_array_equal(features.matrix, [[1, 2, 3], [4, 5, 6]])
