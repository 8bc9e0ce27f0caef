"""Every error status the endpoint answers, as JSON without tracebacks - behind nginx and with
gunicorn binding the port itself (SAGEMAKER_USE_NGINX=false)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from tests.fixtures.serving import FRONTS, ServeProcess, running_server, write_model

INFERENCE = """
    import time
    from sagedock.serving import InferenceError

    def model_fn(model_dir):
        return "model"

    def predict_fn(data, model):
        if isinstance(data, dict) and data.get("raise") == "inference":
            raise InferenceError(422, "field 'age' must be a number")
        if isinstance(data, dict) and data.get("raise") == "boom":
            raise ValueError("the model blew up")
        if isinstance(data, dict) and "sleep" in data:
            time.sleep(data["sleep"])
        return data
"""


@pytest.fixture(scope="module", params=FRONTS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp(f"errors-{request.param}")
    model = write_model(root / "model", INFERENCE)
    env = {
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "2",
    }
    with running_server(model, env=env, base_dir=root / "base", front=request.param) as running:
        yield running


def assert_error(response: requests.Response, status: int, kind: str, *words: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == status
    assert body["type"] == kind
    assert body["request_id"]
    for word in words:
        assert word in body["message"]
    assert "Traceback" not in response.text
    return body


def test_ok_request_round_trips(server: ServeProcess) -> None:
    response = server.invoke(json.dumps({"x": [1, 2]}))
    assert response.status_code == 200
    assert response.json() == {"x": [1, 2]}


def test_undecodable_body_is_400_naming_the_position(server: ServeProcess) -> None:
    response = server.invoke('{"x": [1, 2}')
    assert_error(response, 400, "BadRequest", "line 1", "column")


def test_unknown_path_is_404_json(server: ServeProcess) -> None:
    assert_error(server.get("/no/such/path"), 404, "NotFound", "/no/such/path")


def test_unsupported_accept_is_406_listing_supported_types(server: ServeProcess) -> None:
    response = server.invoke("[1]", Accept="text/html")
    assert_error(response, 406, "NotAcceptable", "text/html", "application/json")


def test_unsupported_content_type_is_415(server: ServeProcess) -> None:
    response = server.invoke("<x/>", content_type="text/xml")
    assert_error(response, 415, "UnsupportedMediaType", "text/xml")


def test_body_over_the_payload_limit_is_413_from_the_front_layer(server: ServeProcess) -> None:
    big = b"[" + b"1," * (1024 * 1024) + b"1]"
    response = server.invoke(big)
    body = assert_error(response, 413, "PayloadTooLarge", "SAGEMAKER_MAX_PAYLOAD_IN_MB")
    limit = "over the limit of 1048576 bytes (1 MiB, SAGEMAKER_MAX_PAYLOAD_IN_MB)"
    if server.front == "nginx":  # nginx refuses it: the workers never see it
        assert body["message"] == f"request body {limit}"
    else:  # the worker refuses it from its Content-Length, before reading it
        assert body["message"] == f"request body of {len(big)} bytes is {limit}"


def test_user_raised_inference_error_keeps_status_and_message(server: ServeProcess) -> None:
    response = server.invoke(json.dumps({"raise": "inference"}))
    assert_error(response, 422, "UnprocessableEntity", "field 'age' must be a number")


def test_failing_hook_is_500_naming_the_hook_with_traceback_only_in_the_log(
    server: ServeProcess,
) -> None:
    response = server.invoke(json.dumps({"raise": "boom"}))
    body = assert_error(response, 500, "ModelError", "predict_fn", "the model blew up")
    assert "Traceback" in server.log
    assert body["request_id"] in server.log


def test_slow_prediction_is_504_and_the_next_request_succeeds(server: ServeProcess) -> None:
    response = server.invoke(json.dumps({"sleep": 6}))
    assert_error(response, 504, "RequestTimeout", "SAGEMAKER_MODEL_SERVER_TIMEOUT")
    # The timed-out worker is replaced; requests keep being answered meanwhile.
    for _ in range(5):
        assert server.invoke("[1]").status_code == 200


def test_wrong_method_is_405(server: ServeProcess) -> None:
    response = server.get("/invocations")
    assert response.status_code == 405
    assert response.json()["code"] == 405


def test_execution_parameters_report_workers_and_payload(server: ServeProcess) -> None:
    response = server.get("/execution-parameters")
    assert response.status_code == 200
    assert response.json() == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 1,
    }
