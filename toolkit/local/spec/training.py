"""CreateTrainingJob request -> :class:`TrainingJobSpec`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sagedock.toolkit.errors import UserError
from sagedock.toolkit.local import locations

from .reader import Node, SpecError
from .schema import LocalRules, check_request

# Names become folder names (the job's, input/data/<channel>): the API's patterns, checked here
# because they keep paths inside their folders.
JOB_NAME_PATTERN = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
CHANNEL_NAME_PATTERN = r"[A-Za-z0-9.\-_]{1,64}"
#: The S3DataType values the local platform stages (the API also has Converse).
S3_DATA_TYPES = ("S3Prefix", "ManifestFile", "AugmentedManifestFile")
DEFAULT_MAX_RUNTIME = 86400  # SageMaker's default StoppingCondition (one day)
MAX_MAX_RUNTIME = 28 * 86400
MAX_INSTANCES = 64
DEFAULT_CHECKPOINT_PATH = "/opt/ml/checkpoints"
HOMOGENEOUS_GROUP = "homogeneousCluster"
#: The instance types of SageMaker's SDK local mode, accepted besides the API's.
LOCAL_INSTANCE_TYPES = ("local", "local_gpu")

#: How a local job departs from CreateTrainingJob (see :class:`.schema.LocalRules`).
RULES = LocalRules(
    ignored=frozenset(
        {
            "RoleArn",
            "Tags",
            "VpcConfig",
            "EnableNetworkIsolation",
            "EnableInterContainerTrafficEncryption",
            "EnableManagedSpotTraining",
            "DebugHookConfig",
            "DebugRuleConfigurations",
            "TensorBoardOutputConfig",
            "ExperimentConfig",
            "ProfilerConfig",
            "ProfilerRuleConfigurations",
            "RetryStrategy",
            "RemoteDebugConfig",
            "InfraCheckConfig",
            "SessionChainingConfig",
            "MlflowConfig",
            "ModelPackageConfig",
            "AlgorithmSpecification.EnableSageMakerMetricsTimeSeries",
            "AlgorithmSpecification.TrainingImageConfig",
            "InputDataConfig[].DataSource.S3DataSource.ModelAccessConfig",
            "InputDataConfig[].DataSource.S3DataSource.HubAccessConfig",
            "OutputDataConfig.KmsKeyId",
            "ResourceConfig.VolumeSizeInGB",
            "ResourceConfig.VolumeKmsKeyId",
            "ResourceConfig.KeepAlivePeriodInSeconds",
            "ResourceConfig.TrainingPlanArn",
            "ResourceConfig.InstancePlacementConfig",
            "ResourceConfig.InstancePreferences",
            "StoppingCondition.MaxWaitTimeInSeconds",
            "StoppingCondition.MaxPendingTimeInSeconds",
        }
    ),
    optional=frozenset({"RoleArn"}),
    extra_values={
        "ResourceConfig.InstanceType": LOCAL_INSTANCE_TYPES,
        "ResourceConfig.InstanceGroups[].InstanceType": LOCAL_INSTANCE_TYPES,
    },
)


@dataclass(frozen=True)
class MetricDefinition:
    """A metric read from the logs: the first group of *regex* (or the whole match) is the
    value."""

    name: str
    regex: str

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(self.regex)


@dataclass(frozen=True)
class InputChannel:
    """One ``InputDataConfig`` entry."""

    name: str
    location: str
    data_type: str = "S3Prefix"
    distribution: str = "FullyReplicated"
    content_type: str | None = None
    compression: str = "None"
    record_wrapper: str = "None"
    input_mode: str = "File"
    attribute_names: tuple[str, ...] = ()
    instance_groups: tuple[str, ...] = ()
    shuffle_seed: int | None = None


@dataclass(frozen=True)
class InstanceGroup:
    name: str
    instance_type: str
    count: int


@dataclass(frozen=True)
class TrainingJobSpec:
    """Everything a local training job needs, validated. Locations are ``s3://`` URIs or
    absolute local paths (see :func:`sagedock.toolkit.local.locations.normalize`)."""

    name: str
    hyperparameters: Mapping[str, str]
    channels: tuple[InputChannel, ...]
    output_path: str
    instance_groups: tuple[InstanceGroup, ...]
    image: str | None = None
    algorithm_name: str | None = None
    input_mode: str = "File"
    metric_definitions: tuple[MetricDefinition, ...] = ()
    entrypoint: tuple[str, ...] = ()
    arguments: tuple[str, ...] = ()
    output_compression: str = "GZIP"
    heterogeneous: bool = False
    max_runtime: int = DEFAULT_MAX_RUNTIME
    checkpoint_uri: str | None = None
    checkpoint_local_path: str = DEFAULT_CHECKPOINT_PATH
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: JSON paths of the request's fields that the local platform ignores (for the log).
    ignored: tuple[str, ...] = ()
    request: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False
    )

    @property
    def instance_count(self) -> int:
        return sum(g.count for g in self.instance_groups)

    @property
    def hosts(self) -> tuple[str, ...]:
        """``algo-1`` ... ``algo-N``, numbered across instance groups in order."""
        return tuple(f"algo-{i}" for i in range(1, self.instance_count + 1))

    def group_of(self, host: str) -> InstanceGroup:
        index = self.hosts.index(host)
        for group in self.instance_groups:
            if index < group.count:
                return group
            index -= group.count
        raise KeyError(host)  # pragma: no cover - hosts come from the groups

    def hosts_of(self, group_name: str) -> tuple[str, ...]:
        return tuple(h for h in self.hosts if self.group_of(h).name == group_name)

    def receives(self, host: str, channel: InputChannel) -> bool:
        """Whether *host* gets *channel*: every host does, unless the channel's
        ``InstanceGroupNames`` limits it to some instance groups."""
        return not channel.instance_groups or self.group_of(host).name in channel.instance_groups

    def channels_for(self, host: str) -> tuple[InputChannel, ...]:
        """The channels *host* receives."""
        return tuple(c for c in self.channels if self.receives(host, c))

    def hosts_receiving(self, channel: InputChannel) -> tuple[str, ...]:
        """The hosts that get *channel*, in host order. ``ShardedByS3Key`` deals a channel out
        among these hosts only, so that no object is left to a host that never receives it."""
        return tuple(h for h in self.hosts if self.receives(h, channel))


def _location(node: Node, key: str, cwd: Path | None) -> str:
    raw = node.string(key, required=True)
    assert raw is not None
    try:
        return locations.normalize(raw, cwd=cwd)
    except UserError as exc:
        raise node.error(exc.message, key) from None


def _channel(node: Node, default_mode: str, cwd: Path | None) -> InputChannel:
    name = node.string("ChannelName", required=True, pattern=CHANNEL_NAME_PATTERN)
    if name in (".", ".."):
        raise node.error(f"{name!r} is not a channel name", "ChannelName")
    source = node.object("DataSource", required=True)
    assert source is not None and name is not None
    for other in ("FileSystemDataSource", "DatasetSource"):
        if source.has(other):
            raise source.error(
                "EFS/FSx file systems and datasets are not available locally; use "
                "S3DataSource with a local path or file:// URI",
                other,
            )
    s3 = source.object("S3DataSource", required=True)
    assert s3 is not None
    data_type = s3.string("S3DataType", required=True) or ""
    if data_type not in S3_DATA_TYPES:
        raise s3.error(
            f"{data_type} is not supported by the local platform (it stages "
            f"{', '.join(S3_DATA_TYPES)})",
            "S3DataType",
        )
    input_mode = node.string("InputMode", default=default_mode) or default_mode
    compression = node.string("CompressionType", default="None") or "None"
    wrapper = node.string("RecordWrapperType", default="None") or "None"
    if compression == "Gzip" and input_mode != "Pipe":
        raise node.error(
            "Gzip is only used in Pipe input mode (SageMaker requires None in File mode)",
            "CompressionType",
        )
    attributes = s3.string_list("AttributeNames")
    if data_type == "AugmentedManifestFile":
        if input_mode != "Pipe":
            raise s3.error(
                "AugmentedManifestFile needs the Pipe input mode (as on SageMaker)", "S3DataType"
            )
        if not attributes:
            raise s3.error("is required for an AugmentedManifestFile", "AttributeNames")
    elif attributes:
        raise s3.error("is only valid with S3DataType AugmentedManifestFile", "AttributeNames")
    shuffle = node.object("ShuffleConfig")
    seed = shuffle.integer("Seed", required=True) if shuffle is not None else None
    return InputChannel(
        name=name,
        location=_location(s3, "S3Uri", cwd),
        data_type=data_type,
        distribution=s3.string("S3DataDistributionType", default="FullyReplicated")
        or "FullyReplicated",
        content_type=node.string("ContentType"),
        compression=compression,
        record_wrapper=wrapper,
        input_mode=input_mode,
        attribute_names=attributes,
        instance_groups=s3.string_list("InstanceGroupNames"),
        shuffle_seed=seed,
    )


def _instance_groups(node: Node) -> tuple[tuple[InstanceGroup, ...], bool]:
    groups = node.items("InstanceGroups")
    if groups:
        if node.has("InstanceCount") or node.has("InstanceType"):
            raise node.error("give either InstanceGroups or InstanceType/InstanceCount, not both")
        out = []
        for g in groups:
            out.append(
                InstanceGroup(
                    name=g.string("InstanceGroupName", required=True) or "",
                    instance_type=g.string("InstanceType", required=True) or "",
                    count=g.integer("InstanceCount", required=True, minimum=1) or 1,
                )
            )
        names = [g.name for g in out]
        if len(set(names)) != len(names):
            raise node.error("instance group names must be unique", "InstanceGroups")
        return tuple(out), True
    count = node.integer("InstanceCount", default=1, minimum=1, maximum=MAX_INSTANCES) or 1
    instance_type = node.string("InstanceType", default="local") or "local"
    return (InstanceGroup(HOMOGENEOUS_GROUP, instance_type, count),), False


def parse_training_job(
    doc: Node | Mapping[str, Any], *, cwd: Path | None = None
) -> TrainingJobSpec:
    """Validate a CreateTrainingJob request and return the spec.

    Local paths and ``file://`` URIs are accepted wherever SageMaker takes an S3 URI; relative
    paths are resolved against *cwd* (default: the working directory).

    :raises SpecError: naming the JSON path of the first bad field.
    """
    root = doc if isinstance(doc, Node) else Node(dict(doc))
    checked = check_request(root, "CreateTrainingJob", RULES)
    if root.has("ServerlessJobConfig"):
        raise root.error(
            "serverless training jobs are not available locally", "ServerlessJobConfig"
        )
    name = root.string("TrainingJobName", required=True, pattern=JOB_NAME_PATTERN)
    assert name is not None

    algo = root.object("AlgorithmSpecification") or Node({}, "AlgorithmSpecification")
    input_mode = algo.string("TrainingInputMode", default="File") or "File"
    metrics = []
    for m in algo.items("MetricDefinitions"):
        regex = m.string("Regex", required=True) or ""
        try:
            re.compile(regex)
        except re.error as exc:
            raise m.error(f"not a valid regular expression: {exc}", "Regex") from None
        metrics.append(MetricDefinition(m.string("Name", required=True) or "", regex))

    hyperparameters = root.string_map("HyperParameters")

    channels = [_channel(c, input_mode, cwd) for c in root.items("InputDataConfig")]
    seen: set[str] = set()
    for i, c in enumerate(channels):
        if c.name in seen:
            raise root.error(f"duplicate channel name {c.name!r}", f"InputDataConfig[{i}]")
        seen.add(c.name)

    output = root.object("OutputDataConfig", required=True)
    assert output is not None
    output_path = _location(output, "S3OutputPath", cwd)
    compression = output.string("CompressionType", default="GZIP")

    resources = root.object("ResourceConfig") or Node({}, "ResourceConfig")
    groups, heterogeneous = _instance_groups(resources)
    group_names = {g.name for g in groups}
    for i, c in enumerate(channels):
        for g in c.instance_groups:
            if g not in group_names:
                raise root.error(
                    f"instance group {g!r} is not in ResourceConfig.InstanceGroups",
                    f"InputDataConfig[{i}].DataSource.S3DataSource.InstanceGroupNames",
                )

    stopping = root.object("StoppingCondition") or Node({}, "StoppingCondition")
    max_runtime = stopping.integer(
        "MaxRuntimeInSeconds", default=DEFAULT_MAX_RUNTIME, minimum=1, maximum=MAX_MAX_RUNTIME
    )

    checkpoint = root.object("CheckpointConfig")
    checkpoint_uri = None
    checkpoint_path = DEFAULT_CHECKPOINT_PATH
    if checkpoint is not None:
        checkpoint_uri = _location(checkpoint, "S3Uri", cwd)
        checkpoint_path = checkpoint.string("LocalPath", default=DEFAULT_CHECKPOINT_PATH) or ""
        if not checkpoint_path.startswith("/"):
            raise checkpoint.error("must be an absolute path inside the container", "LocalPath")

    return TrainingJobSpec(
        name=name,
        image=algo.string("TrainingImage"),
        algorithm_name=algo.string("AlgorithmName"),
        input_mode=input_mode,
        metric_definitions=tuple(metrics),
        entrypoint=algo.string_list("ContainerEntrypoint"),
        arguments=algo.string_list("ContainerArguments"),
        hyperparameters=MappingProxyType(hyperparameters),
        channels=tuple(channels),
        output_path=output_path,
        output_compression=compression or "GZIP",
        instance_groups=groups,
        heterogeneous=heterogeneous,
        max_runtime=max_runtime or DEFAULT_MAX_RUNTIME,
        checkpoint_uri=checkpoint_uri,
        checkpoint_local_path=checkpoint_path,
        environment=MappingProxyType(root.string_map("Environment")),
        ignored=checked.ignored,
        request=MappingProxyType(dict(root.as_object())),
    )


__all__ = [
    "InputChannel",
    "InstanceGroup",
    "MetricDefinition",
    "SpecError",
    "TrainingJobSpec",
    "parse_training_job",
]
