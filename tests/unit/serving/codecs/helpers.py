"""Shared helpers for codec tests."""

from __future__ import annotations

from typing import Any

from sagedock.serving.codecs import default_registry
from sagedock.serving.negotiation import parse_content_type


def decode(body: bytes, content_type: str) -> Any:
    """Decode through the default registry, as the server does."""
    return default_registry().decode(body, parse_content_type(content_type, "application/json"))


def encode(value: Any, accept: str | None, default: str = "application/json") -> tuple[bytes, str]:
    """Encode through the default registry, as the server does."""
    return default_registry().encode(value, accept, default)
