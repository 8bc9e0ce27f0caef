"""Upstream's own abalone test data (regression, binary, multiclass) through ``sagedock train``.

The files are the first lines of the upstream container's test resources, kept in the repository
(``tests/data/xgboost/README.md``). Each job's per-round metrics must be XGBoost's own:
``xgboost.train`` with the same parameters on XGBoost's own LIBSVM loader of the same files,
equal to the printed precision (5 decimals).

The multiclass validation file has an index with an empty value (``8:``) in its middle. We read
it as 0; XGBoost's loader, mid-file, reads on past the token and takes the next line's label
(1 here) instead. The test checks that this one entry is the only difference between the two
readings (besides XGBoost's float conversion, one float32 step off on some values), and gives
the reference run our reading of that entry, so the metrics compare the training and not the
over-read (with XGBoost's 1 there, the multiclass validation metrics differ).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sagedock.containers.data.batch import concat
from sagedock.containers.data.libsvm import read_libsvm_files
from tests.fixtures.xgboost import XGBoostJob

from .support import round_lines

xgboost = pytest.importorskip("xgboost")

DATA = Path(__file__).resolve().parents[3] / "data" / "xgboost"

# The hyperparameters of upstream's own abalone examples, with a seed and native metrics.
COMMON = {
    "num_round": 10,
    "max_depth": 5,
    "eta": 0.2,
    "gamma": 4,
    "min_child_weight": 6,
    "subsample": 0.7,
    "seed": 7,
}
TASKS: dict[str, dict[str, Any]] = {
    "abalone": {"objective": "reg:squarederror", "eval_metric": "rmse,mae"},
    "abalone-binary": {"objective": "binary:logistic", "eval_metric": "logloss,error,auc"},
    "abalone-multiclass": {
        "objective": "multi:softmax",
        "num_class": 4,
        "eval_metric": "mlogloss,merror",
    },
}


def _xgboost_loader(folder: Path) -> Any:
    return xgboost.DMatrix(f"{folder}?format=libsvm")


def _xgboost_reading(folder: Path) -> Any:
    """XGBoost's loader of *folder*, checked entry by entry against our reader.

    XGBoost's own text-to-float conversion is not correctly rounded, so some of its values are
    one float32 step from ours (the nearest float32 to what is written); the reference keeps
    those. Where its conversion read past an empty value into the next line's label, our 0 is
    put back.
    """
    loaded = _xgboost_loader(folder)
    theirs = loaded.get_data()
    files = sorted(folder.iterdir())
    ours = concat(list(read_libsvm_files(files))).features.tocsr()
    ours.sort_indices()
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours.indptr, theirs.indptr)
    np.testing.assert_array_equal(ours.indices, theirs.indices)
    steps = np.abs(ours.data.view(np.int32).astype(np.int64) - theirs.data.view(np.int32))
    over_read = np.flatnonzero(steps > 1)
    if not over_read.size:
        return loaded
    lines = [line for path in files for line in path.read_text().splitlines()]
    for position in over_read:
        row = int(np.searchsorted(theirs.indptr, position, side="right")) - 1
        column = int(theirs.indices[position])
        assert lines[row].split()[-1] == f"{column}:"  # an empty value ending its line
        assert theirs.data[position] == float(lines[row + 1].split()[0])  # the next label
        assert ours.data[position] == 0
    patched = theirs.copy()
    patched.data[over_read] = 0
    return xgboost.DMatrix(patched, label=loaded.get_label())


def _reference_rounds(dataset: str, hyperparameters: dict[str, Any]) -> list[dict[str, str]]:
    params = {k: v for k, v in hyperparameters.items() if k not in ("num_round", "eval_metric")}
    params["eval_metric"] = hyperparameters["eval_metric"].split(",")
    base = DATA / dataset / "data"
    dtrain = _xgboost_reading(base / "train")
    dval = _xgboost_reading(base / "validation")
    result: dict[str, dict[str, list[float]]] = {}
    xgboost.train(
        params,
        dtrain,
        num_boost_round=hyperparameters["num_round"],
        evals=[(dtrain, "train"), (dval, "validation")],
        evals_result=result,
        verbose_eval=False,
    )
    return [
        {
            f"{data}-{metric}": f"{values[i]:.5f}"
            for data, metrics in result.items()
            for metric, values in metrics.items()
        }
        for i in range(hyperparameters["num_round"])
    ]


def test_the_repository_copy_keeps_the_empty_value_mid_file() -> None:
    lines = (DATA / "abalone-multiclass/data/validation/abalone.validation").read_text()
    assert lines.splitlines()[480].endswith(" 8:") and len(lines.splitlines()) > 481


@pytest.mark.slow
@pytest.mark.parametrize("dataset", sorted(TASKS))
def test_upstream_abalone_trains_with_xgboosts_own_per_round_metrics(
    xgboost_job: Callable[..., XGBoostJob], dataset: str
) -> None:
    hyperparameters = {**COMMON, **TASKS[dataset]}
    job = xgboost_job(hyperparameters)
    for channel in ("train", "validation"):
        target = job.add_channel(channel, "text/libsvm")
        for source in sorted((DATA / dataset / "data" / channel).iterdir()):
            (target / source.name).write_bytes(source.read_bytes())
    result = job.run()
    assert result.returncode == 0, result.stderr[-2000:]
    assert job.failure is None
    printed = [
        {name: f"{value:.5f}" for name, value in metrics.items()}
        for _, metrics in round_lines(result.stdout)
    ]
    assert printed == _reference_rounds(dataset, hyperparameters)
