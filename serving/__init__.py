"""sagedock.serving: the model server behind ``serve`` (nginx -> gunicorn -> flask).

What user code and framework packages import comes from here::

    from sagedock.serving import NO_CONTENT, InferenceContext, InferenceError

- errors a hook raises to answer a status (:class:`InferenceError` and its subclasses);
- :data:`NO_CONTENT`, returned by a hook to answer ``204 No Content``;
- what hooks receive (:class:`InferenceContext`, :class:`ContentType`, :class:`Accept`);
- :class:`FrameworkDefaults` and :class:`DefaultsRegistry`, for packages adding defaults.

They are imported when first used, so ``import sagedock.serving`` stays light: the errors cost
nothing, the hook types bring werkzeug and numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import (
        BadRequest,
        InferenceError,
        InsufficientStorage,
        ModelAlreadyLoaded,
        ModelError,
        ModelNotFound,
        NotAcceptable,
        PayloadTooLarge,
        RequestTimeout,
        ServiceUnavailable,
        UnsupportedMediaType,
    )
    from .handler import (
        NO_CONTENT,
        Accept,
        ContentType,
        DefaultsRegistry,
        FrameworkDefaults,
        InferenceContext,
    )

#: Public name -> the module (of this package) defining it.
_EXPORTS = {
    **dict.fromkeys(
        (
            "BadRequest",
            "InferenceError",
            "InsufficientStorage",
            "ModelAlreadyLoaded",
            "ModelError",
            "ModelNotFound",
            "NotAcceptable",
            "PayloadTooLarge",
            "RequestTimeout",
            "ServiceUnavailable",
            "UnsupportedMediaType",
        ),
        "errors",
    ),
    **dict.fromkeys(
        (
            "NO_CONTENT",
            "Accept",
            "ContentType",
            "DefaultsRegistry",
            "FrameworkDefaults",
            "InferenceContext",
        ),
        "handler",
    ),
}

__all__ = [
    "NO_CONTENT",
    "Accept",
    "BadRequest",
    "ContentType",
    "DefaultsRegistry",
    "FrameworkDefaults",
    "InferenceContext",
    "InferenceError",
    "InsufficientStorage",
    "ModelAlreadyLoaded",
    "ModelError",
    "ModelNotFound",
    "NotAcceptable",
    "PayloadTooLarge",
    "RequestTimeout",
    "ServiceUnavailable",
    "UnsupportedMediaType",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
