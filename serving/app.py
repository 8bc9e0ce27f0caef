"""The flask app of a worker: SageMaker's routes over a loaded :class:`~.handler.Predictor`.

- ``GET /ping``: 200 (empty) when the model is loaded and ``ping_fn`` (if any) agrees, else 503;
- ``POST /invocations``: the hooks' answer, with its content type; an iterator is streamed;
- ``GET /execution-parameters``: ``MaxConcurrentTransforms``, ``BatchStrategy``,
  ``MaxPayloadInMB`` (``execution_parameters_fn`` may change them);
- multi-model endpoints (``SAGEMAKER_MULTI_MODEL=true``): ``GET/POST /models``,
  ``GET/DELETE /models/<name>``, ``POST /models/<name>/invoke``, and ``/invocations`` with
  ``X-Amzn-SageMaker-Target-Model``.

Every error is JSON ``{"code", "type", "message", "request_id"}``; tracebacks are logged with
the request id, never sent. The app is built after the model is loaded (the worker answers
nothing before that), so no view checks readiness per request.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
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
from .multimodel import ModelManager
from .settings import ServingSettings

log = logging.getLogger(__name__)

JSON = "application/json"
TARGET_MODEL = "HTTP_X_AMZN_SAGEMAKER_TARGET_MODEL"


def execution_parameters_defaults(settings: ServingSettings) -> dict[str, Any]:
    """What ``/execution-parameters`` answers unless the user module changes it."""
    payload = settings.max_payload_mb
    return {
        "MaxConcurrentTransforms": settings.max_concurrent_transforms or settings.workers,
        "BatchStrategy": settings.batch_strategy or "MULTI_RECORD",
        "MaxPayloadInMB": int(payload) if float(payload).is_integer() else payload,
    }


def _request_id(environ: dict[str, Any]) -> str | None:
    return environ.get("HTTP_X_REQUEST_ID")


def json_error(error: InferenceError) -> Response:
    environ = request.environ if request else {}
    return Response(error_body(error, _request_id(environ)), error.status, content_type=JSON)


def create_app(
    settings: ServingSettings,
    handler: Handler,
    *,
    predictor: Predictor | None = None,
    models: ModelManager | None = None,
    worker_id: int = 0,
) -> Flask:
    """The WSGI app for one worker: single-model (*predictor*) or multi-model (*models*)."""
    if (predictor is None) == (models is None):
        raise ValueError("give exactly one of predictor and models")
    here = str(Path(__file__).parent)
    # Explicit paths: flask cannot locate the instance folder of a namespace-mapped package.
    app = Flask("sagedock.serving", root_path=here, instance_path=here)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_payload_bytes
    batch = settings.batch
    exec_defaults = execution_parameters_defaults(settings)

    def reply_response(reply: Reply) -> Response:
        if isinstance(reply.body, bytes):
            return Response(reply.body, 200, content_type=reply.content_type)
        # nginx must pass chunks on as they come, not buffer the whole stream.
        return Response(
            reply.body,
            200,
            content_type=reply.content_type,
            headers={"X-Accel-Buffering": "no"},
            direct_passthrough=True,
        )

    def invoke(target: Predictor) -> Response:
        environ = request.environ
        body = request.get_data(cache=False)

        def make_context(media: Any) -> InferenceContext:
            return InferenceContext(
                EnvironHeaders(environ),
                target.model_name,
                target.model_dir,
                worker_id,
                _request_id(environ),
                media,
                batch,
            )

        reply = target.invoke(
            body, environ.get("CONTENT_TYPE"), environ.get("HTTP_ACCEPT"), make_context
        )
        return reply_response(reply)

    # -- the routes -----------------------------------------------------------------------
    if predictor is not None:
        single: Predictor = predictor

        @app.get("/ping")
        def ping() -> Response:
            handler.ping(single.model)
            return Response(b"", 200)

        @app.post("/invocations")
        def invocations() -> Response:
            return invoke(single)

        @app.get("/execution-parameters")
        def execution_parameters() -> Response:
            return app.json.response(handler.execution_parameters(single.model, exec_defaults))

        @app.route("/models", methods=["GET", "POST"])
        @app.route("/models/<path:name>", methods=["GET", "POST", "DELETE"])
        def no_models(name: str | None = None) -> Response:
            raise ModelNotFound(
                "the /models API is only served on multi-model endpoints "
                "(SAGEMAKER_MULTI_MODEL=true)"
            )

    else:
        manager: ModelManager = models  # type: ignore[assignment]

        @app.get("/ping")
        def ping_multi() -> Response:
            handler.ping(None)
            return Response(b"", 200)

        @app.post("/invocations")
        def invocations_multi() -> Response:
            target = request.environ.get(TARGET_MODEL)
            if not target:
                raise BadRequest(
                    "a multi-model endpoint needs the X-Amzn-SageMaker-Target-Model header"
                )
            return invoke(manager.for_target(target))

        @app.get("/execution-parameters")
        def execution_parameters_multi() -> Response:
            return app.json.response(handler.execution_parameters(None, exec_defaults))

        @app.get("/models")
        def list_models() -> Response:
            return app.json.response(
                manager.list_page(
                    request.args.get("next_page_token") or request.args.get("nextPageToken"),
                    request.args.get("limit"),
                )
            )

        @app.post("/models")
        def load_model() -> Response:
            data = request.get_json(silent=True)
            if not isinstance(data, dict):
                raise BadRequest('expected a JSON body {"model_name": ..., "url": ...}')
            name, url = data.get("model_name"), data.get("url")
            if not isinstance(name, str) or not name or not isinstance(url, str) or not url:
                raise BadRequest(
                    'expected a JSON body {"model_name": ..., "url": ...} with two strings'
                )
            manager.load(name, url)
            return app.json.response({"status": "Workers scaled"})

        @app.get("/models/<path:name>")
        def describe_model(name: str) -> Response:
            return app.json.response(manager.describe(name))

        @app.delete("/models/<path:name>")
        def unload_model(name: str) -> Response:
            manager.unload(name)
            return app.json.response({"status": f'Model "{name}" unregistered'})

        @app.post("/models/<path:name>/invoke")
        def invoke_model(name: str) -> Response:
            return invoke(manager.get(name))

    # -- errors -----------------------------------------------------------------------------
    @app.errorhandler(InferenceError)
    def inference_error(error: InferenceError) -> Response:
        request_id = _request_id(request.environ)
        if isinstance(error, HookFailed):
            log.error("request %s: %s", request_id, error.message, exc_info=error.__cause__)
        elif error.status >= 500:
            log.error("request %s: %d %s", request_id, error.status, error.message)
        else:
            log.info("request %s: %d %s", request_id, error.status, error.message)
        return json_error(error)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        if code == 413:
            limit = settings.max_payload_bytes or 0
            error: InferenceError = PayloadTooLarge(
                f"request body over the limit of {limit} bytes "
                f"({limit / (1024 * 1024):g} MiB, SAGEMAKER_MAX_PAYLOAD_IN_MB)"
            )
        elif code == 404:
            error = InferenceError(404, f"no route {request.method} {request.path}")
        elif code == 405:
            error = InferenceError(405, f"{request.method} is not allowed on {request.path}")
        else:
            error = InferenceError(code if 400 <= code <= 599 else 500, exc.description or "")
        response = json_error(error)
        if code == 405 and exc.get_headers():
            for name, value in exc.get_headers():
                if name.lower() == "allow":
                    response.headers["Allow"] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        request_id = _request_id(request.environ)
        log.exception("request %s: unexpected error", request_id)
        return json_error(InferenceError(500, f"internal error: {type(exc).__name__}"))

    return app
