"""Loading every artifact format SageMaker's XGBoost versions wrote, and ensembles (X34)."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from sagedock.containers.xgboost.model import FeatureCountError, load_model
from sagedock.serving.errors import ModelError
from sagedock.toolkit.errors import UserError
from tests.fixtures.xgboost import make_dataset

xgboost = pytest.importorskip("xgboost")


def _train(kind: str = "regression", rounds: int = 5, seed: int = 0, **params: object):  # type: ignore[no-untyped-def]
    data = make_dataset(kind, rows=200, seed=seed)  # type: ignore[arg-type]
    params = {"max_depth": 3, **params}
    return xgboost.train(params, xgboost.DMatrix(data.x, label=data.y), rounds), data


@pytest.mark.parametrize("suffix", ["", ".json", ".ubj", ".deprecated"])
def test_native_formats_load(tmp_path: Path, suffix: str) -> None:
    booster, data = _train()
    saved = tmp_path / f"m{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # XGBoost warns about the default and legacy formats
        booster.save_model(str(saved))
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    saved.rename(model_dir / "xgboost-model")
    model = load_model(model_dir)
    assert model.format == "xgb_format"
    np.testing.assert_allclose(
        model.predict(data.x), booster.predict(xgboost.DMatrix(data.x)), rtol=1e-6
    )


def test_a_pickled_booster_loads_and_is_feature_checked(tmp_path: Path) -> None:
    booster, _ = _train()
    (tmp_path / "xgboost-model").write_bytes(pickle.dumps(booster, protocol=4))
    model = load_model(tmp_path)
    assert model.format == "pkl_format"
    model.check_features(5, "csv")
    model.check_features(4, "csv")  # one column short is accepted, as in SageMaker
    with pytest.raises(FeatureCountError, match="Feature size of csv inference data 7"):
        model.check_features(7, "csv")
    model.check_features(6, "libsvm")
    with pytest.raises(FeatureCountError, match="Feature size of libsvm inference data 7"):
        model.check_features(7, "libsvm")


def test_shared_legacy_and_pickled_models_load(shared_testdata: Path) -> None:
    base = shared_testdata / "xgboost" / "models"
    legacy = load_model(base / "saved_booster")
    pickled = load_model(base / "pickled_model")
    assert (legacy.format, pickled.format) == ("xgb_format", "pkl_format")
    assert legacy.objective == pickled.objective == "multi:softprob"
    x = np.random.default_rng(0).random((4, legacy.num_features)).astype(np.float32)
    assert legacy.predict(x).shape == (4, legacy.num_class)


def test_an_ensemble_averages_predictions(tmp_path: Path) -> None:
    boosters = [_train(seed=s)[0] for s in range(3)]
    for i, b in enumerate(boosters):
        b.save_model(str(tmp_path / f"xgboost-model-{i}.json"))
    (tmp_path / ".hidden").write_text("ignored")
    (tmp_path / "code").mkdir()
    x = make_dataset(rows=10).x
    model = load_model(tmp_path)
    assert len(model.boosters) == 3
    expected = np.mean([b.predict(xgboost.DMatrix(x)) for b in boosters], axis=0)
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-6)
    assert len(load_model(tmp_path, ensemble=False).boosters) == 1


def test_an_ensemble_of_class_predictions_votes(tmp_path: Path) -> None:
    for i in range(3):
        booster, _ = _train("multiclass", seed=i, objective="multi:softmax", num_class=4)
        booster.save_model(str(tmp_path / f"m{i}.json"))
    x = make_dataset("multiclass", rows=20, seed=9).x
    model = load_model(tmp_path)
    votes = np.stack([b.booster.predict(xgboost.DMatrix(x)) for b in model.boosters])
    got = model.predict(x)
    for row in range(20):
        values, counts = np.unique(votes[:, row], return_counts=True)
        assert got[row] == values[np.argmax(counts)]


def test_a_file_that_is_not_a_model_is_named(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match=r"model file notes\.txt: not an XGBoost model"):
        load_model(tmp_path)
    with pytest.raises(ModelError, match=r"no model in .*expected xgboost-model.*does not exist"):
        load_model(tmp_path / "missing")


def test_an_ensemble_of_binary_hinge_models_votes(tmp_path: Path) -> None:
    # binary:hinge predicts the class (0 or 1): the ensemble answers the majority class, never
    # a mean such as 0.67.
    for i in range(3):
        booster, _ = _train("binary", rounds=3, seed=i, objective="binary:hinge", max_depth=2)
        booster.save_model(str(tmp_path / f"xgboost-model-{i}.json"))
    x = make_dataset("binary", rows=200, seed=9).x
    model = load_model(tmp_path)
    assert model.objective == "binary:hinge"
    votes = np.stack([b.booster.predict(xgboost.DMatrix(x)) for b in model.boosters])
    assert set(np.unique(votes)) == {0.0, 1.0}
    split = (votes.min(axis=0) != votes.max(axis=0)).sum()
    assert split > 0  # the members disagree on some rows: a mean would not be a class there
    np.testing.assert_array_equal(model.predict(x), (votes.sum(axis=0) >= 2).astype(np.float32))
