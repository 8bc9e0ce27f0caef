"""CreateTransformJob / CreateModel documents, transform settings precedence and environment."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from sagedock.toolkit.local.spec import (
    SpecError,
    parse_invoke_request,
    parse_model,
    parse_transform_job,
)
from sagedock.toolkit.local.spec.flags import invoke_request, model_request, transform_request
from sagedock.toolkit.local.transform.runner import (
    normalize_strategy,
    resolve_settings,
    transform_environment,
)


def transform_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "TransformJobName": "t-1",
        "ModelName": "m",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/in/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": "s3://bucket/out/", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    doc.update(overrides)
    return doc


def test_a_transform_request_parses_with_defaults_left_unset() -> None:
    spec = parse_transform_job(transform_doc())
    assert (spec.split_type, spec.assemble_with, spec.content_type) == ("Line", "Line", "text/csv")
    assert (
        spec.batch_strategy is None and spec.max_payload_mb is None and spec.max_concurrent is None
    )
    assert (spec.invocation_timeout, spec.invocation_retries) == (600, 3)


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"BatchStrategy": "MULTI"}, "BatchStrategy"),
        ({"MaxPayloadInMB": 101}, "MaxPayloadInMB"),
        ({"MaxConcurrentTransforms": 20, "MaxPayloadInMB": 6}, "MaxPayloadInMB"),
        (
            {"ModelClientConfig": {"InvocationsMaxRetries": 4}},
            "ModelClientConfig.InvocationsMaxRetries",
        ),
        ({"DataProcessing": {"InputFilter": "$[a]"}}, "DataProcessing.InputFilter"),
        ({"DataProcessing": {"JoinSource": "Output"}}, "DataProcessing.JoinSource"),
    ],
)
def test_bad_transform_fields_are_reported_at_their_path(
    overrides: dict[str, Any], path: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_transform_job(transform_doc(**overrides))
    assert info.value.message.startswith(f"{path}: ")


def test_filters_are_refused_for_binary_split_types() -> None:
    doc = transform_doc(DataProcessing={"InputFilter": "$[1:]"})
    doc["TransformInput"]["SplitType"] = "RecordIO"
    with pytest.raises(SpecError, match=r"DataProcessing: .*SplitType RecordIO"):
        parse_transform_job(doc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("MULTI_RECORD", "MultiRecord"),
        ("MultiRecord", "MultiRecord"),
        ("single_record", "SingleRecord"),
        ("SINGLE_RECORD", "SingleRecord"),
        ("sometimes", None),
        (3, None),
    ],
)
def test_both_spellings_of_the_batch_strategy_are_understood(
    value: Any, expected: str | None
) -> None:
    assert normalize_strategy(value) == expected


def test_request_values_win_over_the_container_which_wins_over_defaults() -> None:
    container = {
        "BatchStrategy": "SINGLE_RECORD",
        "MaxPayloadInMB": 2,
        "MaxConcurrentTransforms": 4,
    }
    from_container = resolve_settings(parse_transform_job(transform_doc()), container)
    assert (
        from_container.batch_strategy,
        from_container.max_payload_mb,
        from_container.max_concurrent,
    ) == (
        "SingleRecord",
        2,
        4,
    )
    api = parse_transform_job(
        transform_doc(BatchStrategy="MultiRecord", MaxPayloadInMB=1, MaxConcurrentTransforms=2)
    )
    from_api = resolve_settings(api, container)
    assert (from_api.batch_strategy, from_api.max_payload_mb, from_api.max_concurrent) == (
        "MultiRecord",
        1,
        2,
    )
    defaults = resolve_settings(parse_transform_job(transform_doc()), None)
    assert (defaults.batch_strategy, defaults.max_payload_mb, defaults.max_concurrent) == (
        "MultiRecord",
        6,
        1,
    )


def test_the_container_gets_the_batch_environment_sagemaker_sets() -> None:
    plain = transform_environment(parse_transform_job(transform_doc(Environment={"A": "1"})))
    assert plain == {"A": "1", "SAGEMAKER_BATCH": "true"}
    full = transform_environment(
        parse_transform_job(
            transform_doc(BatchStrategy="SingleRecord", MaxPayloadInMB=3, MaxConcurrentTransforms=2)
        )
    )
    assert full["SAGEMAKER_BATCH_STRATEGY"] == "SINGLE_RECORD"
    assert full["SAGEMAKER_MAX_PAYLOAD_IN_MB"] == "3"
    assert full["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] == "2"


def test_transform_flags_build_the_request(tmp_path: Path) -> None:
    args = argparse.Namespace(
        spec=None,
        input=str(tmp_path),
        output=str(tmp_path / "out"),
        content_type="text/csv",
        split_type="Line",
        strategy="SingleRecord",
        max_payload=1,
        concurrency=2,
        accept="text/csv",
        assemble_with="Line",
        input_filter="$[1:]",
        join_source="Input",
        timeout=30,
        retries=0,
        job_name="tj",
    )
    spec = parse_transform_job(transform_request(args))
    assert spec.input_location == str(tmp_path)
    assert (spec.batch_strategy, spec.max_payload_mb, spec.max_concurrent) == ("SingleRecord", 1, 2)
    assert (spec.input_filter, spec.join_source) == ("$[1:]", "Input")
    assert (spec.invocation_timeout, spec.invocation_retries) == (30, 0)


def test_create_model_with_a_local_tarball_and_endpoint_config(tmp_path: Path) -> None:
    (tmp_path / "model.tar.gz").write_bytes(b"")
    doc = {
        "Model": {
            "ModelName": "m1",
            "PrimaryContainer": {
                "Image": "sagedock/xgboost:latest",
                "ModelDataUrl": f"file://{tmp_path}/model.tar.gz",
                "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
            },
            "ExecutionRoleArn": "arn:aws:iam::1:role/r",
        },
        "EndpointConfig": {
            "ProductionVariants": [{"ContainerStartupHealthCheckTimeoutInSeconds": 90}]
        },
    }
    spec = parse_model(doc)
    assert (spec.name, spec.image, spec.model_data) == (
        "m1",
        "sagedock/xgboost:latest",
        str(tmp_path / "model.tar.gz"),
    )
    assert spec.model_data_compressed and spec.startup_timeout == 90
    assert dict(spec.environment) == {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}


def test_a_model_directory_is_used_uncompressed(tmp_path: Path) -> None:
    args = argparse.Namespace(model=str(tmp_path), image=None, env=["K=V"], name="dir-model")
    spec = parse_model(model_request(args, None))
    assert spec.model_data == str(tmp_path) and not spec.model_data_compressed
    assert dict(spec.environment) == {"K": "V"}


def test_inference_pipelines_are_refused_by_name() -> None:
    with pytest.raises(SpecError, match=r"^Containers: inference pipelines"):
        parse_model({"ModelName": "p", "Containers": [{"Image": "a"}, {"Image": "b"}]})


# -- InvokeEndpoint --------------------------------------------------------------------------
def test_an_invoke_endpoint_request_becomes_the_headers_sagemaker_forwards() -> None:
    request = parse_invoke_request(
        {
            "EndpointName": "ep",
            "Body": "1,2,3",
            "ContentType": "text/csv",
            "Accept": "application/json",
            "CustomAttributes": "c=1",
            "TargetModel": "m.tar.gz",
            "TargetVariant": "v1",
            "InferenceId": "id-1",
            "EnableExplanations": "`true`",
        }
    )
    assert request.body == b"1,2,3"
    assert (request.content_type, request.accept, request.endpoint_name) == (
        "text/csv",
        "application/json",
        "ep",
    )
    assert request.headers == {
        "X-Amzn-SageMaker-Custom-Attributes": "c=1",
        "X-Amzn-SageMaker-Target-Model": "m.tar.gz",
        "X-Amzn-SageMaker-Target-Variant": "v1",
        "X-Amzn-SageMaker-Inference-Id": "id-1",
    }


def test_an_invoke_body_may_be_inline_json_and_content_type_defaults_to_json() -> None:
    request = parse_invoke_request({"Body": {"instances": [1.5]}})
    assert request.body == b'{"instances": [1.5]}'
    assert request.content_type == "application/json"
    assert parse_invoke_request({}).body is None


def test_invoke_flags_override_the_spec(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps({"Accept": "text/csv", "InferenceId": "a"}))
    args = argparse.Namespace(spec=str(tmp_path / "r.json"), inference_id="b", accept=None)
    request = parse_invoke_request(invoke_request(args))
    assert request.accept == "text/csv"
    assert request.headers == {"X-Amzn-SageMaker-Inference-Id": "b"}


def test_an_unknown_invoke_field_is_named() -> None:
    with pytest.raises(SpecError, match=r"ContentTyp: unknown field \(did you mean 'ContentType'"):
        parse_invoke_request({"ContentTyp": "text/csv"})
