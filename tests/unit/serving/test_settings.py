from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

from sagedock.serving import command
from sagedock.serving.settings import (
    ServingSettings,
    SettingError,
    markdown_table,
    settings_fields,
)

REPO = Path(__file__).resolve().parents[3]


def test_every_default_loads_from_an_empty_environment() -> None:
    settings = ServingSettings.load({})
    assert settings.port == 8080
    assert settings.workers >= 1
    assert settings.timeout == 60
    assert settings.max_payload_mb == 6
    assert settings.max_payload_bytes == 6 * 1024 * 1024
    assert settings.use_nginx is True
    assert settings.multi_model is False
    assert settings.model_dir == Path("/opt/ml/model")
    assert settings.models_dir == Path("/opt/ml/models")
    assert settings.log_level == logging.INFO


def test_every_setting_names_a_distinct_variable_and_documents_itself() -> None:
    names = [spec.metadata["env"] for spec in settings_fields()]
    assert len(names) == len(set(names))
    for spec in settings_fields():
        assert spec.metadata["doc"].endswith(".")
        assert spec.metadata["env"].startswith(("SAGEMAKER_", "SAGEDOCK_"))


def test_issue_variables_are_all_declared() -> None:
    declared = {spec.metadata["env"] for spec in settings_fields()}
    assert {
        "SAGEMAKER_BIND_TO_PORT",
        "SAGEMAKER_SAFE_PORT_RANGE",
        "SAGEMAKER_MODEL_SERVER_WORKERS",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB",
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT",
        "SAGEMAKER_PROGRAM",
        "SAGEMAKER_SUBMIT_DIRECTORY",
        "SAGEMAKER_CONTAINER_LOG_LEVEL",
        "SAGEMAKER_BATCH",
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS",
        "SAGEMAKER_BATCH_STRATEGY",
        "SAGEMAKER_MULTI_MODEL",
        "SAGEMAKER_USE_NGINX",
    } <= declared


def test_environment_values_are_parsed() -> None:
    settings = ServingSettings.load(
        {
            "SAGEMAKER_BIND_TO_PORT": "9000",
            "SAGEMAKER_SAFE_PORT_RANGE": "9001-9010",
            "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": "2.5",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": "0",
            "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "Text/CSV; charset=utf-8",
            "SAGEMAKER_CONTAINER_LOG_LEVEL": "debug",
            "SAGEMAKER_BATCH": "True",
            "SAGEMAKER_BATCH_STRATEGY": "SingleRecord",
            "SAGEMAKER_MULTI_MODEL": "true",
            "SAGEMAKER_USE_NGINX": "false",
            "SAGEMAKER_BASE_DIR": "/srv/ml",
        }
    )
    assert settings.port == 9000
    assert settings.safe_port_range == (9001, 9010)
    assert settings.workers == 3
    assert settings.timeout == 2.5
    assert settings.max_payload_bytes is None  # 0: no limit
    assert settings.default_accept == "text/csv"
    assert settings.log_level == logging.DEBUG
    assert settings.batch is True
    assert settings.batch_strategy == "SINGLE_RECORD"
    assert settings.multi_model is True
    assert settings.use_nginx is False
    assert settings.models_dir == Path("/srv/ml/models")


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "two", "expected a number"),
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "0", "positive integer"),
        ("SAGEMAKER_BIND_TO_PORT", "70000", "between 1 and 65535"),
        ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "-1", "positive number of seconds"),
        ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "lots", "expected a number"),
        ("SAGEMAKER_USE_NGINX", "maybe", "true or false"),
        ("SAGEMAKER_BATCH_STRATEGY", "ALL", "MULTI_RECORD or SINGLE_RECORD"),
        ("SAGEMAKER_SAFE_PORT_RANGE", "9000", "range like"),
        ("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "*/*", "media type"),
        ("SAGEMAKER_CONTAINER_LOG_LEVEL", "chatty", "logging level"),
    ],
)
def test_bad_values_are_errors_naming_the_variable(name: str, value: str, reason: str) -> None:
    with pytest.raises(SettingError) as caught:
        ServingSettings.load({name: value})
    assert caught.value.message.startswith(f"{name}={value!r} is invalid")
    assert reason in caught.value.message
    assert caught.value.describe().startswith("ClientError: ")


def test_overrides_win_over_the_environment() -> None:
    settings = ServingSettings.load(
        {"SAGEMAKER_BIND_TO_PORT": "9000"}, overrides={"port": 9100, "workers": None}
    )
    assert settings.port == 9100
    assert settings.workers >= 1


def test_json_snapshot_round_trips() -> None:
    settings = ServingSettings.load(
        {"SAGEMAKER_SAFE_PORT_RANGE": "9001-9010", "SAGEDOCK_MODEL_DIR": "/m"}
    )
    assert ServingSettings.from_json(settings.to_json()) == settings


def test_serve_flags_are_generated_from_the_settings() -> None:
    parser = argparse.ArgumentParser()
    command.configure(parser)
    args = parser.parse_args(
        ["--port", "9200", "--no-nginx", "--algorithm", "xgboost", "--model-dir", "/m"]
    )
    assert (args.port, args.use_nginx, args.algorithm) == (9200, False, "xgboost")
    assert args.model_dir_override == Path("/m")
    assert parser.parse_args([]).use_nginx is None  # unset: the environment decides
    with pytest.raises(SystemExit):
        parser.parse_args(["--workers", "none"])


def test_readme_serving_table_is_the_generated_one() -> None:
    readme = (REPO / "README.md").read_text()
    assert markdown_table() in readme
