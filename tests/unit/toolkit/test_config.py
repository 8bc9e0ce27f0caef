"""input/config/*.json -> frozen dataclasses; errors name the file and the position/field."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from sagedock.toolkit.channels import ChannelSpec, parse_input_data_config
from sagedock.toolkit.config import (
    CheckpointConfig,
    Hyperparameters,
    ResourceConfig,
    load_json,
    read_job_config,
)
from sagedock.toolkit.errors import UserError
from sagedock.toolkit.paths import MlPaths


def _write(paths: MlPaths, name: str, text: str) -> None:
    paths.input_config_dir.mkdir(parents=True, exist_ok=True)
    (paths.input_config_dir / name).write_text(text)


def test_malformed_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "resourceconfig.json"
    path.write_text('{"hosts": ["algo-1"],\n "current_host": }')
    with pytest.raises(
        UserError, match=r"resourceconfig\.json: malformed JSON at line 2, column 18"
    ):
        load_json(path)


def test_non_utf8_config_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "hyperparameters.json"
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(UserError, match="is not UTF-8"):
        load_json(path)


def test_hyperparameters_keep_raw_and_decoded_values() -> None:
    hps = Hyperparameters.from_json({"epochs": "10", "name": "a b", "n": 3}, "hp.json")
    assert dict(hps.raw) == {"epochs": "10", "name": "a b", "n": "3"}
    assert dict(hps.decoded) == {"epochs": 10, "name": "a b", "n": 3}
    with pytest.raises(TypeError):
        hps.decoded["epochs"] = 1  # type: ignore[index]


def test_hyperparameters_must_be_an_object() -> None:
    with pytest.raises(UserError, match=r"hp\.json must hold a JSON object, not list"):
        Hyperparameters.from_json([1], "hp.json")


def test_resource_config_reads_every_key_with_sagemaker_defaults() -> None:
    raw = {"current_host": "algo-2", "hosts": ["algo-1", "algo-2"], "extra": 1}
    config = ResourceConfig.from_json(raw, "rc.json")
    assert config.current_host == "algo-2"
    assert config.hosts == ("algo-1", "algo-2")
    assert config.current_instance_type == "local"
    assert config.current_group_name == "homogeneousCluster"
    assert config.network_interface_name == "eth0"
    assert dict(config.raw) == raw


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"current_host": "algo-1"}, "'hosts' must be a non-empty list"),
        ({"hosts": ["algo-1"]}, "required field 'current_host' is missing"),
        ({"hosts": ["algo-1"], "current_host": "algo-9"}, "'algo-9' is not one of hosts"),
        (
            {"hosts": ["a"], "current_host": "a", "instance_groups": [{"hosts": ["a"]}]},
            r"instance_groups\[0\]: required field 'instance_group_name'",
        ),
    ],
)
def test_bad_resource_config_names_the_field(document: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        ResourceConfig.from_json(document, "rc.json")


def test_channels_take_sagemaker_defaults_and_refuse_unknown_modes() -> None:
    channels = parse_input_data_config(
        {"train": {"ContentType": "text/csv"}, "p": {"TrainingInputMode": "Pipe"}}, "idc.json"
    )
    assert channels["train"] == ChannelSpec("train", "text/csv", "File", "FullyReplicated", "None")
    assert channels["p"].input_mode == "Pipe"
    with pytest.raises(UserError, match=r"idc\.json: channel 'x': TrainingInputMode is 'Stream'"):
        parse_input_data_config({"x": {"TrainingInputMode": "Stream"}}, "idc.json")


def test_checkpoint_config_local_path_defaults_to_checkpoints(tmp_path: Path) -> None:
    assert CheckpointConfig.from_json({}, "c.json", tmp_path).local_path == tmp_path
    given = CheckpointConfig.from_json(
        {"LocalPath": "/ckpt", "S3Uri": "s3://b/c"}, "c.json", tmp_path
    )
    assert (given.local_path, given.s3_uri) == (Path("/ckpt"), "s3://b/c")


def test_missing_files_mean_one_local_host_said_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths = MlPaths(tmp_path)
    with caplog.at_level(logging.INFO):
        job = read_job_config(paths)
    assert job.resource_config.hosts == ("algo-1",)
    assert dict(job.hyperparameters.decoded) == {}
    assert dict(job.channels) == {}
    assert job.checkpoint.local_path == tmp_path / "checkpoints"
    assert "running as one local host named 'algo-1'" in caplog.text


def test_read_job_config_reads_all_files(tmp_path: Path) -> None:
    paths = MlPaths(tmp_path)
    _write(paths, "hyperparameters.json", json.dumps({"a": "1"}))
    _write(paths, "inputdataconfig.json", json.dumps({"train": {"TrainingInputMode": "File"}}))
    _write(paths, "checkpointconfig.json", json.dumps({"LocalPath": "/c"}))
    job = read_job_config(paths)
    assert job.hyperparameters.decoded["a"] == 1
    assert list(job.channels) == ["train"]
    assert job.checkpoint.local_path == Path("/c")


@pytest.mark.parametrize(
    "name",
    [
        "hyperparameters.json",
        "resourceconfig.json",
        "inputdataconfig.json",
        "checkpointconfig.json",
    ],
)
def test_json_nested_too_deeply_is_a_user_error_naming_the_file(tmp_path: Path, name: str) -> None:
    # 100000 "[" ends json's recursion: a RecursionError traceback without the file's name.
    paths = MlPaths(tmp_path)
    _write(paths, name, "[" * 100_000)
    with pytest.raises(UserError) as info:
        read_job_config(paths)
    assert info.value.message == (
        f"{paths.input_config_dir / name}: JSON nested too deeply to read "
        "(arrays or objects hundreds of levels deep)"
    )


def test_a_hyperparameter_value_nested_too_deeply_names_the_file_and_key() -> None:
    # SageMaker writes each value as a string, which is JSON-decoded in its turn.
    with pytest.raises(UserError) as info:
        Hyperparameters.from_json({"epochs": "3", "layers": "[" * 100_000}, "hp.json")
    assert info.value.message == (
        "hp.json: the value of hyperparameter 'layers' is JSON nested too deeply to read "
        "(arrays or objects hundreds of levels deep)"
    )


def test_nesting_short_of_the_limit_still_reads(tmp_path: Path) -> None:
    paths = MlPaths(tmp_path)
    _write(paths, "hyperparameters.json", json.dumps({"layers": "[" * 200 + "]" * 200}))
    decoded = read_job_config(paths).hyperparameters.decoded["layers"]
    for _ in range(199):
        decoded = decoded[0]
    assert decoded == []
