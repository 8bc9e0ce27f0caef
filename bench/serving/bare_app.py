"""(c) A bare gunicorn + flask app: the same predict code, nothing in front of gunicorn.

gunicorn binds TCP itself; each worker imports this module - and so loads the model - when it
boots. ``BENCH_MODEL_DIR`` names the model directory.
"""

from __future__ import annotations

import os

import flask

import inference

model = inference.model_fn(os.environ["BENCH_MODEL_DIR"])
app = flask.Flask("bare")


@app.get("/ping")
def ping() -> flask.Response:
    return flask.Response(b"", 200)


@app.post("/invocations")
def invocations() -> flask.Response:
    request = flask.request
    content_type = request.mimetype or "application/json"
    data = inference.input_fn(request.get_data(as_text=True), content_type)
    body, mimetype = inference.output_fn(inference.predict_fn(data, model), "text/csv")
    return flask.Response(body, 200, mimetype=mimetype)
