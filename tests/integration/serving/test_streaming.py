"""An output hook that returns an iterator is streamed with chunked encoding, chunk by chunk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.serving import ServeFactory, write_model

STREAMING = """
    import os, time
    from pathlib import Path

    FLAGS = Path(os.environ["TEST_FLAGS"])

    def model_fn(model_dir):
        return "m"

    def predict_fn(data, model):
        return data

    def output_fn(prediction, accept):
        def tokens():
            yield "first\\n"
            # The next chunk waits until the client has seen the first one.
            for _ in range(3000):
                if (FLAGS / "seen").exists():
                    break
                time.sleep(0.01)
            for word in prediction["words"]:
                yield word + "\\n"
            if prediction.get("fail"):
                raise RuntimeError("stream broke")
        return tokens(), "text/plain"
"""


@pytest.mark.parametrize("mode", ["nginx", "gunicorn"])
def test_iterator_output_is_streamed_chunk_by_chunk(
    serve_model: ServeFactory, tmp_path: Path, mode: str
) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    model = write_model(tmp_path / "model", STREAMING)
    env = {"TEST_FLAGS": str(flags), "SAGEMAKER_USE_NGINX": str(mode == "nginx").lower()}
    server = serve_model(model, env=env)
    response = server.post(
        "/invocations",
        data=json.dumps({"words": ["a", "b", "c"]}),
        headers={"Content-Type": "application/json"},
        stream=True,
    )
    assert response.status_code == 200
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert response.headers["Content-Type"] == "text/plain"
    lines = response.iter_lines()
    assert next(lines) == b"first"  # arrived while the generator is still waiting
    (flags / "seen").touch()
    assert list(lines) == [b"a", b"b", b"c"]


def test_a_stream_that_fails_midway_is_cut_off_not_completed(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    import requests

    flags = tmp_path / "flags"
    flags.mkdir()
    (flags / "seen").touch()
    model = write_model(tmp_path / "model", STREAMING)
    server = serve_model(model, env={"TEST_FLAGS": str(flags)})
    response = server.post(
        "/invocations",
        data=json.dumps({"words": ["a"], "fail": True}),
        headers={"Content-Type": "application/json"},
        stream=True,
    )
    assert response.status_code == 200  # the headers went out before the failure
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        b"".join(response.iter_content(None))
    assert "the response stream failed" in server.log
    assert server.invoke(json.dumps({"words": ["ok"]})).status_code == 200
