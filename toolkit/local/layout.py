"""The ``/opt/ml`` tree of one host, written as SageMaker writes it.

The functions returning dicts are pure (the exact JSON SageMaker puts in
``input/config/``); :func:`write_host_tree` creates the directories and files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagedock.toolkit.paths import MlPaths

from .spec.training import TrainingJobSpec


def resource_config(
    spec: TrainingJobSpec, host: str, *, network_interface: str = "eth0"
) -> dict[str, Any]:
    """``resourceconfig.json`` for *host*: hosts sorted as SageMaker sorts them, the instance
    type and group of the host, and every instance group with its hosts."""
    group = spec.group_of(host)
    return {
        "current_host": host,
        "current_instance_type": group.instance_type,
        "current_group_name": group.name,
        "hosts": sorted(spec.hosts),
        "instance_groups": [
            {
                "instance_group_name": g.name,
                "instance_type": g.instance_type,
                "hosts": sorted(spec.hosts_of(g.name)),
            }
            for g in spec.instance_groups
        ],
        "network_interface_name": network_interface,
    }


def input_data_config(spec: TrainingJobSpec, host: str) -> dict[str, dict[str, str]]:
    """``inputdataconfig.json``: the channels *host* receives, each with ``ContentType`` (when
    given), ``TrainingInputMode``, ``S3DistributionType`` and ``RecordWrapperType``."""
    out: dict[str, dict[str, str]] = {}
    for c in spec.channels_for(host):
        entry: dict[str, str] = {}
        if c.content_type:
            entry["ContentType"] = c.content_type
        entry["TrainingInputMode"] = c.input_mode
        entry["S3DistributionType"] = c.distribution
        entry["RecordWrapperType"] = c.record_wrapper
        out[c.name] = entry
    return out


def checkpoint_config(spec: TrainingJobSpec, local_path: str) -> dict[str, str] | None:
    """``checkpointconfig.json`` (only when the job has a CheckpointConfig)."""
    if spec.checkpoint_uri is None:
        return None
    return {"LocalPath": local_path, "S3Uri": spec.checkpoint_uri}


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def write_host_tree(
    paths: MlPaths,
    *,
    hyperparameters: Mapping[str, str],
    resource: Mapping[str, Any],
    input_data: Mapping[str, Any],
    checkpoint: Mapping[str, str] | None,
) -> None:
    """Create the host's tree (``input/config``, ``input/data``, ``model``, ``output/data``,
    ``output/intermediate``, ``code``, ``checkpoints``) and write the config files."""
    for d in (
        paths.input_config_dir,
        paths.input_data_dir,
        paths.model_dir,
        paths.output_data_dir,
        paths.output_intermediate_dir,
        paths.code_dir,
    ):
        d.mkdir(parents=True, exist_ok=True)
    _write_json(paths.hyperparameters_file, dict(hyperparameters))
    _write_json(paths.resource_config_file, dict(resource))
    _write_json(paths.input_data_config_file, dict(input_data))
    if checkpoint is not None:
        _write_json(paths.checkpoint_config_file, dict(checkpoint))
