"""Which built-in algorithm a job or model runs, from its image name or AlgorithmName, and the
metric definitions ``local train`` reads its FinalMetricDataList with (the job's own, else the
algorithm's, which AWS writes for logs as CloudWatch shows them)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from sagedock.containers.linear_learner.metrics import metric_definitions as ll_definitions
from sagedock.toolkit.local.metrics import MetricCollector, match_metrics
from sagedock.toolkit.local.serving import serving_algorithm
from sagedock.toolkit.local.spec import parse_model, parse_training_job
from sagedock.toolkit.local.spec.flags import model_request
from sagedock.toolkit.local.spec.training import MetricDefinition
from sagedock.toolkit.local.training import (
    algorithm_for_image,
    algorithm_metric_definitions,
    job_algorithm,
    job_metric_definitions,
    process_algorithm,
    registered_algorithms,
)

#: What ``sagemaker.image_uris.retrieve("linear-learner", region)`` answers (the account
#: differs per region).
AWS_LINEAR_LEARNER = "123456789012.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1"


def training_doc(**algorithm: Any) -> dict[str, Any]:
    return {
        "TrainingJobName": "job-1",
        "AlgorithmSpecification": {"TrainingInputMode": "File", **algorithm},
        "HyperParameters": {"predictor_type": "binary_classifier"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/train/"}
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "RoleArn": "arn:aws:iam::1:role/x",
    }


def test_linear_learner_is_a_registered_algorithm() -> None:
    assert {"linear-learner", "xgboost"} <= set(registered_algorithms())


@pytest.mark.parametrize(
    "image",
    [
        AWS_LINEAR_LEARNER,
        "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1",
        "664544806723.dkr.ecr.eu-central-1.amazonaws.com/linear-learner:latest",
        "390948362332.dkr.ecr.cn-north-1.amazonaws.com.cn/linear-learner:1",
        "sagedock/linear-learner:latest",
        "registry.example:5000/team/linear-learner:0.9",
        "linear-learner",
        "sagemaker-linear-learner:1",
        "my_linear_learner@sha256:" + "0" * 64,
    ],
)
def test_linear_learner_images_map_to_the_algorithm(image: str) -> None:
    assert algorithm_for_image(image) == "linear-learner"


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1", "xgboost"),
        ("sagedock/xgboost:latest", "xgboost"),
        ("sagedock/pytorch:latest", None),
        ("sagedock/base:latest", None),
        ("registry.example/linear:1", None),  # one word of the name is not the name
        ("registry.example/learner-linear:1", None),  # nor are its words out of order
        ("registry.example/linear-learner-tools/app:1", None),  # only the last component
    ],
)
def test_other_images_map_to_their_algorithm_or_none(image: str, expected: str | None) -> None:
    assert algorithm_for_image(image) == expected


def test_a_training_job_on_aws_linear_learner_image_runs_the_algorithm_in_a_process() -> None:
    spec = parse_training_job(training_doc(TrainingImage=AWS_LINEAR_LEARNER))
    assert process_algorithm(spec) == "linear-learner"
    assert job_algorithm(spec) == "linear-learner"


def test_the_algorithm_publishes_its_metric_definitions() -> None:
    expected = tuple(MetricDefinition(d.name, d.regex) for d in ll_definitions())
    assert algorithm_metric_definitions("linear-learner") == expected
    names = [d.name for d in expected]
    assert "validation:binary_classification_accuracy" in names
    assert "train:objective_loss" in names


def test_unknown_algorithms_publish_no_metric_definitions() -> None:
    assert algorithm_metric_definitions("no-such-algorithm") == ()


@pytest.mark.parametrize(
    "algorithm",
    [{"TrainingImage": AWS_LINEAR_LEARNER}, {"AlgorithmName": "linear-learner"}],
)
def test_local_train_reads_a_linear_learner_job_with_the_algorithms_definitions(
    algorithm: dict[str, str],
) -> None:
    spec = parse_training_job(training_doc(**algorithm))
    assert job_metric_definitions(spec) == algorithm_metric_definitions("linear-learner")


def test_a_jobs_own_metric_definitions_win_over_the_algorithms() -> None:
    own = [{"Name": "loss", "Regex": "loss=([0-9.]+)"}]
    spec = parse_training_job(training_doc(TrainingImage=AWS_LINEAR_LEARNER, MetricDefinitions=own))
    assert job_metric_definitions(spec) == (MetricDefinition("loss", "loss=([0-9.]+)"),)


def test_a_script_mode_job_gets_no_algorithm_definitions() -> None:
    doc = training_doc(TrainingImage=AWS_LINEAR_LEARNER)
    doc["HyperParameters"] = {"sagemaker_program": '"train.py"'}
    spec = parse_training_job(doc)
    assert job_algorithm(spec) is None
    assert job_metric_definitions(spec) == ()


def test_local_serve_and_transform_serve_aws_linear_learner_models_with_the_algorithm(
    tmp_path: Path,
) -> None:
    # `local serve --model DIR --image URI` and `local transform --model DIR --image URI` build
    # this CreateModel document; both start their server with serving_algorithm's choice.
    args = argparse.Namespace(model=str(tmp_path), image=AWS_LINEAR_LEARNER, env=[], name="m")
    model = parse_model(model_request(args, None))
    assert serving_algorithm(model, None) == "linear-learner"
    doc = {
        "Model": {
            "ModelName": "m1",
            "PrimaryContainer": {
                "Image": AWS_LINEAR_LEARNER,
                "ModelDataUrl": f"file://{tmp_path}",
            },
            "ExecutionRoleArn": "arn:aws:iam::1:role/r",
        }
    }
    assert serving_algorithm(parse_model(doc), None) == "linear-learner"


def test_a_models_own_algorithm_environment_is_left_to_it(tmp_path: Path) -> None:
    args = argparse.Namespace(
        model=str(tmp_path),
        image=AWS_LINEAR_LEARNER,
        env=["SAGEDOCK_ALGORITHM=xgboost"],
        name="m",
    )
    assert serving_algorithm(parse_model(model_request(args, None)), None) is None


def test_xgboosts_published_regexes_read_its_tab_separated_round_lines() -> None:
    # AWS writes them for CloudWatch, which shows TAB as #011; the local log has the TAB.
    collector = MetricCollector(algorithm_metric_definitions("xgboost"))
    collector.feed("[0]\ttrain-rmse:3.1\tvalidation-rmse:3.5", "t0")
    collector.feed("[1]\ttrain-rmse:2.2\tvalidation-rmse:2.75", "t1")
    assert collector.final() == [
        {"MetricName": "validation:rmse", "Value": 2.75, "Timestamp": "t1"}
    ]


def test_a_regex_written_for_the_tab_itself_still_matches() -> None:
    found = match_metrics(
        [MetricDefinition("rmse", r"validation-rmse:(\S+)\t")], "a\tvalidation-rmse:1.5\tb"
    )
    assert found == [("rmse", 1.5)]
