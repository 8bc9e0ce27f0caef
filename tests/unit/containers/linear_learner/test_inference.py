"""Linear Learner's artifact and serving hooks: SageMaker's request and response formats
(sagedock.containers.linear_learner.model / .inference)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given
from hypothesis import strategies as st

from sagedock.containers.linear_learner import inference
from sagedock.containers.linear_learner.model import (
    ARTIFACT_NAME,
    LinearModel,
    Scorer,
    read_model,
    save_model,
)
from sagedock.serving.errors import BadRequest, ModelError, NotAcceptable, UnsupportedMediaType
from sagedock.serving.handler import NoContent
from sagedock.toolkit.errors import UserError
from sagedock.toolkit.formats.protobuf import encode_recordio_protobuf, read_recordio_protobuf
from tests.fuzz import any_bytes, outcome, property_settings

RNG = np.random.default_rng(4)
MEAN = np.array([1.0, -2.0, 0.5], dtype=np.float32)
SCALE = np.array([2.0, 0.5, 1.0], dtype=np.float32)


def _model(predictor_type: str, loss: str, outputs: int = 1, **extra: object) -> LinearModel:
    return LinearModel(
        predictor_type=predictor_type,  # type: ignore[arg-type]
        loss=loss,
        weights=RNG.standard_normal((3, outputs)).astype(np.float32),
        bias=RNG.standard_normal(outputs).astype(np.float32),
        feature_mean=MEAN,
        feature_scale=SCALE,
        **extra,  # type: ignore[arg-type]
    )


def _normalised_scores(model: LinearModel, x: np.ndarray) -> np.ndarray:
    """What the trained weights give on the features training normalised."""
    raw = ((x - model.feature_mean) / model.feature_scale) @ model.weights + model.bias
    if model.predictor_type == "regressor":
        return raw * model.label_scale + model.label_mean
    return raw


def _served(tmp_path: Path, model: LinearModel) -> Scorer:
    save_model(model, tmp_path / ARTIFACT_NAME)
    return inference.model_fn(tmp_path)


def test_the_artifact_is_a_zip_named_as_sagemakers_that_loads_without_pickle(
    tmp_path: Path,
) -> None:
    model = _model("binary_classifier", "logistic", threshold=0.3, hyperparameters={"l1": 0.0})
    path = save_model(model, tmp_path / ARTIFACT_NAME)
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == [
            "bias.npy",
            "feature_mean.npy",
            "feature_scale.npy",
            "manifest.json",
            "weights.npy",
        ]
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["predictor_type"] == "binary_classifier" and manifest["feature_dim"] == 3
    assert manifest["threshold"] == 0.3 and manifest["hyperparameters"] == {"l1": 0.0}
    again = read_model(path)
    np.testing.assert_array_equal(again.weights, model.weights)
    np.testing.assert_array_equal(again.feature_scale, model.feature_scale)
    assert not (tmp_path / f"{ARTIFACT_NAME}.partial").exists()


def test_a_pickled_member_is_refused(tmp_path: Path) -> None:
    path = save_model(_model("regressor", "squared_loss"), tmp_path / ARTIFACT_NAME)
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["bias.npy"] = pickled.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(UserError, match="not a Linear Learner model"):
        read_model(path)


def test_model_fn_finds_the_artifact_beside_sdk_local_modes_archives(tmp_path: Path) -> None:
    (tmp_path / "model.tar.gz").write_bytes(b"\x1f\x8b")
    (tmp_path / "output.tar.gz").write_bytes(b"\x1f\x8b")
    save_model(_model("regressor", "squared_loss"), tmp_path / ARTIFACT_NAME)
    assert inference.model_fn(tmp_path).feature_dim == 3


def test_model_fn_without_the_artifact_lists_what_it_found(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match=r"model_algo-1.*weights\.bin|weights\.bin.*model_algo-1"):
        inference.model_fn(tmp_path)
    (tmp_path / ARTIFACT_NAME).write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a Linear Learner model"):
        inference.model_fn(tmp_path)


@pytest.mark.parametrize(
    ("predictor_type", "loss", "outputs"),
    [
        ("binary_classifier", "logistic", 1),
        ("binary_classifier", "hinge_loss", 1),
        ("multiclass_classifier", "softmax_loss", 4),
        ("regressor", "squared_loss", 1),
    ],
)
def test_scores_fold_the_scalers_in_and_equal_the_normalised_computation(
    tmp_path: Path, predictor_type: str, loss: str, outputs: int
) -> None:
    extra = {"label_mean": 10.0, "label_scale": 3.0} if predictor_type == "regressor" else {}
    model = _model(predictor_type, loss, outputs, **extra)
    scorer = _served(tmp_path, model)
    x = RNG.standard_normal((6, 3)).astype(np.float32)
    raw = _normalised_scores(model, x)
    scores = scorer.scores(x)
    if loss == "logistic":
        np.testing.assert_allclose(scores, 1 / (1 + np.exp(-raw)), rtol=1e-5)
    elif loss == "softmax_loss":
        expected = np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(scores, expected, rtol=1e-5)
    else:  # hinge: the margin, not a probability; regression: on the label's scale
        np.testing.assert_allclose(scores, raw, rtol=1e-4, atol=1e-5)
    sparse = scorer.scores(scipy.sparse.csr_matrix(x))
    np.testing.assert_allclose(sparse, scores, rtol=1e-5)


def _invoke(scorer: Scorer, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    data = inference.input_fn(body, content_type)
    assert not isinstance(data, NoContent)
    return inference.output_fn(inference.predict_fn(data, scorer), accept)


def test_binary_csv_request_json_answer_uses_the_calibrated_threshold(tmp_path: Path) -> None:
    model = _model("binary_classifier", "logistic", threshold=0.8)
    scorer = _served(tmp_path, model)
    x = RNG.standard_normal((20, 3)).astype(np.float32)
    body = "\n".join(",".join(f"{v:.7g}" for v in row) for row in x).encode()
    answer, mime = _invoke(scorer, body, "text/csv", "application/json")
    assert mime == "application/json"
    predictions = json.loads(answer)["predictions"]
    assert len(predictions) == 20 and set(predictions[0]) == {"score", "predicted_label"}
    for entry in predictions:
        assert entry["predicted_label"] == int(entry["score"] >= 0.8)  # not a fixed 0.5


def test_multiclass_scores_are_a_distribution_and_the_label_its_argmax(tmp_path: Path) -> None:
    scorer = _served(tmp_path, _model("multiclass_classifier", "softmax_loss", 4, num_classes=4))
    body = json.dumps({"instances": [{"features": [0.1, 0.2, 0.3]}, {"features": [3, 2, 1]}]})
    answer, _ = _invoke(scorer, body.encode(), "application/json", "application/json")
    for entry in json.loads(answer)["predictions"]:
        assert len(entry["score"]) == 4 and sum(entry["score"]) == pytest.approx(1, abs=1e-5)
        assert entry["predicted_label"] == int(np.argmax(entry["score"]))


def test_a_regressor_answers_the_score_only(tmp_path: Path) -> None:
    scorer = _served(tmp_path, _model("regressor", "squared_loss"))
    answer, _ = _invoke(scorer, b"1,2,3", "text/csv", "application/json")
    (entry,) = json.loads(answer)["predictions"]
    assert set(entry) == {"score"}


def test_every_json_instance_form_gives_the_same_rows(tmp_path: Path) -> None:
    scorer = _served(tmp_path, _model("binary_classifier", "logistic"))
    forms = [
        {"features": [1.5, 0.0, -2.0]},
        {"data": {"features": {"values": [1.5, 0.0, -2.0]}}},
        {"data": {"features": {"keys": [0, 2], "shape": [3], "values": [1.5, -2.0]}}},
    ]
    answer, _ = _invoke(
        scorer, json.dumps({"instances": forms}).encode(), "application/json", "application/json"
    )
    scores = [entry["score"] for entry in json.loads(answer)["predictions"]]
    assert scores[0] == pytest.approx(scores[1]) == pytest.approx(scores[2])
    lines = b"\n".join(json.dumps(form).encode() for form in forms)
    answer, mime = _invoke(scorer, lines, "application/jsonlines", "application/jsonlines")
    assert mime == "application/jsonlines"
    assert [json.loads(line)["score"] for line in answer.splitlines()] == pytest.approx(scores)


def test_recordio_protobuf_in_and_out_dense_and_sparse(tmp_path: Path) -> None:
    scorer = _served(tmp_path, _model("binary_classifier", "logistic"))
    x = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, -1.0]], dtype=np.float32)
    for features in (x, scipy.sparse.csr_matrix(x)):
        body = encode_recordio_protobuf(features)
        answer, mime = _invoke(
            scorer, body, "application/x-recordio-protobuf", "application/x-recordio-protobuf"
        )
        assert mime == "application/x-recordio-protobuf"
        records = list(read_recordio_protobuf(io.BytesIO(answer)))
        scores = [float(r.label["score"].values[0]) for r in records]
        labels = [float(r.label["predicted_label"].values[0]) for r in records]
        assert scores == pytest.approx(scorer.scores(x)[:, 0].tolist(), rel=1e-6)
        assert labels == [float(s >= 0.5) for s in scores]
        assert records[0].label["predicted_label"].dtype == "float32"


def test_text_csv_answers_are_refused_with_406(tmp_path: Path) -> None:
    scorer = _served(tmp_path, _model("binary_classifier", "logistic"))
    prediction = inference.predict_fn(inference.input_fn(b"1,2,3", "text/csv"), scorer)
    with pytest.raises(NotAcceptable, match="text/csv output is not supported"):
        inference.output_fn(prediction, "text/csv")


def test_a_wrong_feature_count_is_a_400_naming_both_counts(tmp_path: Path) -> None:
    scorer = _served(tmp_path, _model("binary_classifier", "logistic"))
    with pytest.raises(BadRequest, match=r"4 features per row.*trained on 3"):
        inference.predict_fn(inference.input_fn(b"1,2,3,4", "text/csv"), scorer)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"rows": []}', '"instances"'),
        (b'{"instances": [{"features": [1, "x", 3]}]}', "instance 0.*not a list of numbers"),
        (b'{"instances": [{"features": [1, 2]}, {"features": [1, 2, 3]}]}', "different feature"),
        (
            b'{"instances": [{"data": {"features": {"keys": [5], "shape": [3], "values": [1]}}}]}',
            "outside",
        ),
        (b'{"instances": [{"data": {"features": {"keys": [0], "values": [1]}}}]}', '"shape"'),
        (b'{"instances": [{"features": [1e400, 0, 0]}]}', "finite"),
        (b"\xff\xfe", "UTF-8"),
        (b"[" * 100000, "nested"),
    ],
)
def test_a_json_body_that_is_not_instances_is_a_400_saying_why(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        inference.input_fn(body, "application/json")


def test_an_empty_body_is_no_content_and_another_type_is_415() -> None:
    assert isinstance(inference.input_fn(b"", "text/csv"), NoContent)
    with pytest.raises(UnsupportedMediaType, match="text/libsvm"):
        inference.input_fn(b"1:2", "text/libsvm")


@pytest.mark.parametrize("content_type", list(inference.ACCEPTED_CONTENT_TYPES))
def test_any_body_is_rows_or_a_4xx(content_type: str) -> None:
    valid = {
        "text/csv": st.just(b"1,2,3\n4,5,6\n"),
        "application/json": st.just(b'{"instances": [{"features": [1, 2, 3]}]}'),
        "application/jsonlines": st.just(b'{"features": [1, 2, 3]}\n{"features": [4, 5, 6]}\n'),
        "application/x-recordio-protobuf": st.just(
            encode_recordio_protobuf(np.ones((2, 3), np.float32))
        ),
    }[content_type]

    @property_settings(examples=60)
    @given(any_bytes(valid))
    def check(body: bytes) -> None:
        outcome(lambda: inference.input_fn(body, content_type), (BadRequest,))

    check()
