"""Channels -> XGBoost matrices (sagedock.containers.xgboost.data)."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost

from sagedock.containers.data.batch import Batch
from sagedock.containers.xgboost import data as data_module
from sagedock.containers.xgboost.data import build_matrix


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 6)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    y = (np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) > 0).astype(np.float32)
    return x, y


def test_quantile_matrix_of_batches_equals_the_matrix_of_the_whole_array() -> None:
    x, y = _data()
    batches = [Batch(x[i : i + 700], y[i : i + 700]) for i in range(0, len(y), 700)]
    matrix = build_matrix(batches, num_cols=6, quantile=True)
    whole = xgboost.QuantileDMatrix(x, label=y, missing=np.nan)
    for ours, reference in zip(matrix.get_quantile_cut(), whole.get_quantile_cut(), strict=True):
        np.testing.assert_array_equal(ours, reference)
    params = {"max_depth": 3, "objective": "binary:logistic"}
    model = xgboost.train(params, matrix, num_boost_round=5)
    assert model.save_raw("json") == xgboost.train(params, whole, num_boost_round=5).save_raw(
        "json"
    )


def test_a_model_trained_on_a_quantile_matrix_takes_unnamed_features() -> None:
    x, y = _data()
    matrix = build_matrix([Batch(x, y)], num_cols=6, quantile=True)
    assert matrix.feature_names is None and matrix.feature_types is None
    model = xgboost.train({"max_depth": 2}, matrix, num_boost_round=2)
    assert model.feature_names is None
    assert model.predict(xgboost.DMatrix(x[:4])).shape == (4,)


def test_the_validation_matrix_shares_the_training_bins() -> None:
    x, y = _data()
    train = build_matrix([Batch(x[:2000], y[:2000])], num_cols=6, quantile=True)
    validation = build_matrix([Batch(x[2000:], y[2000:])], num_cols=6, quantile=True, ref=train)
    for ours, reference in zip(
        validation.get_quantile_cut(), train.get_quantile_cut(), strict=True
    ):
        np.testing.assert_array_equal(ours, reference)
    assert validation.feature_names is None


def _frames_made(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Columns of each DataFrame build_matrix hands XGBoost, recorded."""
    import pandas

    made: list[int] = []

    def frame(values: np.ndarray, copy: bool) -> pandas.DataFrame:
        made.append(values.shape[1])
        return pandas.DataFrame(values, copy=copy)

    monkeypatch.setattr(data_module, "_frame_maker", lambda: frame)
    return made


def test_blocks_of_few_rows_reach_xgboost_as_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    # XGBoost's DataFrame reader costs ~60 us per column of each block: two rows of 500,000
    # columns (a valid CSV whose first row is 1.5 MB) took 100 s to build as frames.
    made = _frames_made(monkeypatch)
    x = np.random.default_rng(0).random((4, 20_000), dtype=np.float32)
    matrix = build_matrix([Batch(x, np.arange(4.0))], num_cols=20_000, quantile=True)
    assert made == [] and matrix.num_col() == 20_000
    whole = xgboost.QuantileDMatrix(x, label=np.arange(4.0), missing=np.nan)
    for ours, reference in zip(matrix.get_quantile_cut(), whole.get_quantile_cut(), strict=True):
        np.testing.assert_array_equal(ours, reference)


def test_blocks_of_many_rows_reach_xgboost_as_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    made = _frames_made(monkeypatch)
    x, y = _data()
    build_matrix([Batch(x, y)], num_cols=6, quantile=True)
    assert made and set(made) == {6}
