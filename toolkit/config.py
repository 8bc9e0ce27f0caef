"""The JSON files of ``input/config/`` read into frozen dataclasses.

Each parser is a pure function of the decoded document and the file it came from (named in
every error); :func:`read_job_config` is the one place that touches the disk. Malformed JSON is
a :class:`~sagedock.toolkit.errors.UserError` naming the file, line and column.

Mappings are read-only at the top level (``types.MappingProxyType``); nested values stay the
plain lists and dicts JSON gives, because user code and AWS's encodings expect exactly those.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .channels import ChannelSpec, parse_input_data_config
from .encoding import decode_hyperparameter
from .errors import UserError
from .paths import MlPaths

log = logging.getLogger(__name__)

#: The host name of a job that has no ``resourceconfig.json`` (SageMaker's first host name).
LOCAL_HOST = "algo-1"
DEFAULT_INSTANCE_GROUP = "homogeneousCluster"
DEFAULT_NETWORK_INTERFACE = "eth0"
EMPTY: Mapping[str, Any] = MappingProxyType({})
TOO_DEEP = "JSON nested too deeply to read (arrays or objects hundreds of levels deep)"


def load_json(path: Path) -> Any:
    """The decoded JSON document in *path*.

    :raises UserError: naming the file and, for malformed JSON, the line and column.
    :raises FileNotFoundError: when *path* does not exist.
    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        # json's decoder recurses once per [ or {: a deep enough document (100000 "[") ends
        # Python's stack, which says nothing about which file was at fault.
        raise UserError(f"{path}: {TOO_DEEP}") from None


def load_optional_json(path: Path) -> Any | None:
    """Like :func:`load_json`, but ``None`` when the file does not exist."""
    try:
        return load_json(path)
    except FileNotFoundError:
        return None


def _object(value: Any, source: Path | str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise UserError(f"{source} must hold a JSON object, not {type(value).__name__}")
    return value


def _string(value: Mapping[str, Any], key: str, source: Path | str, default: str | None) -> str:
    found = value.get(key, default)
    if not isinstance(found, str) or not found:
        if found is None:
            raise UserError(f"{source}: required field {key!r} is missing")
        raise UserError(f"{source}: {key!r} must be a non-empty string, not {found!r}")
    return found


def _hosts(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(h, str) and h for h in value):
        raise UserError(f"{where} must be a non-empty list of host names, not {value!r}")
    return tuple(value)


# -- hyperparameters.json ----------------------------------------------------------------------
@dataclass(frozen=True)
class Hyperparameters:
    """``hyperparameters.json``: the values as written and as decoded, all keys."""

    raw: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    """Each value as the file holds it (SageMaker writes strings; others are re-encoded JSON)."""
    decoded: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    """Each value JSON-decoded where it parses, else the raw string."""

    @classmethod
    def from_json(cls, value: Any, source: Path | str) -> Hyperparameters:
        document = _object(value, source)
        raw = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in document.items()}
        decoded = {str(k): _decoded(str(k), v, source) for k, v in document.items()}
        return cls(raw=MappingProxyType(raw), decoded=MappingProxyType(decoded))


def _decoded(key: str, value: Any, source: Path | str) -> Any:
    try:
        return decode_hyperparameter(value)
    except RecursionError:
        # A value is JSON text of its own ("[[[..."): decoding it recurses like the file does.
        raise UserError(f"{source}: the value of hyperparameter {key!r} is {TOO_DEEP}") from None


# -- resourceconfig.json -----------------------------------------------------------------------
@dataclass(frozen=True)
class InstanceGroup:
    """One entry of ``instance_groups`` (heterogeneous clusters)."""

    name: str
    instance_type: str
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class ResourceConfig:
    """``resourceconfig.json``: the hosts of the job and which one this is."""

    current_host: str
    hosts: tuple[str, ...]
    current_instance_type: str = "local"
    current_group_name: str = DEFAULT_INSTANCE_GROUP
    network_interface_name: str = DEFAULT_NETWORK_INTERFACE
    instance_groups: tuple[InstanceGroup, ...] = ()
    topology: tuple[Any, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=lambda: EMPTY, compare=False)
    """The document as read, every key (exported as ``SM_RESOURCE_CONFIG``)."""

    @classmethod
    def from_json(cls, value: Any, source: Path | str) -> ResourceConfig:
        document = _object(value, source)
        hosts = _hosts(document.get("hosts"), f"{source}: 'hosts'")
        current = _string(document, "current_host", source, None)
        if current not in hosts:
            raise UserError(f"{source}: current_host {current!r} is not one of hosts {list(hosts)}")
        groups = document.get("instance_groups") or []
        if not isinstance(groups, list):
            raise UserError(f"{source}: 'instance_groups' must be a list, not {groups!r}")
        topology = document.get("topology") or []
        if not isinstance(topology, list):
            raise UserError(f"{source}: 'topology' must be a list, not {topology!r}")
        return cls(
            current_host=current,
            hosts=hosts,
            current_instance_type=_string(document, "current_instance_type", source, "local"),
            current_group_name=_string(
                document, "current_group_name", source, DEFAULT_INSTANCE_GROUP
            ),
            network_interface_name=_string(
                document, "network_interface_name", source, DEFAULT_NETWORK_INTERFACE
            ),
            instance_groups=tuple(_instance_group(g, i, source) for i, g in enumerate(groups)),
            topology=tuple(topology),
            raw=MappingProxyType(dict(document)),
        )

    @classmethod
    def local(cls, host: str = LOCAL_HOST) -> ResourceConfig:
        """A one-host job on this machine (what a missing ``resourceconfig.json`` means)."""
        raw = {"current_host": host, "hosts": [host]}
        return cls(current_host=host, hosts=(host,), raw=MappingProxyType(raw))


def _instance_group(value: Any, index: int, source: Path | str) -> InstanceGroup:
    where = f"{source}: instance_groups[{index}]"
    group = _object(value, where)
    return InstanceGroup(
        name=_string(group, "instance_group_name", where, None),
        instance_type=_string(group, "instance_type", where, None),
        hosts=_hosts(group.get("hosts"), f"{where}.hosts"),
    )


# -- checkpointconfig.json ---------------------------------------------------------------------
@dataclass(frozen=True)
class CheckpointConfig:
    """``checkpointconfig.json``: where checkpoints go locally and where the platform syncs them."""

    local_path: Path
    s3_uri: str | None = None

    @classmethod
    def from_json(cls, value: Any, source: Path | str, default_dir: Path) -> CheckpointConfig:
        document = _object(value, source)
        local = document.get("LocalPath") or str(default_dir)
        if not isinstance(local, str):
            raise UserError(f"{source}: 'LocalPath' must be a string, not {local!r}")
        s3_uri = document.get("S3Uri")
        if s3_uri is not None and not isinstance(s3_uri, str):
            raise UserError(f"{source}: 'S3Uri' must be a string, not {s3_uri!r}")
        return cls(local_path=Path(local), s3_uri=s3_uri)


# -- all of input/config -----------------------------------------------------------------------
@dataclass(frozen=True)
class JobConfig:
    """Everything ``input/config/`` says about the job."""

    hyperparameters: Hyperparameters
    resource_config: ResourceConfig
    input_data_config: Mapping[str, Any]
    """``inputdataconfig.json`` as read (exported as ``SM_INPUT_DATA_CONFIG``)."""
    channels: Mapping[str, ChannelSpec]
    checkpoint: CheckpointConfig


def read_job_config(paths: MlPaths) -> JobConfig:
    """Read the config files under *paths*.

    Missing files mean: no hyperparameters, no channels, one local host (said in the log), and
    checkpoints in ``checkpoints/``.
    """
    hp_doc = load_optional_json(paths.hyperparameters_file)
    rc_doc = load_optional_json(paths.resource_config_file)
    idc_doc = load_optional_json(paths.input_data_config_file)
    ckpt_doc = load_optional_json(paths.checkpoint_config_file)

    if rc_doc is None:
        resource_config = ResourceConfig.local()
        log.info(
            "no %s: running as one local host named %r",
            paths.resource_config_file,
            resource_config.current_host,
        )
    else:
        resource_config = ResourceConfig.from_json(rc_doc, paths.resource_config_file)

    input_data_config = (
        {} if idc_doc is None else dict(_object(idc_doc, paths.input_data_config_file))
    )
    default_checkpoints = CheckpointConfig(paths.default_checkpoint_dir)
    return JobConfig(
        hyperparameters=(
            Hyperparameters()
            if hp_doc is None
            else Hyperparameters.from_json(hp_doc, paths.hyperparameters_file)
        ),
        resource_config=resource_config,
        input_data_config=MappingProxyType(input_data_config),
        channels=MappingProxyType(
            parse_input_data_config(input_data_config, paths.input_data_config_file)
        ),
        checkpoint=(
            default_checkpoints
            if ckpt_doc is None
            else CheckpointConfig.from_json(
                ckpt_doc, paths.checkpoint_config_file, paths.default_checkpoint_dir
            )
        ),
    )
