"""CreateModel request (optionally with its endpoint config) -> :class:`ModelSpec`."""

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

# Model and endpoint names become folder names: the API's pattern, checked because it keeps
# them inside the state folder.
MODEL_NAME_PATTERN = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
#: The parts of a model document (our own layout: one request of each operation).
PARTS = {
    "Model": "CreateModel",
    "EndpointConfig": "CreateEndpointConfig",
    "Endpoint": "CreateEndpoint",
}
LOCAL_INSTANCE_TYPES = ("local", "local_gpu")

_CONTAINER_IGNORED = (
    "ContainerHostname",
    "ImageConfig",
    "AdditionalModelDataSources",
    "ModelPackageName",
    "InferenceSpecificationName",
    "MultiModelConfig",
    "ContainerMetricsConfig",
    "ModelDataSource.S3DataSource.ModelAccessConfig",
    "ModelDataSource.S3DataSource.HubAccessConfig",
)
#: How a local endpoint departs from each request (see :class:`.schema.LocalRules`).
RULES = {
    "CreateModel": LocalRules(
        ignored=frozenset(
            {
                "ExecutionRoleArn",
                "Tags",
                "VpcConfig",
                "EnableNetworkIsolation",
                "InferenceExecutionConfig",
                *(f"PrimaryContainer.{name}" for name in _CONTAINER_IGNORED),
                *(f"Containers[].{name}" for name in _CONTAINER_IGNORED),
            }
        ),
        optional=frozenset({"ModelName"}),
    ),
    "CreateEndpointConfig": LocalRules(
        ignored=frozenset(
            {
                "DataCaptureConfig",
                "Tags",
                "KmsKeyId",
                "AsyncInferenceConfig",
                "ExplainerConfig",
                "ShadowProductionVariants",
                "ExecutionRoleArn",
                "VpcConfig",
                "EnableNetworkIsolation",
                "ProductionVariants[].AcceleratorType",
                "ProductionVariants[].CoreDumpConfig",
                "ProductionVariants[].ServerlessConfig",
                "ProductionVariants[].VolumeSizeInGB",
                "ProductionVariants[].ModelDataDownloadTimeoutInSeconds",
                "ProductionVariants[].ManagedInstanceScaling",
                "ProductionVariants[].RoutingConfig",
            }
        ),
        optional=frozenset({"EndpointConfigName", "ProductionVariants[].VariantName"}),
        extra_values={"ProductionVariants[].InstanceType": LOCAL_INSTANCE_TYPES},
    ),
    "CreateEndpoint": LocalRules(
        ignored=frozenset({"DeploymentConfig", "Tags"}),
        optional=frozenset({"EndpointName", "EndpointConfigName"}),
    ),
}


@dataclass(frozen=True)
class ModelSpec:
    """A model to serve: its container image (or algorithm), artifacts and environment.

    *model_data* is ``None`` (nothing to unpack), a ``model.tar.gz`` location
    (*model_data_compressed*) or an uncompressed directory / S3 prefix.
    """

    name: str
    image: str | None = None
    model_data: str | None = None
    model_data_compressed: bool = True
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    multi_model: bool = False
    startup_timeout: int | None = None
    #: ``Endpoint.EndpointName`` of a whole model document: the local endpoint's name.
    endpoint_name: str | None = None
    #: JSON paths of the request's fields that the local platform ignores (for the log).
    ignored: tuple[str, ...] = ()
    request: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False
    )


def _container(
    node: Node, cwd: Path | None
) -> tuple[str | None, str | None, bool, dict[str, str], bool]:
    image = node.string("Image")
    mode = node.string("Mode", default="SingleModel")
    data: str | None = None
    compressed = True
    if node.has("ModelDataUrl") and node.has("ModelDataSource"):
        raise node.error("give either ModelDataUrl or ModelDataSource, not both")
    if node.has("ModelDataUrl"):
        raw = node.string("ModelDataUrl") or ""
        try:
            data = locations.normalize(raw, cwd=cwd)
        except UserError as exc:
            raise node.error(exc.message, "ModelDataUrl") from None
        # A local directory is accepted for convenience: it is used as /opt/ml/model as is.
        compressed = not (not locations.is_s3(data) and Path(data).is_dir())
    elif node.has("ModelDataSource"):
        source = node.object("ModelDataSource")
        assert source is not None
        s3 = source.object("S3DataSource", required=True)
        assert s3 is not None
        kind = s3.string("S3DataType", required=True)
        compression = s3.string("CompressionType", required=True)
        raw = s3.string("S3Uri", required=True) or ""
        try:
            data = locations.normalize(raw, cwd=cwd)
        except UserError as exc:
            raise s3.error(exc.message, "S3Uri") from None
        if compression == "Gzip" and kind != "S3Object":
            raise s3.error("Gzip compression needs S3DataType S3Object", "CompressionType")
        compressed = compression == "Gzip"
    return image, data, compressed, node.string_map("Environment"), mode == "MultiModel"


def parse_model(doc: Node | Mapping[str, Any], *, cwd: Path | None = None) -> ModelSpec:
    """Validate a CreateModel request; also accepts ``{"Model": CreateModel, "EndpointConfig":
    CreateEndpointConfig, "Endpoint": CreateEndpoint}``, from which the first production
    variant's ``ContainerStartupHealthCheckTimeoutInSeconds`` is used.

    :raises SpecError: naming the JSON path of the first bad field.
    """
    root = doc if isinstance(doc, Node) else Node(dict(doc))
    startup_timeout = None
    endpoint_name = None
    ignored: list[str] = []
    if "Model" in root.as_object():
        for key in root.as_object():
            if key not in PARTS:
                raise root.error(f"unknown part (a model document has {', '.join(PARTS)})", key)
        for key, operation in PARTS.items():
            part = root.object(key, required=key == "Model")
            if part is not None:
                ignored += check_request(part, operation, RULES[operation]).ignored
        config = root.object("EndpointConfig")
        if config is not None:
            variants = config.items("ProductionVariants")
            if len(variants) > 1:
                raise config.error("only one production variant runs locally", "ProductionVariants")
            if variants:
                startup_timeout = variants[0].integer("ContainerStartupHealthCheckTimeoutInSeconds")
        endpoint = root.object("Endpoint")
        if endpoint is not None:
            endpoint_name = endpoint.string("EndpointName", pattern=MODEL_NAME_PATTERN)
        model = root.object("Model", required=True)
        assert model is not None
        root = model
    else:
        ignored += check_request(root, "CreateModel", RULES["CreateModel"]).ignored
    name = root.string("ModelName", default="model", pattern=MODEL_NAME_PATTERN) or "model"
    containers = root.items("Containers")
    if root.has("PrimaryContainer") and containers:
        raise root.error("give either PrimaryContainer or Containers, not both")
    if len(containers) > 1:
        raise root.error(
            "inference pipelines (more than one container) are not supported locally",
            "Containers",
        )
    node = containers[0] if containers else root.object("PrimaryContainer", required=True)
    assert node is not None
    image, data, compressed, env, multi = _container(node, cwd)
    return ModelSpec(
        name=name,
        image=image,
        model_data=data,
        model_data_compressed=compressed,
        environment=MappingProxyType(env),
        multi_model=multi,
        startup_timeout=startup_timeout,
        endpoint_name=endpoint_name,
        ignored=tuple(ignored),
        request=MappingProxyType(dict(root.as_object())),
    )
