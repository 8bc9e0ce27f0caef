"""The serving hooks of the built-in XGBoost, called as the serving runtime calls them
(checklist rows X24-X35 at hook level; tests/integration/containers/xgboost/test_serve.py runs
them behind the real server)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from sagedock.containers.xgboost import inference, outputs
from sagedock.serving.errors import BadRequest, ModelError, NotAcceptable, UnsupportedMediaType
from tests.fixtures.xgboost import make_dataset

xgboost = pytest.importorskip("xgboost")


def _model_dir(tmp_path: Path, objective: str, **params: Any) -> Path:
    kind = "regression" if objective.startswith("reg:") else "binary"
    if objective.startswith("multi:"):
        kind = "multiclass"
    data = make_dataset(kind, rows=200)  # type: ignore[arg-type]
    booster = xgboost.train(
        {"objective": objective, "max_depth": 3, **params},
        xgboost.DMatrix(data.x, label=data.y),
        5,
    )
    model_dir = tmp_path / objective.replace(":", "_")
    model_dir.mkdir()
    booster.save_model(str(model_dir / "xgboost-model.ubj"))
    (model_dir / "xgboost-model.ubj").rename(model_dir / "xgboost-model")
    return model_dir


def _invoke(
    model: Any, body: bytes | str, content_type: str, accept: str, batch: bool = False
) -> tuple[bytes, str]:
    features = inference.input_fn(body, content_type)
    prediction = inference.predict_fn(features, model)
    return inference.output_fn(prediction, accept, SimpleNamespace(batch=batch))


@pytest.fixture
def regression(tmp_path: Path) -> Any:
    return inference.model_fn(_model_dir(tmp_path, "reg:squarederror"))


@pytest.fixture
def binary(tmp_path: Path) -> Any:
    return inference.model_fn(_model_dir(tmp_path, "binary:logistic"))


@pytest.fixture
def softprob(tmp_path: Path) -> Any:
    return inference.model_fn(_model_dir(tmp_path, "multi:softprob", num_class=4))


CSV_ROWS = "0.1,0.2,0.3,0.4,0.5\n-0.5,0.5,0.0,0.1,0.9\n"
LIBSVM_ROWS = "0:0.1 1:0.2 2:0.3 3:0.4 4:0.5\n0:-0.5 1:0.5 2:0.0 3:0.1 4:0.9\n"


def test_x26_csv_answers_one_value_per_line_with_a_trailing_newline(regression: Any) -> None:
    body, mime = _invoke(regression, CSV_ROWS, "text/csv", "text/csv")
    assert mime == "text/csv"
    lines = body.decode().split("\n")
    assert len(lines) == 3 and lines[2] == ""
    values = [float(v) for v in lines[:2]]
    expected = regression.model.boosters[0].booster.predict(
        xgboost.DMatrix(np.loadtxt(io.StringIO(CSV_ROWS), delimiter=",", dtype=np.float32))
    )
    # repr of the double of each float32 prediction, as SageMaker's tolist() gives
    assert lines[0] == repr(float(expected[0]))
    np.testing.assert_allclose(values, expected, rtol=1e-7)


def test_x27_json_answers_predictions_with_scores(regression: Any, softprob: Any) -> None:
    body, mime = _invoke(regression, CSV_ROWS, "text/csv", "application/json")
    document = json.loads(body)
    assert mime == "application/json"
    assert [list(p) for p in document["predictions"]] == [["score"], ["score"]]
    body, _ = _invoke(softprob, CSV_ROWS, "text/csv", "application/json")
    scores = [p["score"] for p in json.loads(body)["predictions"]]
    assert len(scores[0]) == 4 and math.isclose(sum(scores[0]), 1.0, rel_tol=1e-5)


def test_jsonlines_and_recordio_protobuf_answers(regression: Any) -> None:
    body, _ = _invoke(regression, CSV_ROWS, "text/csv", "application/jsonlines")
    rows = [json.loads(line) for line in body.decode().splitlines()]
    assert [list(r) for r in rows] == [["score"], ["score"]]
    body, mime = _invoke(regression, CSV_ROWS, "text/csv", "application/x-recordio-protobuf")
    from sagedock.toolkit.formats.protobuf import read_recordio_protobuf

    records = list(read_recordio_protobuf(io.BytesIO(body)))
    assert mime == "application/x-recordio-protobuf" and len(records) == 2
    assert records[0].label["score"].values.shape == (1,)


def test_x28_libsvm_input_gives_the_same_predictions_as_csv(regression: Any) -> None:
    from_csv, _ = _invoke(regression, CSV_ROWS, "text/csv", "text/csv")
    from_libsvm, _ = _invoke(regression, LIBSVM_ROWS.encode(), "text/libsvm", "text/csv")
    with_label, _ = _invoke(
        regression,
        "".join("1 " + line + "\n" for line in LIBSVM_ROWS.splitlines()).encode(),
        "text/x-libsvm",
        "text/csv",
    )
    assert from_csv == from_libsvm == with_label


def test_x35_recordio_protobuf_requests_ignore_labels(regression: Any) -> None:
    from sagedock.toolkit.formats.protobuf import write_recordio_protobuf

    x = np.loadtxt(io.StringIO(CSV_ROWS), delimiter=",", dtype=np.float32)
    buffer = io.BytesIO()
    write_recordio_protobuf(buffer, x, np.array([7.0, 8.0], dtype=np.float32))
    from_pb, _ = _invoke(
        regression, buffer.getvalue(), "application/x-recordio-protobuf", "text/csv"
    )
    from_csv, _ = _invoke(regression, CSV_ROWS, "text/csv", "text/csv")
    assert from_pb == from_csv


class _ContentType(str):
    """The serving runtime's ContentType: the bare type, and the header as sent."""

    header: str

    def __new__(cls, header: str) -> _ContentType:
        self = super().__new__(cls, header.split(";")[0].strip())
        self.header = header
        return self


def test_x24_unsupported_content_type_is_415(regression: Any) -> None:
    with pytest.raises(UnsupportedMediaType, match="application/json is not an accepted"):
        inference.input_fn(b"[1,2]", "application/json")
    with pytest.raises(UnsupportedMediaType, match="label_size must be equal to 1"):
        inference.input_fn(b"1,2", _ContentType("text/csv; label_size=2"))
    features = inference.input_fn(b"1,2", _ContentType("text/csv; label_size=1; charset=utf-8"))
    assert features.matrix.shape == (1, 2)


def test_a_body_that_does_not_parse_is_400_naming_the_line(regression: Any) -> None:
    with pytest.raises(BadRequest, match="line 2"):
        inference.input_fn("1,2,3\n4,x,6\n", "text/csv")


def test_x29_one_column_short_is_accepted_one_more_is_400(regression: Any) -> None:
    short, _ = _invoke(regression, "0.1,0.2,0.3,0.4\n", "text/csv", "text/csv")
    assert len(short.decode().splitlines()) == 1
    with pytest.raises(BadRequest, match=r"^Unable to evaluate payload provided"):
        _invoke(regression, "0.1,0.2,0.3,0.4,0.5,0.6\n", "text/csv", "text/csv")


def test_x25_unsupported_accept_is_406_after_predicting(regression: Any) -> None:
    features = inference.input_fn(CSV_ROWS, "text/csv")
    prediction = inference.predict_fn(features, regression)
    with pytest.raises(NotAcceptable) as info:
        inference.output_fn(prediction, "text/libsvm")
    assert info.value.message == (
        "Accept type text/libsvm is not supported. Please use supported accept types: "
        "['text/csv', 'application/json', 'application/jsonlines', "
        "'application/x-recordio-protobuf']"
    )


def test_x30_batch_transform_prints_str_of_each_prediction(regression: Any, softprob: Any) -> None:
    body, _ = _invoke(regression, CSV_ROWS, "text/csv", "application/json", batch=True)
    lines = body.decode().split("\n")
    assert len(lines) == 3 and lines[2] == "" and float(lines[0])
    body, _ = _invoke(softprob, CSV_ROWS, "text/csv", "text/csv", batch=True)
    first = body.decode().splitlines()[0]
    assert first.startswith("[") and first.endswith("]") and first.count(", ") == 3


def test_x31_selectable_outputs_as_csv(
    binary: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SAGEMAKER_INFERENCE_OUTPUT", "predicted_label, Probabilities")
    model = inference.model_fn(_dir_of(binary, tmp_path))
    body, _ = _invoke(model, CSV_ROWS, "text/csv", "text/csv")
    lines = body.decode().split("\n")
    assert len(lines) == 2  # no trailing newline outside batch transform
    label, probabilities = lines[0].split(",", 1)
    assert label in ("0", "1")
    p = json.loads(probabilities.strip('"'))
    assert len(p) == 2 and math.isclose(p[0] + p[1], 1.0)
    assert int(label) == int(p[1] > 0.5)
    batch, _ = _invoke(model, CSV_ROWS, "text/csv", "text/csv", batch=True)
    assert batch.decode().endswith("\n")


def _dir_of(model: Any, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    target.mkdir(exist_ok=True)
    model.model.boosters[0].booster.save_model(str(target / "xgboost-model.json"))
    return target


def test_x31_selectable_outputs_in_every_format(
    binary: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGEMAKER_INFERENCE_OUTPUT", "predicted_label,probability,labels")
    model = inference.model_fn(_dir_of(binary, tmp_path))
    body, _ = _invoke(model, CSV_ROWS, "text/csv", "application/json")
    first = json.loads(body)["predictions"][0]
    assert list(first) == ["predicted_label", "probability", "labels"] and first["labels"] == [0, 1]
    body, _ = _invoke(model, CSV_ROWS, "text/csv", "application/jsonlines")
    assert len(body.decode().splitlines()) == 2
    body, _ = _invoke(model, CSV_ROWS, "text/csv", "application/x-recordio-protobuf")
    from sagedock.toolkit.formats.protobuf import read_recordio_protobuf

    record = next(iter(read_recordio_protobuf(io.BytesIO(body))))
    assert set(record.label) == {"predicted_label", "probability", "labels"}


def test_x32_selectable_outputs_with_an_unsupported_objective_is_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGEMAKER_INFERENCE_OUTPUT", "predicted_label")
    data = make_dataset("binary", rows=60)
    dtrain = xgboost.DMatrix(data.x, label=data.y, group=[60])
    booster = xgboost.train({"objective": "rank:pairwise"}, dtrain, 2)
    booster.save_model(str(tmp_path / "xgboost-model.json"))
    model = inference.model_fn(tmp_path)
    with pytest.raises(ModelError, match="Objective `rank:pairwise` unsupported for selectable"):
        _invoke(model, CSV_ROWS, "text/csv", "text/csv")


def test_x33_an_incompatible_key_is_nan() -> None:
    rows = outputs.selectable_rows(
        np.array([1.5]), "reg:squarederror", 0, ["predicted_score", "probability"]
    )
    assert rows[0]["predicted_score"] == 1.5 and math.isnan(rows[0]["probability"])


@pytest.mark.parametrize(
    ("objective", "pred", "expected"),
    [
        (
            "binary:logistic",
            0.7,
            {"predicted_label": 1, "probability": 0.7, "raw_scores": [0.30000000000000004, 0.7]},
        ),
        ("binary:logitraw", -0.2, {"predicted_label": 0, "raw_score": -0.2}),
        ("multi:softmax", 2.0, {"predicted_label": 2.0, "labels": [0, 1, 2]}),
    ],
)
def test_selectable_semantics(objective: str, pred: float, expected: dict[str, Any]) -> None:
    row = outputs.selectable_rows(np.array([pred]), objective, 3, list(expected))[0]
    assert row == expected


def test_softprob_selectable_semantics() -> None:
    row = outputs.selectable_rows(
        np.array([[0.2, 0.5, 0.3]]),
        "multi:softprob",
        3,
        ["predicted_label", "probability", "probabilities", "raw_score", "labels"],
    )[0]
    assert row["predicted_label"] == 1 and row["probability"] == 0.5 and row["raw_score"] == 0.5
    assert row["labels"] == [0, 1, 2] and len(row["probabilities"]) == 3


def test_x31_selectable_csv_quotes_lists_exactly_as_sagemaker(
    binary: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (
        outputs.encode_selectable(
            [
                {"predicted_label": 1, "probabilities": [0.4, 0.6]},
                {"predicted_label": 0, "probabilities": [0.9, 0.1]},
            ],
            outputs.CSV,
            batch=False,
        )
        == b'1,"[0.4, 0.6]"\n0,"[0.9, 0.1]"'
    )
    monkeypatch.setenv("SAGEMAKER_INFERENCE_OUTPUT", "predicted_label,probabilities")
    model = inference.model_fn(_dir_of(binary, tmp_path))
    body, _ = _invoke(model, CSV_ROWS, "text/csv", "text/csv")
    x = np.loadtxt(io.StringIO(CSV_ROWS), delimiter=",", dtype=np.float32)
    p = [float(v) for v in binary.model.boosters[0].booster.predict(xgboost.DMatrix(x))]
    # str() of the Python list of doubles, in double quotes; rows joined by a bare newline
    assert body.decode() == "\n".join(f'{int(v > 0.5)},"[{1.0 - v!r}, {v!r}]"' for v in p)


def test_x33_a_key_the_objective_cannot_give_is_nan_in_csv(
    regression: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGEMAKER_INFERENCE_OUTPUT", "predicted_score,probability")
    target = tmp_path / "copy"
    target.mkdir()
    regression.model.boosters[0].booster.save_model(str(target / "xgboost-model.json"))
    model = inference.model_fn(target)
    body, _ = _invoke(model, CSV_ROWS, "text/csv", "text/csv", batch=True)
    x = np.loadtxt(io.StringIO(CSV_ROWS), delimiter=",", dtype=np.float32)
    scores = regression.model.boosters[0].booster.predict(xgboost.DMatrix(x))
    assert body.decode() == "".join(f"{float(v)!r},nan\n" for v in scores)


@pytest.mark.parametrize("delimiter", ["\t", ";", "|", " "])
def test_csv_requests_use_the_delimiter_sniffed_from_the_first_line(
    regression: Any, delimiter: str
) -> None:
    expected, _ = _invoke(regression, CSV_ROWS, "text/csv", "text/csv")
    body = CSV_ROWS.replace(",", delimiter)
    assert _invoke(regression, body, "text/csv", "text/csv")[0] == expected
    # Sniffed once, from the first line: a second line written with commas is not split.
    with pytest.raises(BadRequest, match="line 2"):
        inference.input_fn(body.split("\n")[0] + "\n" + CSV_ROWS.split("\n")[1], "text/csv")


def test_a_one_column_csv_request_needs_no_delimiter(tmp_path: Path) -> None:
    data = make_dataset("regression", rows=100, cols=2)  # the label needs two; one is used
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(data.x[:, :1], label=data.y), 3)
    booster.save_model(str(tmp_path / "xgboost-model.json"))
    model = inference.model_fn(tmp_path)
    body, _ = _invoke(model, "0.5\n-0.25\n", "text/csv", "text/csv")
    expected = booster.predict(xgboost.DMatrix(np.array([[0.5], [-0.25]], dtype=np.float32)))
    assert body.decode() == "".join(f"{float(v)!r}\n" for v in expected)


def test_ensemble_env_false_serves_only_the_first_model_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boosters = []
    for seed in range(3):
        data = make_dataset("regression", rows=200, seed=seed)
        booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(data.x, label=data.y), 4)
        booster.save_model(str(tmp_path / f"xgboost-model-{seed}.json"))
        boosters.append(booster)
    x = np.loadtxt(io.StringIO(CSV_ROWS), delimiter=",", dtype=np.float32)
    first = boosters[0].predict(xgboost.DMatrix(x))
    mean = np.mean([b.predict(xgboost.DMatrix(x)) for b in boosters], axis=0)
    for value, expected in (("false", first), ("FALSE", first), ("true", mean), ("", mean)):
        monkeypatch.setenv("SAGEMAKER_INFERENCE_ENSEMBLE", value)
        body, _ = _invoke(inference.model_fn(tmp_path), CSV_ROWS, "text/csv", "text/csv")
        np.testing.assert_allclose([float(v) for v in body.split()], expected, rtol=1e-6)
    monkeypatch.delenv("SAGEMAKER_INFERENCE_ENSEMBLE")
    assert len(inference.model_fn(tmp_path).model.boosters) == 3  # the default: all of them
