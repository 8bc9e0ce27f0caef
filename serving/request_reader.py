"""A connection's bytes in, complete HTTP/1.x requests out: llhttp (through ``httptools``)
does the parsing.

llhttp is node.js's parser, kept by people who fix request smuggling and framing bugs for a
living: it refuses what a hand-written parser tends to let through (a ``Content-Length`` of
non-ASCII digits, ``0x``-prefixed chunk sizes, both ``Content-Length`` and
``Transfer-Encoding``, bytes that are not allowed in a token or a header value). What it does
not do is bound anything, so this module adds our limits: a head over :data:`MAX_HEAD`
(431), a body over the server's limit (413, decided from ``Content-Length`` before a byte of
the body is read), transfer codings other than ``chunked`` (501), versions other than 1.0/1.1
(400).

:class:`RequestReader` is fed whatever the socket gives, in any pieces, and never blocks: the
server's loop keeps serving other connections while one request arrives slowly, and bounds the
time a started request may take to arrive as a whole (:attr:`RequestReader.started`).
"""

from __future__ import annotations

import time
from collections import deque

import httptools

from .errors import BadRequest, InferenceError, PayloadTooLarge

#: Largest request head (request line and headers) in bytes.
MAX_HEAD = 64 * 1024


class HttpError(Exception):
    """A request this server answers itself; the connection is closed afterwards."""

    def __init__(self, error: InferenceError) -> None:
        super().__init__(error.message)
        self.error = error


class Request:
    """One complete request: what the WSGI environ is built from.

    ``headers`` are keyed as in a WSGI environ (``HTTP_ACCEPT``, ``CONTENT_TYPE``), a
    repeated header's values joined with ``", "``; ``Content-Length`` and
    ``Transfer-Encoding`` are left out (``body`` is decoded)."""

    __slots__ = ("body", "headers", "keep_alive", "method", "target", "version")

    def __init__(
        self,
        method: str,
        target: bytes,
        version: str,
        headers: dict[str, str],
        body: bytes,
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


class RequestReader:
    """Parses one connection's byte stream (llhttp's callbacks land on this object).

    :param max_body: largest body in bytes (None: no limit).
    """

    __slots__ = (
        "_begins",
        "_body",
        "_body_size",
        "_chunked",
        "_completions",
        "_fed_in_head",
        "_head_size",
        "_headers",
        "_in_head",
        "_length",
        "_parser",
        "_url",
        "_version",
        "error",
        "max_body",
        "needs_continue",
        "ready",
        "started",
        "upgraded",
    )

    def __init__(self, max_body: int | None = None) -> None:
        self.max_body = max_body
        self._parser = httptools.HttpRequestParser(self)
        #: Complete requests, oldest first, not answered yet.
        self.ready: deque[Request] = deque()
        #: Why the stream cannot be parsed further (answered after the requests before it).
        self.error: InferenceError | None = None
        #: ``time.monotonic()`` when the request now arriving began; None between requests.
        self.started: float | None = None
        #: The arriving request asked for ``100 Continue`` and its body is not complete yet.
        self.needs_continue = False
        #: The client switched protocols (``Upgrade``): nothing more to read as HTTP.
        self.upgraded = False
        self._url = b""
        self._headers: dict[str, str] = {}
        self._chunked = False
        self._body: list[bytes] = []
        self._body_size = 0
        self._head_size = 0
        self._length: int | None = None
        self._in_head = False
        self._version = ""
        self._fed_in_head = 0
        self._begins = 0
        self._completions = 0

    @property
    def head_complete(self) -> bool:
        """The head of the request now arriving is parsed (its body is not complete)."""
        return self.started is not None and not self._in_head

    def feed(self, data: bytes) -> None:
        """Parse *data*; complete requests go to :attr:`ready`, a stream that cannot be
        parsed further sets :attr:`error` (both may happen in one call)."""
        if self.error is not None or self.upgraded:
            return
        self._begins = self._completions = 0
        try:
            self._parser.feed_data(data)
        except HttpError as exc:
            self._fail(exc.error)
            return
        except httptools.HttpParserUpgrade:
            self.upgraded = True
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, HttpError):
                self._fail(cause.error)
                return
            raise
        except httptools.HttpParserError as exc:
            self._fail(BadRequest(f"malformed HTTP request: {_reason(exc)}"))
            return
        if self._in_head:
            # llhttp's callbacks see a head's parts only as each ends: count what was fed
            # while it is open, so that a head that never ends cannot grow without bound.
            if not self._begins:
                self._fed_in_head += len(data)  # all of it is the open head's
            elif not self._completions:
                self._fed_in_head = len(data)  # it began this call, at its start
            # (else it began after another request in this call: counted from the next one)
            if self._fed_in_head > MAX_HEAD:
                self._fail(_head_too_large())

    def _fail(self, error: InferenceError) -> None:
        self.error = error
        self.needs_continue = False

    # -- llhttp's callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._begins += 1
        self.started = time.monotonic()
        self._url = b""
        self._headers = {}
        self._body = []
        self._body_size = self._head_size = self._fed_in_head = 0
        self._length = None
        self._chunked = False
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > MAX_HEAD:
            raise HttpError(_head_too_large())

    def on_header(self, name: bytes, value: bytes) -> None:
        # Called per header of every request: kept short (bench/serving measures it).
        self._head_size += len(name) + len(value) + 4
        if self._head_size > MAX_HEAD:
            raise HttpError(_head_too_large())
        key = _CGI_NAMES.get(name) or _cgi_name(name)
        text = value.rstrip(b" \t").decode("latin-1")  # llhttp strips the leading spaces
        if key == "CONTENT_LENGTH":
            # llhttp has checked the digits (and refused a second, different value).
            self._length = int(text)
            return
        if key == "HTTP_TRANSFER_ENCODING":
            if text.lower() != "chunked":
                raise HttpError(InferenceError(501, f"Transfer-Encoding {text!r} is not supported"))
            self._chunked = True
            return
        headers = self._headers
        if key in headers:
            headers[key] += ", " + text
        else:
            headers[key] = text

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._version = version = self._parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise HttpError(BadRequest(f"unsupported HTTP version {version!r}"))
        if self.max_body is not None and self._length is not None and self._length > self.max_body:
            raise HttpError(too_large(self.max_body, self._length))
        if self._parser.should_upgrade() and (self._length or self._chunked):
            # llhttp hands the bytes after an upgrade's head over as the new protocol's: the
            # body would be lost, not answered.
            raise HttpError(BadRequest("a protocol upgrade with a request body is not supported"))
        expect = self._headers.get("HTTP_EXPECT")
        self.needs_continue = expect is not None and expect.lower() == "100-continue"

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self.max_body is not None and self._body_size > self.max_body:
            raise HttpError(too_large(self.max_body, None))
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        body = self._body
        method = parser.get_method()
        self.ready.append(
            Request(
                _METHODS.get(method) or method.decode("ascii"),
                self._url,
                self._version,
                self._headers,
                body[0] if len(body) == 1 else b"".join(body),
                parser.should_keep_alive(),
            )
        )
        self._body = []
        self._completions += 1
        self.started = None
        self.needs_continue = False


_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}

#: Header name as sent -> its WSGI environ key; filled as names are seen (a client sending
#: ever new names stops adding at the cap).
_CGI_NAMES: dict[bytes, str] = {}
_CGI_NAMES_CAP = 1024


def _cgi_name(name: bytes) -> str:
    key = name.decode("latin-1").upper().replace("-", "_")
    if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        key = "HTTP_" + key
    if len(_CGI_NAMES) < _CGI_NAMES_CAP:
        _CGI_NAMES[name] = key
    return key


def too_large(limit: int, length: int | None) -> PayloadTooLarge:
    # Worded unlike nginx's 413 (nginx.conf.template), so that tests can tell which layer
    # refused a body.
    body = f"request body of {length} bytes is" if length is not None else "chunked body is"
    return PayloadTooLarge(
        f"{body} over the limit of {limit} bytes "
        f"({limit / (1024 * 1024):g} MiB, SAGEMAKER_MAX_PAYLOAD_IN_MB)"
    )


def _head_too_large() -> InferenceError:
    return InferenceError(431, f"request head larger than {MAX_HEAD // 1024} KiB")


def _reason(exc: Exception) -> str:
    """llhttp's reason (``Invalid character in chunk size``), without the error code."""
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text.removeprefix("HPE_").split(": ", 1)[-1][:200]
