"""An output hook that returns an iterator is streamed with chunked encoding, chunk by chunk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.serving import FRONTS, ServeFactory, write_model

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


@pytest.mark.parametrize("mode", FRONTS)
def test_iterator_output_is_streamed_chunk_by_chunk(
    serve_model: ServeFactory, tmp_path: Path, mode: str
) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    model = write_model(tmp_path / "model", STREAMING)
    server = serve_model(model, env={"TEST_FLAGS": str(flags)}, front=mode)
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


PACED = """
    import os, time
    from pathlib import Path

    FLAGS = Path(os.environ["TEST_FLAGS"])

    def model_fn(model_dir):
        return "m"

    def predict_fn(data, model):
        return data

    def output_fn(prediction, accept):
        def tokens():
            for n in range(prediction["chunks"]):
                yield f"{n}\\n"
                time.sleep(prediction["gap"])
            if prediction.get("stall"):
                for _ in range(3000):  # until the test ends
                    if (FLAGS / "never").exists():
                        break
                    time.sleep(0.01)
            yield "end\\n"
        return tokens(), "text/plain"
"""


@pytest.mark.parametrize("mode", FRONTS)
def test_the_timeout_bounds_each_chunk_of_a_stream_not_the_whole(
    serve_model: ServeFactory, tmp_path: Path, mode: str
) -> None:
    import time

    import requests

    flags = tmp_path / "flags"
    flags.mkdir()
    model = write_model(tmp_path / "model", PACED)
    env = {"TEST_FLAGS": str(flags), "SAGEMAKER_MODEL_SERVER_TIMEOUT": "2"}
    server = serve_model(model, env=env, front=mode)

    def stream(**request: object) -> requests.Response:
        return server.post(
            "/invocations",
            data=json.dumps(request),
            headers={"Content-Type": "application/json"},
            stream=True,
        )

    # 4 chunks 0.8 s apart: 3.2 s in all, past the 2 s timeout, but never 2 s without a chunk.
    response = stream(chunks=4, gap=0.8)
    assert response.status_code == 200
    assert list(response.iter_lines()) == [b"0", b"1", b"2", b"3", b"end"]

    # A stream that stops producing is cut off once 2 s pass without a chunk.
    started = time.monotonic()
    response = stream(chunks=1, gap=0, stall=True)
    assert response.status_code == 200  # the head went out with the first chunk
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        b"".join(response.iter_content(None))
    assert time.monotonic() - started < 10
    assert "the response stream produced no chunk within" in server.log
    assert "SAGEMAKER_MODEL_SERVER_TIMEOUT=2s: cut off" in server.log
    # That worker is replaced; the endpoint keeps answering.
    for _ in range(3):
        response = stream(chunks=1, gap=0)
        assert (response.status_code, list(response.iter_lines())) == (200, [b"0", b"end"])
