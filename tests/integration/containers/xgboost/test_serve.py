"""Built-in XGBoost behind the real server: models trained by `sagedock train --algorithm xgboost`,
served by `sagedock serve --algorithm xgboost` (nginx + gunicorn). Checklist rows X22-X35.

Deliberate differences from SageMaker's container, tested as such:
- a body that does not parse is 400 (SageMaker: 415), as DESIGN.md decides for every endpoint;
- unsupported Content-Type / Accept answer a JSON error body (SageMaker: plain text).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.serving import ServeProcess
from tests.fixtures.xgboost import (
    CONTENT_TYPES,
    XGBoostJob,
    make_dataset,
    write_format,
)

pytestmark = pytest.mark.slow

ServeFactory = Callable[..., ServeProcess]
ONE_WORKER = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}

OBJECTIVES = {
    "regression": {"objective": "reg:squarederror"},
    "binary": {"objective": "binary:logistic"},
    "multiclass": {"objective": "multi:softprob", "num_class": 4},
}


def _trained(xgboost_job: Callable[..., XGBoostJob], kind: str, fmt: str = "csv") -> Path:
    """A model trained end to end by `sagedock train --algorithm xgboost`."""
    job = xgboost_job({"num_round": 10, "max_depth": 3, **OBJECTIVES[kind]})
    data = make_dataset(kind, rows=400)  # type: ignore[arg-type]
    write_format(fmt, job.add_channel("train", CONTENT_TYPES[fmt]) / "part-0", data)
    result = job.run()
    assert result.returncode == 0, result.stderr[-2000:]
    return job.model_dir


def _csv(x: np.ndarray) -> str:
    return "".join(",".join(f"{v:.6g}" for v in row) + "\n" for row in x)


def _libsvm(x: np.ndarray) -> str:
    return "".join(" ".join(f"{j}:{v:.6g}" for j, v in enumerate(row)) + "\n" for row in x)


def _serve(serve_model: ServeFactory, model_dir: Path, **env: str) -> ServeProcess:
    return serve_model(model_dir, env={**ONE_WORKER, **env}, args=["--algorithm", "xgboost"])


@pytest.mark.parametrize(
    ("kind", "fmt"),
    [
        ("regression", "csv"),
        ("binary", "libsvm"),
        ("multiclass", "parquet"),
        ("regression", "recordio-protobuf"),
    ],
)
def test_e2e_train_then_serve_predicts_like_the_booster(
    xgboost_job: Callable[..., XGBoostJob], serve_model: ServeFactory, kind: str, fmt: str
) -> None:
    import xgboost

    model_dir = _trained(xgboost_job, kind, fmt)
    booster = xgboost.Booster()
    booster.load_model(str(model_dir / "xgboost-model"))
    x = make_dataset(kind, rows=20, seed=7).x  # type: ignore[arg-type]
    expected = booster.predict(xgboost.DMatrix(x))
    server = _serve(serve_model, model_dir)
    for content_type, body in (("text/csv", _csv(x)), ("text/libsvm", _libsvm(x))):
        response = server.invoke(body, content_type, Accept="application/json")
        assert response.status_code == 200, response.text
        scores = np.array([p["score"] for p in response.json()["predictions"]])
        np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


def test_x22_ping_and_execution_parameters(
    xgboost_job: Callable[..., XGBoostJob], serve_model: ServeFactory
) -> None:
    from sagedock.serving.settings import ServingSettings, available_cpus

    # SageMaker reports the CPU count as MaxConcurrentTransforms; sagedock reports the worker
    # count, which by default is one per CPU (as SageMaker's XGBoost starts gunicorn), so the
    # figures agree unless SAGEMAKER_MODEL_SERVER_WORKERS is set - then it is the number of
    # requests the endpoint can answer at once (a deliberate difference).
    assert ServingSettings.load({}).workers == available_cpus()
    model_dir = _trained(xgboost_job, "regression")
    for workers in ("1", "2"):
        server = _serve(serve_model, model_dir, SAGEMAKER_MODEL_SERVER_WORKERS=workers)
        assert server.get("/ping").status_code == 200
        assert server.get("/execution-parameters").json() == {
            "MaxConcurrentTransforms": int(workers),
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": 6,
        }


def test_serving_rows_x24_to_x29_x35(
    xgboost_job: Callable[..., XGBoostJob], serve_model: ServeFactory
) -> None:
    server = _serve(serve_model, _trained(xgboost_job, "regression"))
    x = make_dataset("regression", rows=3, seed=3).x
    csv_body = _csv(x)

    # X24: unsupported Content-Type
    response = server.invoke("[1, 2]", "application/json")
    assert response.status_code == 415
    assert "application/json is not an accepted ContentType" in response.json()["message"]

    # X25: Accept text/libsvm -> 406 naming the supported types
    response = server.invoke(csv_body, "text/csv", Accept="text/libsvm")
    assert response.status_code == 406
    assert "Please use supported accept types" in response.json()["message"]

    # X26: CSV in, CSV out: one value per line with a trailing newline (the default Accept).
    # Images built before SageMaker's 2022-04 change (and its multi-model server still)
    # answered one comma-joined line; sagedock answers only the current format.
    response = server.invoke(csv_body, "text/csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    lines = response.text.split("\n")
    assert len(lines) == 4 and lines[3] == "" and "," not in response.text
    csv_scores = [float(v) for v in lines[:3]]

    # X27: application/json and application/json;verbose=True
    for accept in ("application/json", "application/json;verbose=True"):
        response = server.invoke(csv_body, "text/csv", Accept=accept)
        assert response.status_code == 200
        assert [p["score"] for p in response.json()["predictions"]] == pytest.approx(csv_scores)

    # X28: no Content-Type at all is libsvm
    response = server.post("/invocations", data=_libsvm(x).encode(), headers={"Accept": "text/csv"})
    assert response.status_code == 200, response.text
    assert [float(v) for v in response.text.split()] == pytest.approx(csv_scores)

    # X29: one column fewer is accepted, one more is 400
    response = server.invoke(_csv(x[:, :-1]), "text/csv")
    assert response.status_code == 200
    response = server.invoke(_csv(np.hstack([x, x[:, :1]])), "text/csv")
    assert response.status_code == 400
    assert response.json()["message"].startswith("Unable to evaluate payload provided")

    # A body that does not parse names the line (400)
    response = server.invoke("1,2,3,4,5\n1,2,x,4,5\n", "text/csv")
    assert response.status_code == 400 and "line 2" in response.json()["message"]

    # X35: recordio-protobuf in, labels ignored
    from sagedock.toolkit.formats.protobuf import write_recordio_protobuf

    buffer = io.BytesIO()
    write_recordio_protobuf(buffer, x, np.arange(3, dtype=np.float32))
    response = server.invoke(buffer.getvalue(), "application/x-recordio-protobuf")
    assert response.status_code == 200
    assert [float(v) for v in response.text.split()] == pytest.approx(csv_scores)


def test_default_invocations_accept_answers_a_missing_or_wildcard_accept(
    xgboost_job: Callable[..., XGBoostJob], serve_model: ServeFactory
) -> None:
    model_dir = _trained(xgboost_job, "regression")
    x = make_dataset("regression", rows=2, seed=3).x
    server = _serve(serve_model, model_dir, SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="application/json")
    for accept in ("*/*", None):  # requests sends */* unless told to send no Accept at all
        response = server.post(
            "/invocations", data=_csv(x), headers={"Content-Type": "text/csv", "Accept": accept}
        )
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        assert len(response.json()["predictions"]) == 2
    response = server.invoke(_csv(x), "text/csv", Accept="text/csv")  # an explicit one wins
    assert response.headers["Content-Type"].startswith("text/csv")
    assert len(response.text.splitlines()) == 2


def test_x23_an_empty_body(
    xgboost_job: Callable[..., XGBoostJob], serve_model: ServeFactory
) -> None:
    server = _serve(serve_model, _trained(xgboost_job, "regression"))
    # 204 No Content, checked before the content type (even one the algorithm refuses).
    for content_type in ("text/csv", "application/json"):
        response = server.invoke(b"", content_type)
        assert response.status_code == 204
        assert response.content == b""
    assert server.invoke("1,2,3,4,5\n", "text/csv").status_code == 200  # the next one predicts


def test_x30_batch_transform_prints_one_prediction_per_line(
    xgboost_job: Callable[..., XGBoostJob], serve_model: ServeFactory
) -> None:
    server = _serve(serve_model, _trained(xgboost_job, "multiclass"), SAGEMAKER_BATCH="true")
    x = make_dataset("multiclass", rows=2, seed=5).x
    response = server.invoke(_csv(x), "text/csv", Accept="application/json")
    assert response.status_code == 200
    lines = response.text.split("\n")
    assert lines[2] == "" and all(
        line.startswith("[") and line.count(", ") == 3 for line in lines[:2]
    )


def test_x31_selectable_outputs(
    xgboost_job: Callable[..., XGBoostJob], serve_model: ServeFactory
) -> None:
    server = _serve(
        serve_model,
        _trained(xgboost_job, "binary"),
        SAGEMAKER_INFERENCE_OUTPUT="predicted_label,probabilities",
    )
    x = make_dataset("binary", rows=2, seed=5).x
    response = server.invoke(_csv(x), "text/csv", Accept="text/csv")
    assert response.status_code == 200
    for line in response.text.split("\n"):
        label, probabilities = line.split(",", 1)
        p = json.loads(probabilities.strip('"'))
        assert int(label) == int(p[1] > 0.5) and p[0] + p[1] == pytest.approx(1.0)


def test_x32_x33_selectable_outputs_limits(
    xgboost_job: Callable[..., XGBoostJob], serve_model: ServeFactory, tmp_path: Path
) -> None:
    import xgboost

    data = make_dataset("binary", rows=60)
    booster = xgboost.train(
        {"objective": "rank:pairwise"}, xgboost.DMatrix(data.x, label=data.y, group=[60]), 2
    )
    ranking = tmp_path / "ranking"
    ranking.mkdir()
    booster.save_model(str(ranking / "xgboost-model.json"))
    server = _serve(serve_model, ranking, SAGEMAKER_INFERENCE_OUTPUT="predicted_label")
    response = server.invoke(_csv(data.x[:2]), "text/csv")
    assert response.status_code == 500
    assert "unsupported for selectable inference" in response.json()["message"]

    server = _serve(
        serve_model,
        _trained(xgboost_job, "regression"),
        SAGEMAKER_INFERENCE_OUTPUT="predicted_score,probability",
    )
    response = server.invoke(_csv(data.x[:1]), "text/csv", Accept="application/jsonlines")
    row: dict[str, Any] = json.loads(response.text)
    assert list(row) == ["predicted_score", "probability"]
    assert row["probability"] is None  # NaN: JSON has no NaN, the codecs write null


def test_x34_several_model_files_are_an_ensemble(
    xgboost_job: Callable[..., XGBoostJob], serve_model: ServeFactory, tmp_path: Path
) -> None:
    import xgboost

    ensemble = tmp_path / "ensemble"
    ensemble.mkdir()
    boosters = []
    for i in range(3):
        data = make_dataset("regression", rows=200, seed=i)
        booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(data.x, label=data.y), 5)
        booster.save_model(str(ensemble / f"xgboost-model-{i}.json"))
        boosters.append(booster)
    x = make_dataset("regression", rows=4, seed=9).x
    expected = np.mean([b.predict(xgboost.DMatrix(x)) for b in boosters], axis=0)
    server = _serve(serve_model, ensemble)
    response = server.invoke(_csv(x), "text/csv")
    assert [float(v) for v in response.text.split()] == pytest.approx(expected.tolist(), rel=1e-5)


def test_a_multi_model_endpoint_answers_like_a_single_model_endpoint(
    xgboost_job: Callable[..., XGBoostJob], serve_model: ServeFactory, tmp_path: Path
) -> None:
    # SageMaker's multi-model server quirks are not reproduced (README): no comma-joined CSV
    # line, no bare JSON array, no 415 for the other Accept types.
    models = tmp_path / "models"
    models.mkdir()
    model_dir = _trained(xgboost_job, "regression")
    (models / "m1").mkdir()
    (models / "m1" / "xgboost-model").write_bytes((model_dir / "xgboost-model").read_bytes())
    x = make_dataset("regression", rows=2, seed=3).x
    single = _serve(serve_model, model_dir)
    multi = _serve(serve_model, models, SAGEMAKER_MULTI_MODEL="true")
    for accept in ("text/csv", "application/json", "application/jsonlines", "text/libsvm"):
        expected = single.invoke(_csv(x), "text/csv", Accept=accept)
        got = multi.invoke(
            _csv(x), "text/csv", Accept=accept, **{"X-Amzn-SageMaker-Target-Model": "m1"}
        )
        assert got.status_code == expected.status_code
        if got.ok:
            assert got.content == expected.content
        else:  # the same error (each with its own request id)
            assert got.json()["message"] == expected.json()["message"]
    assert single.invoke(_csv(x), "text/csv").text.count("\n") == 2


def test_legacy_and_pickled_artifacts_are_served(
    serve_model: ServeFactory, shared_testdata: Path
) -> None:
    for name in ("saved_booster", "pickled_model"):
        model_dir = shared_testdata / "xgboost" / "models" / name
        server = _serve(serve_model, model_dir)
        response = server.invoke("0.1,0.2,0.3,0.4\n", "text/csv", Accept="application/json")
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"][0]["score"]) == 3
