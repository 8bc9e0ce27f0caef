"""Request documents checked against botocore's own SageMaker model (spec/schema.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sagedock.toolkit.local.spec import (
    SpecError,
    invoke,
    model,
    parse_training_job,
    training,
    transform,
)
from sagedock.toolkit.local.spec.schema import (
    LocalRules,
    check_request,
    input_shape,
    resolve,
)


def training_request() -> dict[str, Any]:
    """A CreateTrainingJob request as boto3 takes it."""
    return {
        "TrainingJobName": "job-1",
        "RoleArn": "arn:aws:iam::111122223333:role/sagemaker",
        "AlgorithmSpecification": {"TrainingImage": "img:1", "TrainingInputMode": "File"},
        "HyperParameters": {"eta": "0.1"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://bucket/train/",
                        "S3DataDistributionType": "ShardedByS3Key",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }


def refusal(document: dict[str, Any], operation: str = "CreateTrainingJob") -> str:
    with pytest.raises(SpecError) as info:
        check_request(document, operation)
    return info.value.message


def test_the_api_name_of_the_distribution_is_taken_and_reaches_the_spec() -> None:
    check_request(training_request(), "CreateTrainingJob")
    spec = parse_training_job(training_request())
    assert spec.channels[0].distribution == "ShardedByS3Key"


def test_the_container_file_name_of_the_distribution_is_refused_naming_the_api_name() -> None:
    doc = training_request()
    source = doc["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    source["S3DistributionType"] = source.pop("S3DataDistributionType")
    assert refusal(doc) == (
        "InputDataConfig[0].DataSource.S3DataSource.S3DistributionType: unknown field "
        "(did you mean 'S3DataDistributionType'?)"
    )


def test_a_wrong_case_is_suggested_first() -> None:
    doc = training_request()
    doc["resourceconfig"] = doc.pop("ResourceConfig")
    assert refusal(doc).startswith("resourceconfig: unknown field (did you mean 'ResourceConfig'")


def test_an_unknown_field_far_from_any_name_lists_a_small_structure() -> None:
    doc = training_request()
    doc["StoppingCondition"]["Whenever"] = 1
    message = refusal(doc)
    assert message.startswith("StoppingCondition.Whenever: unknown field (StoppingCondition has ")
    assert "MaxRuntimeInSeconds" in message


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["InputDataConfig"][0].update(InputMode="file"),
            "InputDataConfig[0].InputMode: 'file' is not one of Pipe, File, FastFile "
            "(did you mean 'File'?)",
        ),
        (
            lambda d: d["ResourceConfig"].update(InstanceType="ml.m5.xlarg"),
            "ResourceConfig.InstanceType: 'ml.m5.xlarg' is not a valid TrainingInstanceType "
            "(did you mean 'ml.m5.xlarge'",
        ),
        (lambda d: d.pop("OutputDataConfig"), "OutputDataConfig: is required"),
        (lambda d: d.pop("RoleArn"), "RoleArn: is required"),
        (
            lambda d: d["InputDataConfig"][0]["DataSource"]["S3DataSource"].pop("S3Uri"),
            "InputDataConfig[0].DataSource.S3DataSource.S3Uri: is required",
        ),
        (
            lambda d: d["ResourceConfig"].update(InstanceCount="2"),
            "ResourceConfig.InstanceCount: expected an integer, got a string",
        ),
        (
            lambda d: d["ResourceConfig"].update(InstanceCount=2.5),
            "ResourceConfig.InstanceCount: expected an integer, got a number",
        ),
        (
            lambda d: d.update(EnableManagedSpotTraining="yes"),
            "EnableManagedSpotTraining: expected true or false, got a string",
        ),
        (
            lambda d: d.update(InputDataConfig={"ChannelName": "train"}),
            "InputDataConfig: expected a list, got an object",
        ),
        (
            lambda d: d["InputDataConfig"][0].update(DataSource=None),
            "InputDataConfig[0].DataSource: expected an object, got null",
        ),
        (
            lambda d: d["StoppingCondition"].update(MaxRuntimeInSeconds=0),
            "StoppingCondition.MaxRuntimeInSeconds: 0 is below the minimum 1",
        ),
        (
            lambda d: d["HyperParameters"].update(x="v" * 2501),
            "HyperParameters.x: is longer than 2500 characters",
        ),
        (
            lambda d: d["HyperParameters"].update({"k" * 257: "v"}),
            f"HyperParameters.{'k' * 257}: key is longer than 256 characters",
        ),
        (
            lambda d: d.update(HyperParameters={f"h{i}": "1" for i in range(101)}),
            "HyperParameters: has 101 entries, at most 100 allowed",
        ),
        (
            lambda d: d["AlgorithmSpecification"].update(ContainerEntrypoint=[]),
            "AlgorithmSpecification.ContainerEntrypoint: needs at least 1 element",
        ),
        (
            lambda d: d.update(TrainingJobName=""),
            "TrainingJobName: must not be empty",
        ),
    ],
)
def test_names_types_enums_required_members_and_ranges_come_from_the_model(
    mutate: Any, expected: str
) -> None:
    doc = training_request()
    mutate(doc)
    assert refusal(doc).startswith(expected)


def test_integer_maxima_long_and_float_members_come_from_the_model() -> None:
    doc = training_request()
    doc["ResourceConfig"]["KeepAlivePeriodInSeconds"] = 21601
    assert refusal(doc) == (
        "ResourceConfig.KeepAlivePeriodInSeconds: 21601 is above the maximum 21600"
    )
    doc = training_request()
    doc["InputDataConfig"][0]["ShuffleConfig"] = {"Seed": 2**40}  # a long
    check_request(doc, "CreateTrainingJob")
    doc["InputDataConfig"][0]["ShuffleConfig"] = {"Seed": "7"}
    assert (
        refusal(doc) == "InputDataConfig[0].ShuffleConfig.Seed: expected an integer, got a string"
    )
    rules = LocalRules(optional=frozenset({"EndpointConfigName"}))
    config: dict[str, Any] = {"ProductionVariants": [{"VariantName": "v"}]}
    for weight, problem in [("1", "expected a number, got a string"), (-1, "below the minimum 0")]:
        config["ProductionVariants"][0]["InitialVariantWeight"] = weight
        with pytest.raises(SpecError, match=f"InitialVariantWeight: .*{problem}"):
            check_request(config, "CreateEndpointConfig", rules)
    config["ProductionVariants"][0]["InitialVariantWeight"] = 0.5
    check_request(config, "CreateEndpointConfig", rules)


def test_processing_jobs_are_checked_by_operation_name_alone() -> None:
    job = {
        "ProcessingJobName": "p-1",
        "RoleArn": "arn:aws:iam::1:role/r",
        "AppSpecification": {"ImageUri": "img:1"},
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.xlarge",
                "VolumeSizeInGB": 30,
            }
        },
    }
    check_request(job, "CreateProcessingJob")
    job["ProcessingResources"]["ClusterConfig"]["VolumeSizeInGB"] = "30"
    assert refusal(job, "CreateProcessingJob").startswith(
        "ProcessingResources.ClusterConfig.VolumeSizeInGB: expected an integer"
    )


def test_invoke_endpoint_is_checked_against_the_runtime_model() -> None:
    assert input_shape("InvokeEndpoint") == "InvokeEndpointInput"
    check_request({"EndpointName": "ep", "Body": "1,2"}, "InvokeEndpoint")
    message = refusal({"EndpointName": "ep", "Body": "1", "Acept": "x"}, "InvokeEndpoint")
    assert message == "Acept: unknown field (did you mean 'Accept'?)"
    assert refusal({"EndpointName": "ep"}, "InvokeEndpoint") == "Body: is required"


def test_local_rules_relax_only_what_they_name() -> None:
    doc = training_request()
    del doc["RoleArn"]
    doc["ResourceConfig"]["InstanceType"] = "local"
    doc["Tags"] = [{"Key": "team", "Value": "ml"}]
    checked = check_request(doc, "CreateTrainingJob", training.RULES)
    assert checked.ignored == ("ResourceConfig.VolumeSizeInGB", "Tags")
    doc["ResourceConfig"]["InstanceType"] = "lokal"
    with pytest.raises(SpecError, match=r"'lokal' is not a valid .*did you mean 'local'"):
        check_request(doc, "CreateTrainingJob", training.RULES)


def test_ignored_fields_are_still_checked_against_the_model() -> None:
    doc = training_request()
    doc["Tags"] = [{"Key": "team"}]
    with pytest.raises(SpecError, match=r"^Tags\[0\]\.Value: is required"):
        check_request(doc, "CreateTrainingJob", training.RULES)


def test_nested_paths_of_ignored_fields_carry_their_list_index() -> None:
    doc = training_request()
    second = copy.deepcopy(doc["InputDataConfig"][0])
    second["ChannelName"] = "validation"
    second["DataSource"]["S3DataSource"]["ModelAccessConfig"] = {"AcceptEula": True}
    doc["InputDataConfig"].append(second)
    checked = check_request(doc, "CreateTrainingJob", training.RULES)
    assert "InputDataConfig[1].DataSource.S3DataSource.ModelAccessConfig" in checked.ignored


@pytest.mark.parametrize(
    ("operation", "rules"),
    [
        ("CreateTrainingJob", training.RULES),
        ("CreateTransformJob", transform.RULES),
        ("InvokeEndpoint", invoke.RULES),
        *model.RULES.items(),
    ],
)
def test_every_path_the_local_rules_name_is_in_the_model(operation: str, rules: LocalRules) -> None:
    for path in sorted(rules.paths()):
        resolve(operation, path)  # KeyError when the API has no such field
    for path, values in rules.extra_values.items():
        shape = resolve(operation, path)
        assert "enum" in shape and not set(values) & set(shape["enum"]), path


def test_resolve_refuses_a_path_outside_the_model() -> None:
    with pytest.raises(KeyError, match="S3DistributionType"):
        resolve("CreateTrainingJob", "InputDataConfig[].DataSource.S3DataSource.S3DistributionType")


def test_a_model_document_checks_each_part_against_its_operation() -> None:
    doc: dict[str, Any] = {
        "Model": {
            "ModelName": "m",
            "ExecutionRoleArn": "arn:aws:iam::1:role/r",
            "PrimaryContainer": {"Image": "img:1", "ModelDataUrl": "s3://bucket/model.tar.gz"},
        },
        "EndpointConfig": {
            "EndpointConfigName": "ep",
            "ProductionVariants": [
                {"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.m5.large"}
            ],
        },
        "Endpoint": {"EndpointName": "ep", "EndpointConfigName": "ep", "Tags": []},
    }
    spec = model.parse_model(doc)
    assert spec.endpoint_name == "ep"
    assert spec.ignored == ("Model.ExecutionRoleArn",)  # an empty Tags list sets nothing
    doc["EndpointConfig"]["ProductionVariants"][0]["InstanceType"] = "ml.m5.larg"
    with pytest.raises(
        SpecError, match=r"^EndpointConfig\.ProductionVariants\[0\]\.InstanceType: "
    ):
        model.parse_model(doc)
    with pytest.raises(SpecError, match=r"^Endpoints: unknown part"):
        model.parse_model({"Model": doc["Model"], "Endpoints": {}})
