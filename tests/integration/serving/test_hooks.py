"""The hook forms of inference.py, served by the real `sagedock serve` (nginx + gunicorn)."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.serving import ServeFactory, write_model

PIPELINE = """
    import json

    def model_fn(model_dir):
        return {"bias": float((model_dir / "bias.txt").read_text())}

    def input_fn(body, content_type):
        assert isinstance(body, str), type(body)
        return json.loads(body)

    def predict_fn(data, model):
        return [x + model["bias"] for x in data]

    def output_fn(prediction, accept):
        return json.dumps({"predictions": prediction, "accept": accept})
"""


def test_pipeline_hooks_answer_with_the_accept_type(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    model = write_model(tmp_path / "model", PIPELINE, {"bias.txt": "1.5"})
    server = serve_model(model)
    response = server.invoke("[1, 2]", Accept="application/json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"predictions": [2.5, 3.5], "accept": "application/json"}
