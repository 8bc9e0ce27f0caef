"""The WSGI app of a worker: SageMaker's routes over a loaded :class:`~.handler.Predictor`.

- ``GET /ping``: 200 (empty) when the model is loaded and ``ping_fn`` (if any) agrees, else 503;
- ``POST /invocations``: the hooks' answer, with its content type; an iterator is streamed;
  ``NO_CONTENT`` from a hook is ``204 No Content``;
- ``GET /execution-parameters``: ``MaxConcurrentTransforms``, ``BatchStrategy``,
  ``MaxPayloadInMB`` (``execution_parameters_fn`` may change them);
- multi-model endpoints (``SAGEMAKER_MULTI_MODEL=true``): ``GET/POST /models``,
  ``GET/DELETE /models/<name>``, ``POST /models/<name>/invoke``, and ``/invocations`` with
  ``X-Amzn-SageMaker-Target-Model``.

:class:`ServingApp` answers the two hot routes, ``POST /invocations`` and ``GET /ping``, itself
(a few microseconds per request); flask answers everything else (its per-request machinery
costs about as much as a small model's prediction). Every error is JSON ``{"code", "type",
"message", "request_id"}`` on both paths; tracebacks are logged with the request id, never
sent. The app is built after the model is loaded, so no route checks readiness per request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import HTTPException

from .errors import (
    BadRequest,
    InferenceError,
    ModelNotFound,
    PayloadTooLarge,
    error_body,
)
from .handler import Handler, HookFailed, InferenceContext, Predictor, Reply
from .multimodel import ModelManager, parse_load_request
from .settings import ServingSettings

log = logging.getLogger(__name__)

JSON = "application/json"
TARGET_MODEL = "HTTP_X_AMZN_SAGEMAKER_TARGET_MODEL"
REQUEST_ID = "HTTP_X_REQUEST_ID"

StartResponse = Callable[..., Any]


def execution_parameters_defaults(settings: ServingSettings) -> dict[str, Any]:
    """What ``/execution-parameters`` answers unless the user module changes it."""
    payload = settings.max_payload_mb
    return {
        "MaxConcurrentTransforms": settings.max_concurrent_transforms or settings.workers,
        "BatchStrategy": settings.batch_strategy or "MULTI_RECORD",
        "MaxPayloadInMB": int(payload) if float(payload).is_integer() else payload,
    }


def log_error(error: InferenceError, request_id: str | None) -> None:
    """Log an error answered to a client: tracebacks of failing hooks, one line otherwise."""
    if isinstance(error, HookFailed):
        log.error("request %s: %s", request_id, error.message, exc_info=error.__cause__)
    elif error.status >= 500:
        log.error("request %s: %d %s", request_id, error.status, error.message)
    else:
        log.info("request %s: %d %s", request_id, error.status, error.message)


def payload_too_large(limit: int | None) -> PayloadTooLarge:
    limit = limit or 0
    return PayloadTooLarge(
        f"request body is over the limit of {limit} bytes "
        f"({limit / (1024 * 1024):g} MiB, SAGEMAKER_MAX_PAYLOAD_IN_MB)"
    )


class ServingApp:
    """The WSGI app of one worker: single-model (*predictor*) or multi-model (*models*).

    :attr flask: the flask app behind every route but the two hot ones.
    """

    def __init__(
        self,
        settings: ServingSettings,
        handler: Handler,
        *,
        predictor: Predictor | None = None,
        models: ModelManager | None = None,
        worker_id: int = 0,
    ) -> None:
        if (predictor is None) == (models is None):
            raise ValueError("give exactly one of predictor and models")
        self.settings = settings
        self.handler = handler
        self.predictor = predictor
        self.models = models
        self.worker_id = worker_id
        self.max_body = settings.max_payload_bytes
        self._batch = settings.batch
        self._ping_model = predictor.model if predictor is not None else None
        self._no_ping_fn = handler.ping_fn is None
        #: What ``ping_fn`` and ``execution_parameters_fn`` see as the model's directory.
        self.model_dir = predictor.model_dir if predictor is not None else settings.models_dir
        self._ping_context = handler.context(self.model_dir)
        self.flask = _flask_app(self)

    # -- the hot path -------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        method = environ.get("REQUEST_METHOD")
        if path == "/invocations" and method == "POST":
            try:
                reply = self.invoke(self._target(environ), environ)
            except InferenceError as error:
                return self.error_response(error, environ, start_response)
            except Exception as exc:
                log.exception("request %s: unexpected error", environ.get(REQUEST_ID))
                internal = InferenceError(500, f"internal error: {type(exc).__name__}")
                return self.error_response(internal, environ, start_response)
            body = reply.body
            if reply.status == 204:
                start_response("204 No Content", [])
                return [b""]
            if isinstance(body, bytes):
                start_response(
                    "200 OK",
                    [("Content-Type", reply.content_type), ("Content-Length", str(len(body)))],
                )
                return [body]
            # nginx must pass chunks on as they come, not buffer the whole stream.
            start_response(
                "200 OK", [("Content-Type", reply.content_type), ("X-Accel-Buffering", "no")]
            )
            return body
        if path == "/ping" and method in ("GET", "HEAD"):
            return self.ping(environ, start_response)
        return self.flask(environ, start_response)

    def ping(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """``GET /ping``: 200, or the error ``ping_fn`` answered. Safe to call from a thread
        beside the one in a prediction (it only runs ``ping_fn``)."""
        if not self._no_ping_fn:
            try:
                self.handler.ping(self._ping_model, self._ping_context)
            except InferenceError as error:
                return self.error_response(error, environ, start_response)
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    def ping_app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI app of a worker's ping socket (behind nginx, which sends it ``/ping``
        only, with the client's method): :meth:`ping` for ``GET``/``HEAD``, else 405."""
        method = environ.get("REQUEST_METHOD")
        if method in ("GET", "HEAD"):
            return self.ping(environ, start_response)
        error = InferenceError(405, f"{method} is not allowed on /ping")
        return self.error_response(error, environ, start_response, [("Allow", "GET, HEAD")])

    def _target(self, environ: dict[str, Any]) -> Predictor:
        if self.predictor is not None:
            return self.predictor
        target = environ.get(TARGET_MODEL)
        if not target:
            raise BadRequest(
                "a multi-model endpoint needs the X-Amzn-SageMaker-Target-Model header"
            )
        assert self.models is not None
        return self.models.for_target(target)

    def invoke(self, target: Predictor, environ: dict[str, Any]) -> Reply:
        """Read the request body and run *target*'s hooks on it."""
        length = environ.get("CONTENT_LENGTH")
        stream = environ["wsgi.input"]
        if length:
            size = int(length)
            if self.max_body is not None and size > self.max_body:
                raise payload_too_large(self.max_body)
            body = stream.read(size)
        else:
            body = stream.read() if self.max_body is None else stream.read(self.max_body + 1)
            if self.max_body is not None and len(body) > self.max_body:
                raise payload_too_large(self.max_body)

        def make_context(media: Any) -> InferenceContext:
            return InferenceContext(
                EnvironHeaders(environ),
                target.model_name,
                target.model_dir,
                self.worker_id,
                environ.get(REQUEST_ID),
                media,
                self._batch,
            )

        return target.invoke(
            body, environ.get("CONTENT_TYPE"), environ.get("HTTP_ACCEPT"), make_context
        )

    def error_response(
        self,
        error: InferenceError,
        environ: dict[str, Any],
        start_response: StartResponse,
        headers: Sequence[tuple[str, str]] = (),
    ) -> list[bytes]:
        """Answer *error* as every route does (JSON body, logged with the request id)."""
        request_id = environ.get(REQUEST_ID)
        log_error(error, request_id)
        body = error_body(error, request_id)
        status = f"{error.status} {_phrase(error.status)}"
        start_response(
            status, [("Content-Type", JSON), ("Content-Length", str(len(body))), *headers]
        )
        return [body]


def _phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def create_app(
    settings: ServingSettings,
    handler: Handler,
    *,
    predictor: Predictor | None = None,
    models: ModelManager | None = None,
    worker_id: int = 0,
) -> ServingApp:
    """The WSGI app for one worker (see :class:`ServingApp`)."""
    return ServingApp(settings, handler, predictor=predictor, models=models, worker_id=worker_id)


def _json_error(error: InferenceError) -> Response:
    return Response(
        error_body(error, request.environ.get(REQUEST_ID)), error.status, content_type=JSON
    )


def _flask_app(serving: ServingApp) -> Flask:
    here = str(Path(__file__).parent)
    # Explicit paths: flask cannot locate the instance folder of a namespace-mapped package.
    app = Flask("sagedock.serving", root_path=here, instance_path=here)
    app.config["MAX_CONTENT_LENGTH"] = serving.max_body
    handler = serving.handler
    exec_defaults = execution_parameters_defaults(serving.settings)
    model = serving.predictor.model if serving.predictor is not None else None

    def reply_response(reply: Reply) -> Response:
        if reply.status == 204:
            return Response(status=204)
        if isinstance(reply.body, bytes):
            return Response(reply.body, 200, content_type=reply.content_type)
        return Response(
            reply.body,
            200,
            content_type=reply.content_type,
            headers={"X-Accel-Buffering": "no"},
            direct_passthrough=True,
        )

    @app.post("/invocations")
    def invocations() -> Response:  # reached only through flask's own test client
        return reply_response(serving.invoke(serving._target(request.environ), request.environ))

    @app.get("/ping")
    def ping() -> Response:
        handler.ping(model, serving._ping_context)
        return Response(b"", 200)

    @app.get("/execution-parameters")
    def execution_parameters() -> ResponseReturnValue:
        context = handler.context(
            serving.model_dir,
            headers=EnvironHeaders(request.environ),
            request_id=request.environ.get(REQUEST_ID),
        )
        return app.json.response(handler.execution_parameters(model, exec_defaults, context))

    manager = serving.models
    if manager is None:

        @app.route("/models", methods=["GET", "POST"])
        @app.route("/models/<path:name>", methods=["GET", "POST", "DELETE"])
        def no_models(name: str | None = None) -> Response:
            raise ModelNotFound(
                "the /models API is only served on multi-model endpoints "
                "(SAGEMAKER_MULTI_MODEL=true)"
            )

    else:
        models: ModelManager = manager

        @app.get("/models")
        def list_models() -> ResponseReturnValue:
            return app.json.response(
                models.list_page(
                    request.args.get("next_page_token") or request.args.get("nextPageToken"),
                    request.args.get("limit"),
                )
            )

        @app.post("/models")
        def load_model() -> ResponseReturnValue:
            name, url = parse_load_request(request.get_data())
            models.load(name, url)
            return app.json.response({"status": "Workers scaled"})

        @app.get("/models/<path:name>")
        def describe_model(name: str) -> ResponseReturnValue:
            return app.json.response(models.describe(name))

        @app.delete("/models/<path:name>")
        def unload_model(name: str) -> ResponseReturnValue:
            models.unload(name)
            return app.json.response({"status": f'Model "{name}" unregistered'})

        @app.post("/models/<path:name>/invoke")
        def invoke_model(name: str) -> Response:
            return reply_response(serving.invoke(models.get(name), request.environ))

    # -- errors -----------------------------------------------------------------------------
    @app.errorhandler(InferenceError)
    def inference_error(error: InferenceError) -> Response:
        log_error(error, request.environ.get(REQUEST_ID))
        return _json_error(error)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        if code == 413:
            error: InferenceError = payload_too_large(serving.max_body)
        elif code == 404:
            error = InferenceError(404, f"no route {request.method} {request.path}")
        elif code == 405:
            error = InferenceError(405, f"{request.method} is not allowed on {request.path}")
        else:
            error = InferenceError(code if 400 <= code <= 599 else 500, exc.description or "")
        response = _json_error(error)
        for name, value in exc.get_headers():
            if name.lower() == "allow":
                response.headers["Allow"] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("request %s: unexpected error", request.environ.get(REQUEST_ID))
        return _json_error(InferenceError(500, f"internal error: {type(exc).__name__}"))

    return app
