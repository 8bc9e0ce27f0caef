"""The hook forms of inference.py, served by the real `sagedock serve` (nginx + gunicorn)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.serving import FRONTS, ServeFactory, write_model

ONE_WORKER = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}

PIPELINE = """
    import json

    def model_fn(model_dir):
        with open(model_dir + "/bias.txt") as f:  # model_dir is a str, as on AWS
            return {"bias": float(f.read())}

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
    server = serve_model(model, env=ONE_WORKER)
    response = server.invoke("[1, 2]", Accept="application/json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"predictions": [2.5, 3.5], "accept": "application/json"}
    # Several types in Accept: output_fn gets the most preferred one.
    response = server.invoke("[1]", Accept="text/csv;q=0.5, application/jsonlines")
    assert response.json()["accept"] == "application/jsonlines"
    assert response.headers["Content-Type"] == "application/jsonlines"


CONTEXT = """
    import json
    from pathlib import Path

    LOG = []

    def model_fn(model_dir, context):
        LOG.append(["model_fn", context.worker_id, context.model_name, str(context.model_dir)])
        return "m"

    def input_fn(body, content_type, context):
        LOG.append(["input_fn", content_type, dict(content_type.params)])
        return body

    def predict_fn(data, model, context):
        return {
            "custom_attributes": context.custom_attributes,
            "inference_id": context.inference_id,
            "request_id": context.request_id,
            "worker_id": context.worker_id,
            "gpu_id": context.system_properties["gpu_id"],
            "body": data,
        }

    def output_fn(prediction, accept, context):
        return json.dumps({**prediction, "log": LOG[:2]}), "application/x-custom"
"""


def test_hooks_taking_context_get_headers_worker_and_content_type_params(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    model = write_model(tmp_path / "model", CONTEXT)
    server = serve_model(model, env=ONE_WORKER)
    response = server.invoke(
        "1,2\n",
        content_type="Text/CSV; charset=utf-8; label_size=1",
        **{
            "X-Amzn-SageMaker-Custom-Attributes": "trace=abc",
            "X-Amzn-SageMaker-Inference-Id": "inf-7",
        },
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-custom"
    got = response.json()
    assert got["custom_attributes"] == "trace=abc"
    assert got["inference_id"] == "inf-7"
    assert got["request_id"]
    assert got["worker_id"] == 0
    assert got["body"] == "1,2\n"
    assert got["log"][0] == ["model_fn", 0, None, str(model)]
    assert got["log"][1] == ["input_fn", "text/csv", {"charset": "utf-8", "label_size": "1"}]


@pytest.mark.parametrize("with_context", [False, True])
def test_transform_fn_gets_the_raw_request_and_its_tuple_sets_the_type(
    serve_model: ServeFactory, tmp_path: Path, with_context: bool
) -> None:
    extra = ", context" if with_context else ""
    model = write_model(
        tmp_path / "model",
        f"""
        def model_fn(model_dir):
            return "upper"

        def transform_fn(model, body, content_type, accept{extra}):
            assert isinstance(body, bytes)
            return body.upper(), "text/plain"
        """,
    )
    server = serve_model(model, env=ONE_WORKER)
    response = server.invoke(b"hello", content_type="application/octet-stream")
    assert response.status_code == 200
    assert response.content == b"HELLO"
    assert response.headers["Content-Type"] == "text/plain"


def test_generic_defaults_decode_and_encode_with_the_codecs(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    model = write_model(
        tmp_path / "model",
        """
        import numpy as np

        class Doubler:
            def predict(self, data):
                return np.asarray(data) * 2

        def model_fn(model_dir):
            return Doubler()
        """,
    )
    server = serve_model(model, env=ONE_WORKER)
    response = server.invoke("1,2\n3,4\n", content_type="text/csv", Accept="text/csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert np.loadtxt(response.text.splitlines(), delimiter=",").tolist() == [[2, 4], [6, 8]]
    response = server.invoke("[[1, 2]]")  # no Accept: the default accept (JSON)
    assert response.json() == [[2, 4]]


def test_ping_fn_and_execution_parameters_fn_and_load_hooks(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    model = write_model(
        tmp_path / "model",
        f"""
        from pathlib import Path
        FLAGS = Path({str(flags)!r})

        def pre_model_fn(model_dir):
            (FLAGS / "pre").touch()

        def model_fn(model_dir):
            assert (FLAGS / "pre").exists()
            return "m"

        def model_warmup_fn(model_dir, model):
            (FLAGS / "warm").touch()

        def ping_fn(model):
            return not (FLAGS / "sick").exists()

        def execution_parameters_fn():
            return {{"MaxPayloadInMB": 2, "BatchStrategy": "SINGLE_RECORD"}}

        def predict_fn(data, model):
            return data
        """,
    )
    server = serve_model(model)
    assert (flags / "warm").exists()
    assert server.get("/ping").status_code == 200
    (flags / "sick").touch()
    response = server.get("/ping")
    assert response.status_code == 503
    assert "ping_fn" in response.json()["message"]
    assert server.get("/execution-parameters").json() == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "SINGLE_RECORD",
        "MaxPayloadInMB": 2,
    }


def test_algorithm_hooks_are_defaults_under_the_user_module(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    package = tmp_path / "algos"
    package.mkdir()
    (package / "toy_inference.py").write_text(
        "default_accept = 'text/csv'\n"
        "def model_fn(model_dir):\n    return 10\n"
        "def predict_fn(data, model):\n    return [[x * model for x in row] for row in data]\n"
    )
    model = write_model(
        tmp_path / "model",
        """
        def predict_fn(data, model):
            return [[x + model for x in row] for row in data]
        """,
    )
    server = serve_model(
        model,
        env={**ONE_WORKER, "PYTHONPATH": str(package)},
        args=["--algorithm", "toy_inference"],
    )
    response = server.invoke("[[1, 2]]")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")  # the algorithm's default
    assert response.text.strip() == "11,12"  # user predict_fn over the algorithm's model_fn
    assert "predict_fn: " + str(model / "code" / "inference.py") in server.log
    assert "model_fn: algorithm toy_inference" in server.log


def _boosters(count: int) -> tuple[list[object], np.ndarray]:
    xgboost = pytest.importorskip("xgboost")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    boosters = [
        xgboost.train({"max_depth": depth}, xgboost.DMatrix(x, label=x[:, 0]), 5)
        for depth in range(2, 2 + count)
    ]
    return boosters, x


@pytest.mark.parametrize(
    "files",
    [
        pytest.param({"xgboost-model": "ubj"}, id="ubjson-xgboost-model"),
        pytest.param({"xgboost-model": "pickle"}, id="pickled-booster"),
        pytest.param({"model-a.json": "json", "model-b.ubj": "ubj"}, id="two-file-ensemble"),
    ],
)
def test_script_mode_xgboost_models_are_served_by_the_algorithms_loader(
    serve_model: ServeFactory, tmp_path: Path, files: dict[str, str]
) -> None:
    # A script-mode user who wrote only train.py: no inference.py, no --algorithm.
    import pickle

    import xgboost

    boosters, x = _boosters(len(files))
    model = tmp_path / "model"
    model.mkdir()
    for (name, kind), booster in zip(files.items(), boosters, strict=True):
        if kind == "pickle":
            (model / name).write_bytes(pickle.dumps(booster))
        else:  # XGBoost picks the format from the suffix
            booster.save_model(str(tmp_path / f"saved.{kind}"))
            (tmp_path / f"saved.{kind}").rename(model / name)
    server = serve_model(model, env=ONE_WORKER)
    response = server.invoke(json.dumps(x[:2].tolist()))
    assert response.status_code == 200, response.text
    expected = np.mean([b.predict(xgboost.DMatrix(x[:2])) for b in boosters], axis=0)
    assert np.allclose(response.json(), expected, atol=1e-6)
    assert "model_fn: xgboost defaults" in server.log


@pytest.mark.parametrize("front", FRONTS)
def test_a_hook_returning_no_content_answers_204_and_the_connection_goes_on(
    serve_model: ServeFactory, tmp_path: Path, front: str
) -> None:
    model = write_model(
        tmp_path / "model",
        """
        import json

        from sagedock.serving import NO_CONTENT

        def model_fn(model_dir):
            return "m"

        def input_fn(body, content_type):
            return json.loads(body) if body else NO_CONTENT

        def predict_fn(data, model):
            return data
        """,
    )
    server = serve_model(model, env=ONE_WORKER, front=front)
    for _ in range(2):  # one kept-alive connection: the 204 must not leave stray bytes on it
        response = server.invoke(b"")
        assert response.status_code == 204
        assert response.content == b""
        assert "Content-Length" not in response.headers
        response = server.invoke(b"[1]")
        assert (response.status_code, response.json()) == (200, [1])


def test_no_model_fn_and_no_recognisable_model_is_a_startup_error(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    model = write_model(tmp_path / "model", files={"weights.bin": b"\0" * 8})
    server = serve_model(model, wait=False)
    assert server.wait(60) != 0
    assert "no model_fn: define model_fn(model_dir)" in server.log
    assert "weights.bin" in server.log


def test_explicit_sagemaker_program_must_exist(serve_model: ServeFactory, tmp_path: Path) -> None:
    model = write_model(tmp_path / "model", "def model_fn(model_dir): return 1\n")
    server = serve_model(model, env={"SAGEMAKER_PROGRAM": "serve_me.py"}, wait=False)
    assert server.wait(60) != 0
    assert "SAGEMAKER_PROGRAM='serve_me.py': no serve_me.py in" in server.log


def test_sagemaker_program_names_another_module(serve_model: ServeFactory, tmp_path: Path) -> None:
    model = write_model(
        tmp_path / "model",
        files={
            "code/entry.py": "from helper import ANSWER\n"
            "def model_fn(model_dir): return ANSWER\n"
            "def predict_fn(data, model): return {'answer': model}\n",
            "code/helper.py": "ANSWER = 42\n",
        },
    )
    server = serve_model(model, env={**ONE_WORKER, "SAGEMAKER_PROGRAM": "entry.py"})
    assert server.invoke("[1]").json() == {"answer": 42}


def test_serve_console_script_is_sagedock_serve() -> None:
    from sagedock.toolkit.cli import SUBCOMMANDS

    assert SUBCOMMANDS["serve"] == "sagedock.serving.command"
    assert Path(sys.executable).with_name("serve").exists()
