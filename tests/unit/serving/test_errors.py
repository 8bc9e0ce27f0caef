import pytest

from sagedock.serving.errors import BadRequest, InferenceError, UnsupportedMediaType


def test_user_raised_inference_error_keeps_its_status_and_message() -> None:
    err = InferenceError(429, "slow down: 3 requests in flight")
    assert err.to_json("r1") == {
        "code": 429,
        "type": "TooManyRequests",
        "message": "slow down: 3 requests in flight",
        "request_id": "r1",
    }


def test_subclasses_carry_their_status() -> None:
    assert UnsupportedMediaType("text/xml is not supported").status == 415
    assert BadRequest("line 3: expected 4 columns, got 5").to_json()["type"] == "BadRequest"


def test_status_outside_4xx_5xx_is_refused() -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        InferenceError(200, "fine")
