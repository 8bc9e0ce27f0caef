"""A small HTTP client for the SageMaker hosting contract (``/ping``, ``/invocations``,
``/execution-parameters``), on the standard library so that commands stay light.

Unlike the SDK's local runtime client, a response keeps its status and content type, so a
failing model is seen as a failure.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sagedock.toolkit.errors import PlatformError, UserError


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error_message(self) -> str:
        """The server's message: ``message``/``error`` of a JSON body, else the text."""
        text = self.body.decode("utf-8", errors="replace").strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text or f"HTTP {self.status}"
        if isinstance(value, dict):
            for key in ("message", "error", "Message", "errorMessage"):
                if isinstance(value.get(key), str):
                    return str(value[key])
        return text


class ConnectionFailed(PlatformError):
    """The server could not be reached, or did not answer in time."""


def _target(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", ""):
        raise UserError(f"only http:// URLs are supported, got {url!r}")
    if not parts.hostname:
        raise UserError(f"no host in URL {url!r}")
    return parts.hostname, parts.port or 80, parts.path.rstrip("/")


def request(
    method: str,
    url: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Response:
    """One HTTP request to ``url + path``; any status is returned, transport failures raise
    :class:`ConnectionFailed`."""
    host, port, prefix = _target(url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, prefix + path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        data = resp.read()
        return Response(
            resp.status,
            data,
            resp.getheader("Content-Type"),
            {k.lower(): v for k, v in resp.getheaders()},
        )
    except (OSError, http.client.HTTPException) as exc:
        kind = "timed out" if isinstance(exc, socket.timeout | TimeoutError) else str(exc)
        raise ConnectionFailed(f"{method} {url.rstrip('/')}{path} failed: {kind}") from exc
    finally:
        conn.close()


def invoke(
    url: str,
    body: bytes,
    *,
    content_type: str | None = None,
    accept: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Response:
    """``POST /invocations`` with the headers InvokeEndpoint forwards."""
    sent = dict(headers or {})
    if content_type:
        sent["Content-Type"] = content_type
    if accept:
        sent["Accept"] = accept
    return request("POST", url, "/invocations", body=body, headers=sent, timeout=timeout)


def ping(url: str, *, timeout: float = 2.0) -> bool:
    """Whether ``GET /ping`` answers 200 (SageMaker gives the ping 2 s)."""
    try:
        return request("GET", url, "/ping", timeout=timeout).status == 200
    except ConnectionFailed:
        return False


def wait_until_healthy(
    url: str,
    *,
    timeout: float,
    alive: Callable[[], bool] | None = None,
    interval: float = 0.2,
) -> None:
    """Poll ``/ping`` until it answers 200.

    :param alive: checked between polls; when it returns False (the server process died) the
        wait stops at once.
    :raises PlatformError: when *timeout* seconds pass, or *alive* turns False.
    """
    deadline = time.monotonic() + timeout
    while True:
        if ping(url):
            return
        if alive is not None and not alive():
            raise PlatformError(f"the model server at {url} exited before /ping answered 200")
        if time.monotonic() >= deadline:
            raise PlatformError(
                f"the model server at {url} did not answer /ping with 200 within {timeout:g} s"
            )
        time.sleep(interval)


def execution_parameters(url: str, *, timeout: float = 10.0) -> dict[str, object] | None:
    """The container's ``GET /execution-parameters`` JSON, or None when it has none."""
    try:
        resp = request("GET", url, "/execution-parameters", timeout=timeout)
    except ConnectionFailed:
        return None
    if resp.status != 200:
        return None
    try:
        value = json.loads(resp.body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None
