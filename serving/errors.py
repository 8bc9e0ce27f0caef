"""Errors that become HTTP responses.

Every error a request can end in is an :class:`InferenceError` carrying its HTTP status.
The app turns it into a JSON body ``{"code", "type", "message", "request_id"}``; tracebacks go to
the log, never to the client. User code may raise :class:`InferenceError` itself to answer any
4xx or 5xx status::

    from sagedock.serving import InferenceError
    raise InferenceError(422, "field 'age' must be a number, got 'abc'")
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, ClassVar

from sagedock.toolkit.errors import SagedockError


class InferenceError(SagedockError):
    """An error answered with HTTP *status* and *message*.

    :param status: a 4xx or 5xx HTTP status code.
    :param message: what went wrong, for the client; name the field, line or content type.
    """

    #: Status used when a subclass is raised with only a message.
    default_status: ClassVar[int] = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, status: int | str | None = None, message: str | None = None) -> None:
        # Subclasses are raised as ``Sub("message")``; the base as ``InferenceError(400, "msg")``.
        if isinstance(status, str) and message is None:
            status, message = None, status
        code = int(status if status is not None else self.default_status)
        if not 400 <= code <= 599:
            raise ValueError(f"InferenceError status must be 4xx or 5xx, got {code}")
        super().__init__(message or HTTPStatus(code).phrase)
        self.status = code

    @property
    def failure_prefix(self) -> str:  # type: ignore[override]
        return "ClientError" if self.status < 500 else "ModelError"

    @property
    def error_type(self) -> str:
        """A stable name for the kind of error (``UnsupportedMediaType`` ...)."""
        if type(self) is InferenceError:
            try:
                return HTTPStatus(self.status).phrase.replace(" ", "")
            except ValueError:
                return "InferenceError"
        return type(self).__name__

    def to_json(self, request_id: str | None = None) -> dict[str, Any]:
        """The response body."""
        body: dict[str, Any] = {
            "code": self.status,
            "type": self.error_type,
            "message": self.message,
        }
        if request_id:
            body["request_id"] = request_id
        return body


def error_body(error: InferenceError, request_id: str | None = None) -> bytes:
    """The JSON body answered for *error* (UTF-8)."""
    return json.dumps(error.to_json(request_id)).encode("utf-8")


class BadRequest(InferenceError):
    """The body could not be decoded; the message names the line, field or position."""

    default_status = HTTPStatus.BAD_REQUEST


class ModelNotFound(InferenceError):
    default_status = HTTPStatus.NOT_FOUND


class NotAcceptable(InferenceError):
    """No encoder for any type the ``Accept`` header allows."""

    default_status = HTTPStatus.NOT_ACCEPTABLE


class ModelAlreadyLoaded(InferenceError):
    default_status = HTTPStatus.CONFLICT


class PayloadTooLarge(InferenceError):
    default_status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaType(InferenceError):
    """No decoder for the request's ``Content-Type``."""

    default_status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class ModelError(InferenceError):
    """The model's code failed while answering."""

    default_status = HTTPStatus.INTERNAL_SERVER_ERROR


class ServiceUnavailable(InferenceError):
    """The model is not loaded (yet)."""

    default_status = HTTPStatus.SERVICE_UNAVAILABLE


class RequestTimeout(InferenceError):
    """The model did not answer within ``SAGEMAKER_MODEL_SERVER_TIMEOUT``."""

    default_status = HTTPStatus.GATEWAY_TIMEOUT


class InsufficientStorage(InferenceError):
    """Multi-model: no memory left to load another model."""

    default_status = HTTPStatus.INSUFFICIENT_STORAGE
