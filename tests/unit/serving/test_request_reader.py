"""The request reader: llhttp's parse, with our limits, over bytes arriving in any pieces."""

from __future__ import annotations

from sagedock.serving.request_reader import MAX_HEAD, RequestReader

TWO_REQUESTS = (
    b"POST /invocations?x=1 HTTP/1.1\r\nContent-Type: text/csv\r\nContent-Length: 3\r\n\r\n1,2"
    b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1;ext\r\nc\r\n0\r\n\r\n"
)


def summary(reader: RequestReader) -> list[tuple[str, bytes, bytes, bool]]:
    return [(r.method, r.target, r.body, r.keep_alive) for r in reader.ready]


def test_requests_split_at_every_byte_read_the_same_as_whole() -> None:
    whole = RequestReader()
    whole.feed(TWO_REQUESTS)
    expected = [
        ("POST", b"/invocations?x=1", b"1,2", True),
        ("POST", b"/b", b"abc", True),
    ]
    assert summary(whole) == expected
    for cut in range(1, len(TWO_REQUESTS)):
        reader = RequestReader()
        reader.feed(TWO_REQUESTS[:cut])
        reader.feed(TWO_REQUESTS[cut:])
        assert summary(reader) == expected, cut
        assert reader.error is None and reader.started is None


def test_a_started_request_is_timed_from_its_first_byte_until_complete() -> None:
    reader = RequestReader()
    assert reader.started is None
    reader.feed(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n")
    started = reader.started
    assert started is not None and reader.head_complete
    reader.feed(b"x")
    assert reader.started == started  # a byte of the body does not restart the clock
    reader.feed(b"y")
    assert reader.started is None and len(reader.ready) == 1


def test_a_body_over_the_limit_is_refused_from_its_content_length() -> None:
    reader = RequestReader(max_body=10)
    reader.feed(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n")
    assert reader.error is not None and reader.error.status == 413
    assert "request body of 11 bytes" in reader.error.message


def test_an_unterminated_head_is_refused_once_it_passes_the_limit() -> None:
    reader = RequestReader()
    reader.feed(b"GET / HTTP/1.1\r\nX: ")
    fed = 0
    while reader.error is None and fed <= 2 * MAX_HEAD:
        reader.feed(b"a" * 4096)
        fed += 4096
    assert reader.error is not None and reader.error.status == 431
    assert fed <= MAX_HEAD + 4096


def test_expect_100_continue_is_wanted_until_the_body_is_complete() -> None:
    reader = RequestReader()
    reader.feed(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
    assert reader.needs_continue
    reader.feed(b"x")
    assert not reader.needs_continue and len(reader.ready) == 1
