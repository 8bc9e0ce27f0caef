"""The generic ``input_fn`` (the codecs behind a model without one), through the real request
path: for any body and any content type or charset, a reply or a 4xx - never a 500."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sagedock.serving.errors import InferenceError
from sagedock.serving.handler import Handler, HookLayer, Predictor, Reply
from tests.fuzz import MAX_BODY, outcome, property_settings

from .codecs.test_any_bytes import CHARSETS, VALID


def _predictor() -> Predictor:
    # The model answers one number whatever it gets: a failure can only come from decoding.
    hooks: dict[str, Any] = {"model_fn": lambda model_dir: object(), "predict_fn": lambda d, m: 0}
    with tempfile.TemporaryDirectory() as tmp:
        return Handler([HookLayer("test", MappingProxyType(hooks))]).load(Path(tmp))


PREDICTOR = _predictor()
MIMES = [*VALID, "application/octet-stream", "image/png", "text/libsvm", "application/x-foo"]


@st.composite
def _requests(draw: st.DrawFn) -> tuple[bytes, str]:
    mime = draw(st.sampled_from(MIMES))
    valid = mime in VALID and draw(st.booleans())
    body = draw(VALID[mime] if valid else st.binary(max_size=MAX_BODY))
    charset = draw(st.sampled_from(CHARSETS))
    return body, mime if charset is None else f"{mime}; charset={charset}"


@property_settings(examples=200)
@given(request=_requests())
def test_any_request_is_answered_or_refused_with_a_4xx(request: tuple[bytes, str]) -> None:
    body, content_type = request
    result = outcome(
        lambda: PREDICTOR.invoke(body, content_type, "application/json"), (InferenceError,)
    )
    if isinstance(result, InferenceError):
        assert result.status < 500, result.message
    else:
        assert isinstance(result, Reply) and result.body == b"0"
