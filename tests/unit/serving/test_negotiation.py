"""Content-Type parsing and Accept negotiation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagedock.serving.errors import BadRequest, NotAcceptable
from sagedock.serving.negotiation import (
    MediaType,
    accept_params,
    choose_accept,
    parse_content_type,
)

OFFERED = ["application/json", "text/csv", "application/jsonlines"]


@pytest.mark.parametrize(
    ("header", "mime", "charset", "params"),
    [
        ("text/csv", "text/csv", None, {}),
        ("Text/CSV; Charset=UTF-8", "text/csv", "utf-8", {"charset": "UTF-8"}),
        ("text/csv; label_size=1", "text/csv", None, {"label_size": "1"}),
        ("text/csv;header=present", "text/csv", None, {"header": "present"}),
        ("application/json; verbose=True", "application/json", None, {"verbose": "True"}),
        ('text/plain; charset="latin-1"', "text/plain", "latin-1", {"charset": "latin-1"}),
        ("csv", "text/csv", None, {}),
        ("libsvm", "text/libsvm", None, {}),
        ("application/x-recordio-protobuf", "application/x-recordio-protobuf", None, {}),
        (None, "application/json", None, {}),
        ("", "application/json", None, {}),
        ("   ", "application/json", None, {}),
    ],
)
def test_content_type_is_parsed_case_insensitively_with_parameters(
    header: str | None, mime: str, charset: str | None, params: dict[str, str]
) -> None:
    media = parse_content_type(header, "application/json")
    assert media.mime == mime
    assert media.charset == charset
    assert dict(media.params) == params


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("foo", "invalid Content-Type header: 'foo' is not a media type (expected type/subtype)"),
        (
            "text/",
            "invalid Content-Type header: 'text/' is not a media type (expected type/subtype)",
        ),
        (
            "a b/c",
            "invalid Content-Type header: 'a b/c' is not a media type (expected type/subtype)",
        ),
        ("text/*", "invalid Content-Type header: 'text/*' is a range, not a media type"),
        ("*/*", "invalid Content-Type header: '*/*' is a range, not a media type"),
    ],
)
def test_malformed_content_type_is_a_bad_request(header: str, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_content_type(header, "application/json")
    assert caught.value.message == message
    assert caught.value.status == 400


def test_media_type_helpers() -> None:
    media = parse_content_type("image/PNG; Q=x", "application/json")
    assert media == MediaType("image", "png", {"q": "x"})
    assert media.matches("image/*") and media.matches("*/*") and media.matches("IMAGE/png")
    assert not media.matches("text/*")
    assert media.param("Q") == "x"
    assert str(parse_content_type('text/csv; note="a b"', "x/y")) == 'text/csv; note="a b"'


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "text/csv"),
        ("", "text/csv"),
        ("*/*", "text/csv"),
        ("*/*;q=0.8", "text/csv"),
        ("application/json", "application/json"),
        ("APPLICATION/JSON", "application/json"),
        ("application/json;verbose=True", "application/json"),
        ("application/jsonlines, application/json", "application/jsonlines"),
        ("application/json;q=0.5, text/csv;q=0.9", "text/csv"),
        ("application/json;q=0.9, text/csv;q=0.5", "application/json"),
        ("text/*", "text/csv"),
        ("application/*", "application/json"),
        ("image/png, application/*;q=0.1", "application/json"),
        ("*/*;q=0.1, application/jsonlines", "application/jsonlines"),
        ("*/*, text/csv;q=0", "application/json"),
        ("application/json, text/html", "application/json"),
        ("application/jsonlines;q=1, application/json;q=1", "application/jsonlines"),
    ],
)
def test_accept_picks_the_best_offered_type(accept: str | None, chosen: str) -> None:
    assert choose_accept(accept, OFFERED, "text/csv") == chosen


def test_missing_accept_gives_the_default_even_if_not_offered() -> None:
    assert choose_accept(None, OFFERED, "application/x-npy") == "application/x-npy"
    assert choose_accept("*/*", OFFERED, "application/x-npy") == "application/x-npy"


def test_default_wins_ties_under_a_range() -> None:
    assert choose_accept("application/*", OFFERED, "application/jsonlines") == (
        "application/jsonlines"
    )


@pytest.mark.parametrize("accept", ["image/png", "text/csv;q=0", "*/*;q=0", "garbage", "text/html"])
def test_nothing_acceptable_is_406_listing_supported(accept: str) -> None:
    with pytest.raises(NotAcceptable) as caught:
        choose_accept(accept, OFFERED, "text/csv")
    assert caught.value.status == 406
    assert caught.value.message == (
        f"cannot produce any type the Accept header allows ({accept!r}); "
        "supported: application/json, text/csv, application/jsonlines"
    )


def test_accept_params_are_kept_for_hooks() -> None:
    header = "text/csv;q=0.5, application/json; verbose=True; q=0.9"
    assert dict(accept_params(header, "application/json")) == {"verbose": "True"}
    assert dict(accept_params(header, "text/csv")) == {}
    assert dict(accept_params(None, "text/csv")) == {}


@given(
    st.lists(
        st.tuples(st.sampled_from([*OFFERED, "image/png", "text/*", "*/*"]), st.integers(0, 10)),
        min_size=1,
        max_size=5,
    )
)
def test_choice_never_has_a_lower_q_than_another_acceptable_offer(
    items: list[tuple[str, int]],
) -> None:
    header = ", ".join(f"{mime};q={q / 10}" for mime, q in items)

    def quality(mime: str) -> float:
        # RFC 9110: the most specific matching range decides (exact > type/* > */*).
        best = None
        for pattern in (mime, mime.split("/")[0] + "/*", "*/*"):
            qs = [q / 10 for m, q in items if m == pattern]
            if qs:
                best = max(qs) if best is None else best
                return best
        return 0.0

    try:
        chosen = choose_accept(header, OFFERED, "text/csv")
    except NotAcceptable:
        assert all(quality(m) == 0 for m in OFFERED)
        return
    if all(m == "*/*" for m, q in items) and all(q > 0 for _, q in items):
        assert chosen == "text/csv"
        return
    assert quality(chosen) > 0
    assert quality(chosen) == max(quality(m) for m in OFFERED)
