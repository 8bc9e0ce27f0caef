"""Which channels, content types and input modes SageMaker's XGBoost accepts.

Channels are ``train`` (required), ``validation`` and ``code`` (``text/python``, script mode).
A channel without ``ContentType`` is ``text/libsvm``. Content types match exactly (no
parameters, no other case): ``text/csv; label_size=1`` is refused here even though the reader
would understand it, as SageMaker's channel validation does. libsvm has no Pipe mode.
FastFile channels are read like File channels (the files appear under the same directory).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sagedock.containers.data.content_types import ACCEPTED_CONTENT_TYPES, DEFAULT_CONTENT_TYPE
from sagedock.toolkit.errors import UserError

TRAIN = "train"
VALIDATION = "validation"
CODE = "code"

#: File mode takes every spelling the readers accept.
FILE_CONTENT_TYPES: tuple[str, ...] = ACCEPTED_CONTENT_TYPES
PIPE_CONTENT_TYPES: tuple[str, ...] = (
    "csv",
    "parquet",
    "recordio-protobuf",
    "text/csv",
    "application/x-parquet",
    "application/x-recordio-protobuf",
)
DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")


def _supported(name: str, config: Mapping[str, Any]) -> bool:
    content_type = config.get("ContentType")
    mode = config.get("TrainingInputMode", "File")
    distribution = config.get("S3DistributionType", "FullyReplicated")
    if name == CODE:
        return (
            content_type == "text/python" and mode == "File" and distribution == "FullyReplicated"
        )
    if distribution not in DISTRIBUTIONS:
        return False
    if mode in ("File", "FastFile"):
        return content_type in FILE_CONTENT_TYPES
    if mode == "Pipe":
        return content_type in PIPE_CONTENT_TYPES
    return False


def validate_channels(input_data_config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The channels of ``inputdataconfig.json`` with defaults filled in, or a UserError with
    SageMaker's message (``Missing required channel: train``, ``Extraneous channel found: x``,
    ``Channel configuration for 'train' channel is not supported: {...}``)."""
    if TRAIN not in input_data_config:
        raise UserError(f"Missing required channel: {TRAIN}")
    validated: dict[str, dict[str, Any]] = {}
    for name, raw in input_data_config.items():
        if name not in (TRAIN, VALIDATION, CODE):
            raise UserError(f"Extraneous channel found: {name}")
        config = dict(raw)
        config.setdefault("ContentType", DEFAULT_CONTENT_TYPE)
        if not _supported(name, config):
            raise UserError(
                f"Channel configuration for '{name}' channel is not supported: {config}"
            )
        validated[name] = config
    return validated
