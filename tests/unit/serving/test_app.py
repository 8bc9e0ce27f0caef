"""The worker's WSGI app, driven in-process with werkzeug's test client."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import types
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from sagedock.serving.app import create_app, execution_parameters_defaults
from sagedock.serving.handler import NO_CONTENT, Handler, HookLayer
from sagedock.serving.multimodel import ModelManager, ModelRegistry
from sagedock.serving.settings import ServingSettings

SETTINGS = ServingSettings.load(
    {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "0.001", "SAGEMAKER_MODEL_SERVER_WORKERS": "3"}
)


def handler(**hooks: Any) -> Handler:
    hooks.setdefault("model_fn", lambda d: "m")
    hooks.setdefault("predict_fn", lambda data, model: data)
    return Handler([HookLayer("inference.py", types.MappingProxyType(hooks))])


def client(tmp_path: Path, **hooks: Any) -> Client:
    h = handler(**hooks)
    return Client(create_app(SETTINGS, h, predictor=h.load(tmp_path), worker_id=2))


def test_invocations_answer_with_the_hooks_result(tmp_path: Path) -> None:
    response = client(tmp_path).post(
        "/invocations", data=b'{"a": 1}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json == {"a": 1}
    assert response.headers["Content-Length"] == str(len(response.data))


def test_context_carries_worker_id_and_request_id(tmp_path: Path) -> None:
    seen: list[Any] = []

    def predict_fn(data: Any, model: Any, context: Any) -> Any:
        seen.append((context.worker_id, context.request_id, context.headers.get("X-A")))
        return data

    client(tmp_path, predict_fn=predict_fn).post(
        "/invocations", data=b"1", headers={"X-Request-Id": "r-9", "X-A": "b"}
    )
    assert seen == [(2, "r-9", "b")]


@pytest.mark.parametrize(
    ("method", "path", "status", "kind"),
    [
        ("GET", "/nowhere", 404, "NotFound"),
        ("GET", "/invocations", 405, "MethodNotAllowed"),
        ("GET", "/models", 404, "ModelNotFound"),
    ],
)
def test_flask_routes_answer_json_errors(
    tmp_path: Path, method: str, path: str, status: int, kind: str
) -> None:
    response = client(tmp_path).open(path, method=method, headers={"X-Request-Id": "r-1"})
    assert response.status_code == status
    assert response.json["type"] == kind
    assert response.json["request_id"] == "r-1"


def test_hot_path_errors_are_json_with_the_request_id(tmp_path: Path) -> None:
    def predict_fn(data: Any, model: Any) -> Any:
        raise ZeroDivisionError("division by zero")

    response = client(tmp_path, predict_fn=predict_fn).post(
        "/invocations", data=b"1", headers={"X-Request-Id": "r-2"}
    )
    assert response.status_code == 500
    assert response.json == {
        "code": 500,
        "type": "ModelError",
        "message": "predict_fn failed: ZeroDivisionError: division by zero",
        "request_id": "r-2",
    }


def test_payload_limit_is_enforced_by_the_app_too(tmp_path: Path) -> None:
    response = client(tmp_path).post("/invocations", data=b"1" * 2000)
    assert response.status_code == 413
    assert response.json["type"] == "PayloadTooLarge"


def test_ping_and_execution_parameters(tmp_path: Path) -> None:
    app = client(tmp_path, execution_parameters_fn=lambda: {"MaxPayloadInMB": 5})
    assert app.get("/ping").status_code == 200
    assert app.get("/execution-parameters").json == {
        "MaxConcurrentTransforms": 3,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 5,
    }
    sick = client(tmp_path, ping_fn=lambda: False).get("/ping")
    assert sick.status_code == 503


def test_the_ping_sockets_app_answers_get_and_head_and_405_for_other_methods(
    tmp_path: Path,
) -> None:
    # nginx sends a worker's ping socket /ping only, with the client's method.
    h = handler(ping_fn=lambda: True)
    pings = Client(create_app(SETTINGS, h, predictor=h.load(tmp_path)).ping_app)
    assert pings.get("/ping").status_code == 200
    assert pings.head("/ping").status_code == 200
    refused = pings.post("/ping", headers={"X-Request-Id": "r-2"})
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, HEAD"
    assert refused.json == {
        "code": 405,
        "type": "MethodNotAllowed",
        "message": "POST is not allowed on /ping",
        "request_id": "r-2",
    }


def test_ping_fn_and_execution_parameters_fn_get_a_context(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def ping_fn(model: Any, context: Any) -> bool:
        seen["ping"] = context
        return True

    def execution_parameters_fn(model: Any, context: Any) -> dict[str, Any]:
        seen["params"] = context
        return {}

    hooks = handler(ping_fn=ping_fn, execution_parameters_fn=execution_parameters_fn)
    hooks.worker_id = 2
    app = Client(create_app(SETTINGS, hooks, predictor=hooks.load(tmp_path), worker_id=2))
    assert app.get("/ping").status_code == 200
    headers = {"X-Amzn-SageMaker-Custom-Attributes": "trace=1", "X-Request-Id": "r-1"}
    assert app.get("/execution-parameters", headers=headers).status_code == 200
    for context in seen.values():
        assert (context.worker_id, context.model_dir, context.model_name) == (2, tmp_path, None)
    assert (seen["params"].custom_attributes, seen["params"].request_id) == ("trace=1", "r-1")
    assert seen["ping"].custom_attributes is None  # a health check has no request headers


def test_execution_parameter_defaults_follow_the_environment() -> None:
    settings = ServingSettings.load(
        {
            "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "8",
            "SAGEMAKER_BATCH_STRATEGY": "MultiRecord",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": "2.5",
        }
    )
    assert execution_parameters_defaults(settings) == {
        "MaxConcurrentTransforms": 8,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 2.5,
    }


def test_streamed_replies_tell_nginx_not_to_buffer(tmp_path: Path) -> None:
    response = client(tmp_path, output_fn=lambda p, a: iter([b"a", b"b"])).post(
        "/invocations", data=b"1"
    )
    assert response.headers["X-Accel-Buffering"] == "no"
    assert "Content-Length" not in response.headers
    assert response.data == b"ab"


def test_no_content_is_a_204_without_body_or_content_headers(tmp_path: Path) -> None:
    response = client(tmp_path, input_fn=lambda body, ct: NO_CONTENT).post(
        "/invocations", data=b"", headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 204
    assert response.data == b""
    assert "Content-Type" not in response.headers
    assert "Content-Length" not in response.headers


def test_multi_model_routes(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "one").mkdir(parents=True)
    h = handler(model_fn=lambda d, context: context.model_name)
    manager = ModelManager(h, ModelRegistry(tmp_path / "registry"), models, budget_bytes=1 << 30)
    app = Client(create_app(SETTINGS, h, models=manager))
    assert app.post("/models", json={"model_name": "one", "url": str(models / "one")}).json == {
        "status": "Workers scaled"
    }
    assert app.post("/models", json={"name": "x"}).status_code == 400
    response = app.post(
        "/invocations", data=b"[1]", headers={"X-Amzn-SageMaker-Target-Model": "one"}
    )
    assert response.json == [1]
    assert app.post("/invocations", data=b"[1]").status_code == 400
    assert app.post("/models/one/invoke", data=b"[2]").json == [2]
    assert app.get("/models/one").json == {"modelName": "one", "modelUrl": str(models / "one")}
    assert app.delete("/models/one").status_code == 200
    assert app.get("/models/one").status_code == 404


def _multi_model_app(tmp_path: Path) -> tuple[Client, Path]:
    models = tmp_path / "models"
    (models / "one").mkdir(parents=True)
    h = handler(model_fn=lambda d, context: context.model_name)
    manager = ModelManager(h, ModelRegistry(tmp_path / "registry"), models, budget_bytes=1 << 30)
    return Client(create_app(SETTINGS, h, models=manager)), models


def _bad_archive(path: Path, kind: str) -> None:
    """A model archive that is cut short, not an archive at all, or climbs out of its dir."""
    if kind == "junk":
        path.write_bytes(b"this is not a tarball\n" * 20)
        return
    with tarfile.open(path, "w:gz") as tar:
        data = os.urandom(32 * 1024) if kind == "truncated" else b"x"
        info = tarfile.TarInfo("../escape.txt" if kind == "traversing" else "model.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[:4096])


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("truncated", "is truncated or damaged: Compressed file ended"),
        ("junk", "is not a readable tar archive"),
        ("traversing", r"unsafe archive member '../escape.txt' .*path leaves the target"),
    ],
)
def test_a_target_model_that_is_a_bad_archive_is_400_naming_it_and_why(
    tmp_path: Path, kind: str, reason: str
) -> None:
    app, models = _multi_model_app(tmp_path)
    _bad_archive(models / "bad.tar.gz", kind)
    for _ in range(2):  # and again: a refused archive leaves nothing that looks unpacked
        response = app.post(
            "/invocations", data=b"[1]", headers={"X-Amzn-SageMaker-Target-Model": "bad.tar.gz"}
        )
        assert response.status_code == 400, response.text
        body = response.json
        assert body["type"] == "BadRequest"
        assert str(models / "bad.tar.gz") in body["message"]
        assert re.search(reason, body["message"]), body["message"]
    loaded = app.post("/models", json={"model_name": "b", "url": str(models / "bad.tar.gz")})
    assert loaded.status_code == 400
    assert re.search(reason, loaded.json["message"])
    assert app.get("/models").json == {"models": []}  # neither left registered
    assert not (tmp_path / "escape.txt").exists()
    assert not list(tmp_path.rglob("escape.txt"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"model_name": "caf\xe9", "url": "one"}', "model_name"),  # Latin-1, not UTF-8
        (b'{"model_name": "\\ud800", "url": "one"}', "model_name"),  # a lone surrogate
        (b'{"model_name": "one", "url": "\xff\xfe/one"}', "url"),
        (b'{"model_name": "one", "url": "one\\u0000"}', "url"),
        (b'{"model_name": 7, "url": "one"}', "model_name"),
        (b'{"model_name": "one"}', "url"),
    ],
)
def test_post_models_with_a_field_that_is_not_text_is_400_naming_the_field(
    tmp_path: Path, body: bytes, field: str
) -> None:
    app, _ = _multi_model_app(tmp_path)
    response = app.post("/models", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json["type"] == "BadRequest"
    assert response.json["message"].startswith(f'"{field}" ')
    assert app.get("/models").json == {"models": []}


def test_post_models_takes_utf8_names(tmp_path: Path) -> None:
    app, models = _multi_model_app(tmp_path)
    body = json.dumps({"model_name": "café/模型", "url": str(models / "one")}).encode()
    assert app.post("/models", data=body).status_code == 200
    assert app.get("/models").json["models"][0]["modelName"] == "café/模型"
    assert app.post("/models", data=b"\xff\xfe not json").status_code == 400
