"""Command-line flags -> the same request documents a ``--spec`` file holds.

The flags of ``sagedock local train|serve|transform`` build (or amend) a CreateTrainingJob /
CreateModel / CreateTransformJob document, which then goes through the very parser a spec
file goes through: flags and specs cannot drift apart.
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sagedock.toolkit.local import locations

from .reader import SpecError, load_document, parse_key_values

CHANNEL_OPTIONS = {
    "content_type": "ContentType",
    "mode": "InputMode",
    "distribution": "S3DataDistributionType",
    "type": "S3DataType",
    "wrapper": "RecordWrapperType",
    "compression": "CompressionType",
    "attributes": "AttributeNames",
    "seed": "Seed",
}


def job_name(base: str) -> str:
    """``<base>-YYYY-MM-DD-HH-MM-SS-mmm``, as the SageMaker SDK names jobs (<= 63 chars)."""
    clean = re.sub(r"[^A-Za-z0-9-]+", "-", base).strip("-") or "sagedock"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H-%M-%S-%f")[:-3]
    return f"{clean[:39].rstrip('-')}-{stamp}"


def _get(args: argparse.Namespace, name: str) -> Any:
    return getattr(args, name, None)


def _load(args: argparse.Namespace) -> dict[str, Any]:
    spec = _get(args, "spec")
    if not spec:
        return {}
    return dict(load_document(spec).as_object())


def parse_channel_flag(text: str) -> dict[str, Any]:
    """``train=s3://b/p,content_type=text/csv,mode=Pipe`` -> an InputDataConfig entry."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise SpecError(f"--channel {text!r}: expected NAME=URI[,key=value...]")
    parts = rest.split(",")
    uri, options = parts[0], parts[1:]
    source: dict[str, Any] = {"S3DataType": "S3Prefix", "S3Uri": uri}
    channel: dict[str, Any] = {"ChannelName": name}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or key not in CHANNEL_OPTIONS:
            raise SpecError(
                f"--channel {text!r}: unknown option {option!r} "
                f"(known: {', '.join(CHANNEL_OPTIONS)})"
            )
        field = CHANNEL_OPTIONS[key]
        if field in ("S3DataType", "S3DataDistributionType"):
            source[field] = value
        elif field == "AttributeNames":
            source[field] = [v for v in value.split(";") if v]
        elif field == "Seed":
            if not re.fullmatch(r"-?\d+", value):
                raise SpecError(f"--channel {text!r}: seed must be an integer")
            channel["ShuffleConfig"] = {"Seed": int(value)}
        else:
            channel[field] = value
    channel["DataSource"] = {"S3DataSource": source}
    return channel


def training_request(args: argparse.Namespace) -> dict[str, Any]:
    """The CreateTrainingJob document of ``--spec`` amended by the flags (or built from them)."""
    doc = _load(args)
    algo = dict(doc.get("AlgorithmSpecification") or {})
    hps = dict(doc.get("HyperParameters") or {})
    if _get(args, "algorithm"):
        algo["AlgorithmName"] = args.algorithm
    if _get(args, "image"):
        algo["TrainingImage"] = args.image
    if _get(args, "input_mode"):
        algo["TrainingInputMode"] = args.input_mode
    entry = _get(args, "entry_point")
    if entry:
        source_dir = _get(args, "source_dir")
        if source_dir:
            program = entry
            root = locations.normalize(source_dir)
            if not (Path(root) / entry).exists():
                raise SpecError(f"--entry-point {entry!r} is not in --source-dir {source_dir}")
        else:
            path = Path(locations.normalize(entry))
            if not path.is_file():
                raise SpecError(f"--entry-point {entry!r}: no such file")
            program, root = path.name, str(path.parent)
        # JSON-encoded, as the SageMaker SDK's framework estimators write them.
        hps["sagemaker_program"] = json.dumps(program)
        hps["sagemaker_submit_directory"] = json.dumps(root)
        hps.setdefault("sagemaker_container_log_level", "20")
    elif _get(args, "source_dir"):
        raise SpecError("--source-dir needs --entry-point")
    metrics = list(algo.get("MetricDefinitions") or [])
    for text in _get(args, "metric") or []:
        name, sep, regex = text.partition("=")
        if not sep or not name or not regex:
            raise SpecError(f"--metric {text!r}: expected NAME=REGEX")
        metrics = [m for m in metrics if m.get("Name") != name] + [{"Name": name, "Regex": regex}]
    if metrics:
        algo["MetricDefinitions"] = metrics
    algo.setdefault("TrainingInputMode", "File")
    doc["AlgorithmSpecification"] = algo
    hps.update(parse_key_values(_get(args, "hp") or [], "--hp"))
    if hps:
        doc["HyperParameters"] = hps
    channels = list(doc.get("InputDataConfig") or [])
    for text in _get(args, "channel") or []:
        new = parse_channel_flag(text)
        channels = [c for c in channels if c.get("ChannelName") != new["ChannelName"]] + [new]
    if channels:
        doc["InputDataConfig"] = channels
    if _get(args, "output") or "OutputDataConfig" not in doc:
        output = dict(doc.get("OutputDataConfig") or {})
        output["S3OutputPath"] = _get(args, "output") or "."
        doc["OutputDataConfig"] = output
    resources = dict(doc.get("ResourceConfig") or {})
    if _get(args, "instance_count"):
        resources["InstanceCount"] = args.instance_count
    if _get(args, "instance_type"):
        resources["InstanceType"] = args.instance_type
    if not resources.get("InstanceGroups"):
        resources.setdefault("InstanceCount", 1)
        resources.setdefault("InstanceType", "local")
    doc["ResourceConfig"] = resources
    if _get(args, "max_runtime"):
        doc["StoppingCondition"] = {
            **(doc.get("StoppingCondition") or {}),
            "MaxRuntimeInSeconds": args.max_runtime,
        }
    if _get(args, "checkpoint"):
        checkpoint = {**(doc.get("CheckpointConfig") or {}), "S3Uri": args.checkpoint}
        if _get(args, "checkpoint_local_path"):
            checkpoint["LocalPath"] = args.checkpoint_local_path
        doc["CheckpointConfig"] = checkpoint
    env = dict(doc.get("Environment") or {})
    env.update(parse_key_values(_get(args, "env") or [], "--env"))
    if env:
        doc["Environment"] = env
    if _get(args, "job_name"):
        doc["TrainingJobName"] = args.job_name
    elif not doc.get("TrainingJobName"):
        base = (
            algo.get("AlgorithmName")
            or (Path(entry).stem if entry else None)
            or (algo.get("TrainingImage", "").rsplit("/", 1)[-1].split(":")[0] or None)
            or "sagedock"
        )
        doc["TrainingJobName"] = job_name(base)
    return doc


def model_request(args: argparse.Namespace, spec_file: str | None) -> dict[str, Any]:
    """The CreateModel document in *spec_file* amended by the flags (``--model``, ``--image``,
    ``--env``, ``--name``), or built from them."""
    doc = dict(load_document(spec_file).as_object()) if spec_file else {}
    if "Model" in doc:
        doc = {**doc, "Model": _amend_model(dict(doc["Model"]), args)}
        return doc
    return _amend_model(doc, args)


def _amend_model(doc: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    containers = doc.get("Containers")
    container = dict(containers[0] if containers else doc.get("PrimaryContainer") or {})
    if _get(args, "model"):
        container.pop("ModelDataSource", None)
        container["ModelDataUrl"] = args.model
    if _get(args, "image"):
        container["Image"] = args.image
    env = dict(container.get("Environment") or {})
    env.update(parse_key_values(_get(args, "env") or [], "--env"))
    if env:
        container["Environment"] = env
    if containers:
        doc["Containers"] = [container, *containers[1:]]
    else:
        doc["PrimaryContainer"] = container
    if _get(args, "name"):
        doc["ModelName"] = args.name
    doc.setdefault("ModelName", "model")
    return doc


def transform_request(args: argparse.Namespace) -> dict[str, Any]:
    """The CreateTransformJob document of ``--spec`` amended by the flags."""
    doc = _load(args)
    tin = dict(doc.get("TransformInput") or {})
    if _get(args, "input"):
        tin["DataSource"] = {
            "S3DataSource": {
                "S3DataType": "ManifestFile" if _get(args, "manifest") else "S3Prefix",
                "S3Uri": args.input,
            }
        }
    for flag, key in (
        ("content_type", "ContentType"),
        ("split_type", "SplitType"),
        ("compression", "CompressionType"),
    ):
        if _get(args, flag):
            tin[key] = getattr(args, flag)
    doc["TransformInput"] = tin
    tout = dict(doc.get("TransformOutput") or {})
    if _get(args, "output"):
        tout["S3OutputPath"] = args.output
    if _get(args, "accept"):
        tout["Accept"] = args.accept
    if _get(args, "assemble_with"):
        tout["AssembleWith"] = args.assemble_with
    doc["TransformOutput"] = tout
    for flag, key in (
        ("strategy", "BatchStrategy"),
        ("max_payload", "MaxPayloadInMB"),
        ("concurrency", "MaxConcurrentTransforms"),
    ):
        if _get(args, flag) is not None:
            doc[key] = getattr(args, flag)
    processing = dict(doc.get("DataProcessing") or {})
    for flag, key in (
        ("input_filter", "InputFilter"),
        ("output_filter", "OutputFilter"),
        ("join_source", "JoinSource"),
    ):
        if _get(args, flag):
            processing[key] = getattr(args, flag)
    if processing:
        doc["DataProcessing"] = processing
    client = dict(doc.get("ModelClientConfig") or {})
    if _get(args, "timeout") is not None:
        client["InvocationsTimeoutInSeconds"] = args.timeout
    if _get(args, "retries") is not None:
        client["InvocationsMaxRetries"] = args.retries
    if client:
        doc["ModelClientConfig"] = client
    env = dict(doc.get("Environment") or {})
    env.update(parse_key_values(_get(args, "env") or [], "--env"))
    if env:
        doc["Environment"] = env
    if _get(args, "job_name"):
        doc["TransformJobName"] = args.job_name
    elif not doc.get("TransformJobName"):
        doc["TransformJobName"] = job_name("transform")
    doc.setdefault("ModelName", "model")
    doc.setdefault("TransformResources", {"InstanceType": "local", "InstanceCount": 1})
    return doc


#: ``sagedock local invoke`` flags -> the InvokeEndpoint fields they set.
INVOKE_FLAGS = {
    "content_type": "ContentType",
    "accept": "Accept",
    "custom_attributes": "CustomAttributes",
    "target_model": "TargetModel",
    "target_variant": "TargetVariant",
    "inference_id": "InferenceId",
    "endpoint_name": "EndpointName",
}


def invoke_request(args: argparse.Namespace) -> dict[str, Any]:
    """The InvokeEndpoint document of ``--spec`` amended by the flags (which win); the body
    of the command line (``BODY|@FILE|-``) is read by the command, not put here."""
    doc = _load(args)
    for flag, key in INVOKE_FLAGS.items():
        value = _get(args, flag)
        if value is not None:
            doc[key] = value
    return doc
