"""CreateTrainingJob documents and flags -> TrainingJobSpec."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from sagedock.toolkit.local.spec import SpecError, parse_training_job
from sagedock.toolkit.local.spec.flags import parse_channel_flag, training_request


def request(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "TrainingJobName": "job-1",
        "AlgorithmSpecification": {"TrainingImage": "img:1", "TrainingInputMode": "File"},
        "HyperParameters": {"eta": "0.1"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/train/"}
                },
                "ContentType": "text/csv",
            },
            {
                "ChannelName": "validation",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "file:///data/val"}
                },
            },
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "RoleArn": "arn:aws:iam::1:role/x",
    }
    doc.update(overrides)
    return doc


def test_a_full_request_parses_into_the_spec() -> None:
    spec = parse_training_job(request())
    assert spec.name == "job-1"
    assert spec.image == "img:1"
    assert spec.hosts == ("algo-1", "algo-2")
    assert spec.instance_groups[0].name == "homogeneousCluster"
    assert spec.instance_groups[0].instance_type == "ml.m5.xlarge"
    assert spec.max_runtime == 3600
    train, val = spec.channels
    assert (train.name, train.location, train.content_type) == (
        "train",
        "s3://bucket/train/",
        "text/csv",
    )
    assert val.location == "/data/val"  # file:// becomes a plain absolute path
    assert (val.input_mode, val.distribution, val.record_wrapper) == (
        "File",
        "FullyReplicated",
        "None",
    )


def test_errors_name_the_json_path_of_the_bad_field() -> None:
    doc = request()
    doc["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3Uri"] = "http://example/x"
    with pytest.raises(SpecError) as info:
        parse_training_job(doc)
    assert info.value.message.startswith(
        "InputDataConfig[1].DataSource.S3DataSource.S3Uri: unsupported URI scheme 'http'"
    )


@pytest.mark.parametrize(
    ("mutate", "path", "problem"),
    [
        (lambda d: d.pop("TrainingJobName"), "TrainingJobName", "is required"),
        (lambda d: d.update(TrainingJobName="bad_name"), "TrainingJobName", "does not match"),
        (
            lambda d: d["ResourceConfig"].update(InstanceCount=0),
            "ResourceConfig.InstanceCount",
            "below the minimum 1",
        ),
        (
            lambda d: d["InputDataConfig"][0].update(InputMode="Stream"),
            "InputDataConfig[0].InputMode",
            "'Stream' is not one of Pipe, File, FastFile",
        ),
        (
            lambda d: d["InputDataConfig"][0].update(CompressionType="Gzip"),
            "InputDataConfig[0].CompressionType",
            "only used in Pipe input mode",
        ),
        (
            lambda d: d["InputDataConfig"][1].update(ChannelName="train"),
            "InputDataConfig[1]",
            "duplicate channel name 'train'",
        ),
        (
            lambda d: d["StoppingCondition"].update(MaxRuntimeInSeconds="soon"),
            "StoppingCondition.MaxRuntimeInSeconds",
            "expected an integer, got a string",
        ),
        (
            lambda d: d["HyperParameters"].update(nested={"a": 1}),
            "HyperParameters.nested",
            "expected a string, got an object",
        ),
        (
            lambda d: d.update(OutputDataConfg={}),
            "OutputDataConfg",
            "unknown field (did you mean 'OutputDataConfig'?)",
        ),
        (
            lambda d: d["AlgorithmSpecification"].update(
                MetricDefinitions=[{"Name": "x", "Regex": "("}]
            ),
            "AlgorithmSpecification.MetricDefinitions[0].Regex",
            "not a valid regular expression",
        ),
    ],
)
def test_each_bad_field_is_reported_at_its_path(mutate: Any, path: str, problem: str) -> None:
    doc = request()
    mutate(doc)
    with pytest.raises(SpecError) as info:
        parse_training_job(doc)
    assert info.value.message.startswith(f"{path}: ")
    assert problem in info.value.message


def test_augmented_manifests_need_pipe_mode_and_attribute_names() -> None:
    doc = request()
    doc["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataType"] = "AugmentedManifestFile"
    with pytest.raises(SpecError, match="needs the Pipe input mode"):
        parse_training_job(doc)
    doc["InputDataConfig"][0]["InputMode"] = "Pipe"
    with pytest.raises(SpecError, match="AttributeNames: is required"):
        parse_training_job(doc)
    doc["InputDataConfig"][0]["DataSource"]["S3DataSource"]["AttributeNames"] = ["source-ref"]
    spec = parse_training_job(doc)
    assert spec.channels[0].attribute_names == ("source-ref",)


def test_relative_paths_resolve_against_the_given_directory(tmp_path: Path) -> None:
    doc = request()
    doc["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = "data/train"
    doc["OutputDataConfig"]["S3OutputPath"] = "file://out"
    spec = parse_training_job(doc, cwd=tmp_path)
    assert spec.channels[0].location == str(tmp_path / "data" / "train")
    assert spec.output_path == str(tmp_path / "out")


def test_instance_groups_number_hosts_across_groups_in_order() -> None:
    doc = request(
        ResourceConfig={
            "InstanceGroups": [
                {"InstanceGroupName": "cpu", "InstanceType": "ml.c5.xlarge", "InstanceCount": 2},
                {"InstanceGroupName": "gpu", "InstanceType": "ml.p3.2xlarge", "InstanceCount": 1},
            ]
        }
    )
    doc["InputDataConfig"][0]["DataSource"]["S3DataSource"]["InstanceGroupNames"] = ["gpu"]
    spec = parse_training_job(doc)
    assert spec.hosts == ("algo-1", "algo-2", "algo-3")
    assert spec.group_of("algo-3").name == "gpu"
    assert [c.name for c in spec.channels_for("algo-1")] == ["validation"]
    assert [c.name for c in spec.channels_for("algo-3")] == ["train", "validation"]


def test_hyperparameters_are_strings_as_the_api_takes_them() -> None:
    with pytest.raises(
        SpecError, match=r"^HyperParameters\.epochs: expected a string, got a number"
    ):
        parse_training_job(request(HyperParameters={"epochs": 10}))


def _flags(**values: Any) -> argparse.Namespace:
    return argparse.Namespace(**values)


def test_flags_build_the_same_spec_as_the_equivalent_document(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    flags = _flags(
        spec=None,
        job_name="flag-job",
        image="img:1",
        channel=[
            f"train={tmp_path}/train,content_type=text/csv,mode=Pipe,distribution=ShardedByS3Key"
        ],
        hp=["eta=0.1"],
        output="s3://bucket/out",
        instance_count=2,
        max_runtime=60,
        metric=["rmse=rmse:([0-9.]+)"],
        env=["A=1"],
    )
    from_flags = parse_training_job(training_request(flags))
    document = {
        "TrainingJobName": "flag-job",
        "AlgorithmSpecification": {
            "TrainingImage": "img:1",
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "rmse", "Regex": "rmse:([0-9.]+)"}],
        },
        "HyperParameters": {"eta": "0.1"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "InputMode": "Pipe",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"{tmp_path}/train",
                        "S3DataDistributionType": "ShardedByS3Key",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
        "ResourceConfig": {"InstanceCount": 2, "InstanceType": "local"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        "Environment": {"A": "1"},
    }
    assert from_flags == parse_training_job(document)


def test_flags_amend_a_spec_file(tmp_path: Path) -> None:
    spec_file = tmp_path / "job.json"
    spec_file.write_text(json.dumps(request()))
    doc = training_request(
        _flags(spec=str(spec_file), hp=["eta=0.3", "depth=4"], job_name="renamed")
    )
    spec = parse_training_job(doc)
    assert spec.name == "renamed"
    assert dict(spec.hyperparameters) == {"eta": "0.3", "depth": "4"}
    assert spec.image == "img:1"


def test_entry_point_flags_write_the_sdk_script_mode_hyperparameters(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("print(1)\n")
    doc = training_request(
        _flags(entry_point="train.py", source_dir=str(tmp_path / "src"), output=str(tmp_path))
    )
    hps = doc["HyperParameters"]
    assert json.loads(hps["sagemaker_program"]) == "train.py"
    assert json.loads(hps["sagemaker_submit_directory"]) == str(tmp_path / "src")
    assert doc["TrainingJobName"].startswith("train-")
    parse_training_job(doc)


def test_generated_job_names_are_valid_and_distinct() -> None:
    names = {training_request(_flags(algorithm="xgboost"))["TrainingJobName"] for _ in range(3)}
    for name in names:
        parse_training_job({**request(), "TrainingJobName": name})
        assert name.startswith("xgboost-")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("train", "expected NAME=URI"),
        ("train=data,colour=red", "unknown option 'colour=red'"),
        ("train=data,seed=x", "seed must be an integer"),
    ],
)
def test_bad_channel_flags_name_the_flag(text: str, problem: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_channel_flag(text)
    assert info.value.message.startswith(f"--channel {text!r}")
    assert problem in info.value.message


def test_channel_flag_options_map_to_the_api_fields() -> None:
    channel = parse_channel_flag(
        "train=s3://b/m.manifest,type=AugmentedManifestFile,attributes=source-ref;label,"
        "wrapper=RecordIO,compression=Gzip,mode=Pipe,seed=7"
    )
    assert channel == {
        "ChannelName": "train",
        "RecordWrapperType": "RecordIO",
        "CompressionType": "Gzip",
        "InputMode": "Pipe",
        "ShuffleConfig": {"Seed": 7},
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "AugmentedManifestFile",
                "S3Uri": "s3://b/m.manifest",
                "AttributeNames": ["source-ref", "label"],
            }
        },
    }


def test_a_spec_file_may_be_given_as_a_file_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "job.json").write_text(json.dumps(request()))
    absolute = training_request(argparse.Namespace(spec=f"file://{tmp_path / 'job.json'}"))
    monkeypatch.chdir(tmp_path)
    relative = training_request(argparse.Namespace(spec="file://job.json"))
    plain = training_request(argparse.Namespace(spec="job.json"))
    assert absolute["TrainingJobName"] == relative["TrainingJobName"] == "job-1"
    assert absolute == relative == plain


def test_a_spec_that_is_not_a_local_file_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"a spec is a local file \(a path or file:// URI\)"):
        training_request(argparse.Namespace(spec="s3://bucket/job.json"))
    with pytest.raises(SpecError, match=r"cannot read spec file .*nope\.json: No such file"):
        training_request(argparse.Namespace(spec=f"file://{tmp_path}/nope.json"))
