"""CreateTransformJob request -> :class:`TransformJobSpec`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sagedock.toolkit.errors import UserError
from sagedock.toolkit.local import locations

from .reader import Node
from .schema import LocalRules, check_request

JOB_NAME_PATTERN = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"  # a folder name: keep it inside
#: The S3DataType values a local transform reads (the API also has AugmentedManifestFile).
S3_DATA_TYPES = ("S3Prefix", "ManifestFile")
#: SageMaker's limit on MaxConcurrentTransforms x MaxPayloadInMB (the model gives no range).
MAX_PAYLOAD_TIMES_CONCURRENCY = 100
LOCAL_INSTANCE_TYPES = ("local", "local_gpu")

#: How a local transform departs from CreateTransformJob (see :class:`.schema.LocalRules`).
RULES = LocalRules(
    ignored=frozenset(
        {
            "Tags",
            "ExperimentConfig",
            "DataCaptureConfig",
            "TransformOutput.KmsKeyId",
            "TransformResources.VolumeKmsKeyId",
            "TransformResources.TransformAmiVersion",
        }
    ),
    # The model comes from --model / --model-spec; flags fill in the resources.
    optional=frozenset({"ModelName", "TransformResources"}),
    extra_values={"TransformResources.InstanceType": LOCAL_INSTANCE_TYPES},
)


@dataclass(frozen=True)
class TransformJobSpec:
    """A batch transform, validated. ``None`` in *max_concurrent*, *max_payload_mb* and
    *batch_strategy* means "not set in the request" (the container's
    ``/execution-parameters`` or the defaults then decide)."""

    name: str
    model_name: str
    input_location: str
    output_location: str
    input_data_type: str = "S3Prefix"
    content_type: str | None = None
    compression: str = "None"
    split_type: str = "None"
    accept: str | None = None
    assemble_with: str = "None"
    batch_strategy: str | None = None
    max_payload_mb: int | None = None
    max_concurrent: int | None = None
    invocation_timeout: int = 600
    invocation_retries: int = 3
    input_filter: str = "$"
    output_filter: str = "$"
    join_source: str = "None"
    instance_count: int = 1
    instance_type: str = "local"
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: JSON paths of the request's fields that the local platform ignores (for the log).
    ignored: tuple[str, ...] = ()
    request: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False
    )

    @property
    def has_data_processing(self) -> bool:
        return self.input_filter != "$" or self.output_filter != "$" or self.join_source != "None"


def _location(node: Node, key: str, cwd: Path | None) -> str:
    raw = node.string(key, required=True) or ""
    try:
        return locations.normalize(raw, cwd=cwd)
    except UserError as exc:
        raise node.error(exc.message, key) from None


def parse_transform_job(
    doc: Node | Mapping[str, Any], *, cwd: Path | None = None
) -> TransformJobSpec:
    """Validate a CreateTransformJob request.

    :raises SpecError: naming the JSON path of the first bad field.
    """
    root = doc if isinstance(doc, Node) else Node(dict(doc))
    checked = check_request(root, "CreateTransformJob", RULES)
    name = root.string("TransformJobName", required=True, pattern=JOB_NAME_PATTERN) or ""
    model_name = root.string("ModelName", default="model") or "model"
    max_concurrent = root.integer("MaxConcurrentTransforms", maximum=100)
    max_payload = root.integer("MaxPayloadInMB", maximum=100)
    strategy = root.string("BatchStrategy")
    limit = MAX_PAYLOAD_TIMES_CONCURRENCY
    if max_concurrent and max_payload and max_concurrent * max_payload > limit:
        raise root.error(
            f"MaxConcurrentTransforms x MaxPayloadInMB must not exceed {limit}", "MaxPayloadInMB"
        )

    client = root.object("ModelClientConfig") or Node({}, "ModelClientConfig")
    timeout = client.integer("InvocationsTimeoutInSeconds", default=600)
    retries = client.integer("InvocationsMaxRetries", default=3)

    tin = root.object("TransformInput", required=True)
    assert tin is not None
    source = tin.object("DataSource", required=True)
    assert source is not None
    s3 = source.object("S3DataSource", required=True)
    assert s3 is not None
    data_type = s3.string("S3DataType", required=True) or ""
    if data_type not in S3_DATA_TYPES:
        raise s3.error(
            f"{data_type} is not supported by the local platform (it reads "
            f"{', '.join(S3_DATA_TYPES)})",
            "S3DataType",
        )
    input_location = _location(s3, "S3Uri", cwd)
    split = tin.string("SplitType", default="None") or "None"

    tout = root.object("TransformOutput", required=True)
    assert tout is not None
    output_location = _location(tout, "S3OutputPath", cwd)

    resources = root.object("TransformResources") or Node({}, "TransformResources")

    processing = root.object("DataProcessing") or Node({}, "DataProcessing")
    input_filter = processing.string("InputFilter", default="$") or "$"
    output_filter = processing.string("OutputFilter", default="$") or "$"
    join = processing.string("JoinSource", default="None") or "None"
    # Parse the filters now so that a bad expression is reported against its field.
    from sagedock.toolkit.local.transform.jsonpath import JsonPathError, parse_jsonpath

    for key, expr in (("InputFilter", input_filter), ("OutputFilter", output_filter)):
        try:
            parse_jsonpath(expr)
        except JsonPathError as exc:
            raise processing.error(str(exc), key) from None
    if (input_filter != "$" or output_filter != "$" or join != "None") and split in (
        "RecordIO",
        "TFRecord",
    ):
        raise processing.error(
            f"DataProcessing works on CSV and JSON records; SplitType {split} cannot be filtered"
        )

    return TransformJobSpec(
        name=name,
        model_name=model_name,
        input_location=input_location,
        output_location=output_location,
        input_data_type=data_type,
        content_type=tin.string("ContentType"),
        compression=tin.string("CompressionType", default="None") or "None",
        split_type=split,
        accept=tout.string("Accept"),
        assemble_with=tout.string("AssembleWith", default="None") or "None",
        batch_strategy=strategy,
        max_payload_mb=max_payload,
        max_concurrent=max_concurrent or None,
        invocation_timeout=timeout or 600,
        invocation_retries=3 if retries is None else retries,
        input_filter=input_filter,
        output_filter=output_filter,
        join_source=join,
        instance_count=resources.integer("InstanceCount", default=1, minimum=1) or 1,
        instance_type=resources.string("InstanceType", default="local") or "local",
        environment=MappingProxyType(root.string_map("Environment")),
        ignored=checked.ignored,
        request=MappingProxyType(dict(root.as_object())),
    )
