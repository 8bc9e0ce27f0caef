"""(b) The classic SageMaker stack's WSGI app, written for the bench from the published facts
about ``sagemaker-containers`` and the framework containers built on it (no code copied).

What it reproduces, per ``reference/toolkits.md`` section 3 and ``reference/peers.md`` 2.2:

- the entry point is a WSGI callable (``main``) that builds the flask app on the **first
  request each worker gets** - importing the user module and calling ``model_fn`` - so the
  first ``/ping`` of a worker pays the model load;
- a flask app with ``POST /invocations`` and ``GET /ping`` (200, empty body);
- the request's content type is the ``ContentType`` header, else ``Content-Type``, else
  ``application/json``; ``accept`` is ``Accept`` unless missing or ``*/*`` (then the default
  accept); the body is read as text for JSON and CSV;
- the transformer calls ``input_fn`` -> ``predict_fn`` -> ``output_fn``; a ``(body, type)``
  result becomes a response of that mimetype; responses default to ``application/json``.

Run by gunicorn with gevent workers behind nginx without upstream keep-alive (see
``classic-nginx.conf``); ``BENCH_MODEL_DIR`` names the model directory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

import flask

UTF8_TYPES = frozenset({"application/json", "text/csv"})
DEFAULT_ACCEPT = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")


class _Response(flask.Response):
    default_mimetype = "application/json"


def _content_type(request: flask.Request) -> str:
    return (
        request.headers.get("ContentType")
        or request.headers.get("Content-Type")
        or "application/json"
    )


def _accept(request: flask.Request) -> str:
    accept = request.headers.get("Accept")
    return DEFAULT_ACCEPT if not accept or accept == "*/*" else accept


def build_app(model_dir: str) -> flask.Flask:
    """Import the user module, load the model, and route the two SageMaker paths to it."""
    import inference

    model = inference.model_fn(model_dir)
    app = flask.Flask("classic_worker")
    app.response_class = _Response

    @app.route("/ping", methods=["GET"])
    def ping() -> flask.Response:
        return _Response(status=200)

    @app.route("/invocations", methods=["POST"])
    def invocations() -> flask.Response:
        request = flask.request
        content_type = _content_type(request)
        accept = _accept(request)
        body = request.get_data(as_text=content_type in UTF8_TYPES)
        data = inference.input_fn(body, content_type)
        prediction = inference.predict_fn(data, model)
        result = inference.output_fn(prediction, accept)
        if isinstance(result, tuple):
            payload, mimetype = result
            return _Response(response=payload, status=200, mimetype=mimetype)
        return _Response(response=result, status=200, mimetype=accept)

    return app


_app: flask.Flask | None = None
_lock = threading.Lock()


def main(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI entry gunicorn runs: the app is built lazily, on this worker's first request."""
    global _app
    if _app is None:
        with _lock:
            if _app is None:
                _app = build_app(os.environ["BENCH_MODEL_DIR"])
    return _app(environ, start_response)
