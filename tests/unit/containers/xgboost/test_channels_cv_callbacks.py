"""Channel validation, cross-validation folds and the per-round log line."""

from __future__ import annotations

import numpy as np
import pytest

from sagedock.containers.xgboost import cv
from sagedock.containers.xgboost.callbacks import format_evaluation
from sagedock.containers.xgboost.channels import (
    FILE_CONTENT_TYPES,
    PIPE_CONTENT_TYPES,
    validate_channels,
)
from sagedock.toolkit.errors import UserError


def _channel(
    content_type: str | None = "text/csv", mode: str = "File", dist: str = "FullyReplicated"
) -> dict[str, str]:
    config = {"TrainingInputMode": mode, "S3DistributionType": dist, "RecordWrapperType": "None"}
    if content_type is not None:
        config["ContentType"] = content_type
    return config


def test_channels_get_libsvm_by_default_and_accept_both_distributions() -> None:
    validated = validate_channels(
        {"train": _channel(None), "validation": _channel("text/libsvm", dist="ShardedByS3Key")}
    )
    assert validated["train"]["ContentType"] == "text/libsvm"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"validation": _channel()}, "Missing required channel: train"),
        ({"train": _channel(), "test": _channel()}, "Extraneous channel found: test"),
    ],
)
def test_channel_names(config: dict[str, dict[str, str]], message: str) -> None:
    with pytest.raises(UserError, match=f"^{message}$"):
        validate_channels(config)


@pytest.mark.parametrize(
    "config",
    [
        _channel("text/csv; label_size=1"),
        _channel("TEXT/CSV"),
        _channel("application/json"),
        _channel("text/libsvm", mode="Pipe"),
        _channel("text/csv", dist="Replicated"),
    ],
)
def test_unsupported_channel_configurations_are_refused(config: dict[str, str]) -> None:
    with pytest.raises(
        UserError, match=r"^Channel configuration for 'train' channel is not supported: \{"
    ):
        validate_channels({"train": config})


def test_pipe_and_fastfile_modes() -> None:
    validate_channels({"train": _channel("application/x-parquet", mode="Pipe")})
    validate_channels({"train": _channel("text/libsvm", mode="FastFile")})
    validate_channels({"train": _channel(), "code": _channel("text/python")})


#: SageMaker's lists (algorithms.md 3.3), written out: FILE_CONTENT_TYPES reuses the readers'
#: spellings, and a spelling added there for inference must not widen what training accepts.
SAGEMAKER_FILE_TYPES = {
    "csv",
    "libsvm",
    "parquet",
    "recordio-protobuf",
    "text/csv",
    "text/libsvm",
    "text/x-libsvm",
    "application/x-parquet",
    "application/x-recordio-protobuf",
}
SAGEMAKER_PIPE_TYPES = SAGEMAKER_FILE_TYPES - {"libsvm", "text/libsvm", "text/x-libsvm"}


def test_training_content_types_are_exactly_sagemakers() -> None:
    assert set(FILE_CONTENT_TYPES) == SAGEMAKER_FILE_TYPES
    assert len(FILE_CONTENT_TYPES) == len(SAGEMAKER_FILE_TYPES)
    assert set(PIPE_CONTENT_TYPES) == SAGEMAKER_PIPE_TYPES
    for content_type in SAGEMAKER_FILE_TYPES:
        validate_channels({"train": _channel(content_type)})
        validate_channels({"train": _channel(content_type, mode="FastFile")})
    for content_type in SAGEMAKER_PIPE_TYPES:
        validate_channels({"train": _channel(content_type, mode="Pipe")})


def test_stratified_folds_keep_class_proportions_and_cover_every_row_once() -> None:
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    splits = list(cv.folds(100, 5, repeats=2, labels=labels, seed=1))
    assert len(splits) == 10
    for repeat in range(2):
        held_out = np.concatenate([v for _, v in splits[repeat * 5 : (repeat + 1) * 5]])
        assert sorted(held_out.tolist()) == list(range(100))
    for train, validation in splits:
        assert len(np.intersect1d(train, validation)) == 0
        assert np.bincount(labels[validation]).tolist() == [12, 6, 2]


def test_cv_metric_line_averages_the_last_round_metric_by_metric() -> None:
    results = [
        {"train": {"rmse": [3.0, 2.0]}, "validation": {"rmse": [4.0, 3.0]}},
        {"train": {"rmse": [3.0, 1.0]}, "validation": {"rmse": [4.0, 2.0]}},
    ]
    assert cv.format_cv_metrics(10, results) == "[10]\ttrain-rmse:1.50000\tvalidation-rmse:2.50000"


def test_predictions_table_for_classification() -> None:
    recorder = cv.PredictionRecorder(np.array([1.0, 0.0, 1.0]), repeats=2, classification=True)
    for _ in range(2):
        recorder.record(np.array([0, 1, 2]), np.array([0.9, 0.2, 0.4]))
    table = recorder.table()
    assert table.tolist() == [[1.0, 0.9, 1.0], [0.0, 0.2, 0.0], [1.0, 0.4, 0.0]]


def test_evaluation_line_is_sagemakers_format() -> None:
    log = {"train": {"rmse": [2.0, 1.234564]}, "validation": {"rmse": [3.0, 2.5]}}
    assert format_evaluation(7, log) == "[7]\ttrain-rmse:1.23456\tvalidation-rmse:2.50000"
