"""InvokeEndpoint request (SageMaker Runtime) -> :class:`InvokeRequest`.

The fields of the runtime API (checked against botocore's ``sagemaker-runtime`` model):
``Body``, ``ContentType``, ``Accept``, ``CustomAttributes``, ``TargetModel``, ``TargetVariant``,
``InferenceId`` and ``EndpointName`` (here the name of an endpoint started with ``sagedock
local serve``). The header fields become the headers SageMaker forwards to the container.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .reader import Node, as_mapping
from .schema import LocalRules, check_request

DEFAULT_CONTENT_TYPE = "application/json"

#: InvokeEndpoint fields -> the header that carries each to the container.
HEADER_FIELDS = {
    "CustomAttributes": "X-Amzn-SageMaker-Custom-Attributes",
    "TargetModel": "X-Amzn-SageMaker-Target-Model",
    "TargetVariant": "X-Amzn-SageMaker-Target-Variant",
    "InferenceId": "X-Amzn-SageMaker-Inference-Id",
}
#: How a local invocation departs from InvokeEndpoint (see :class:`.schema.LocalRules`):
#: ``--url`` / ``--port`` may name the endpoint and the command line may give the body, which
#: may also be inline JSON.
RULES = LocalRules(
    ignored=frozenset(
        {
            "TargetContainerHostname",
            "EnableExplanations",
            "InferenceComponentName",
            "SessionId",
            "PrefixAwareId",
        }
    ),
    optional=frozenset({"EndpointName", "Body"}),
    any_json=frozenset({"Body"}),
)


@dataclass(frozen=True)
class InvokeRequest:
    body: bytes | None
    """None when the request has no ``Body`` (the command line then must give one)."""
    content_type: str = DEFAULT_CONTENT_TYPE
    accept: str | None = None
    endpoint_name: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: JSON paths of the request's fields that the local platform ignores (for the log).
    ignored: tuple[str, ...] = ()


def _body(node: Node) -> bytes | None:
    value = node.as_object().get("Body")
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    # A JSON payload written inline (object, list, number, boolean): sent as its JSON text.
    return json.dumps(value).encode("utf-8")


def parse_invoke_request(document: Mapping[str, Any] | Node) -> InvokeRequest:
    """Validate an InvokeEndpoint request document.

    ``Body`` is a string (sent as UTF-8) or any other JSON value (sent as its JSON text).

    :raises SpecError: naming the field at fault.
    """
    node = as_mapping(document)
    checked = check_request(node, "InvokeEndpoint", RULES)
    headers = {}
    for key, header in HEADER_FIELDS.items():
        value = node.string(key)
        if value is not None:
            headers[header] = value
    return InvokeRequest(
        body=_body(node),
        content_type=node.string("ContentType") or DEFAULT_CONTENT_TYPE,
        accept=node.string("Accept"),
        endpoint_name=node.string("EndpointName"),
        headers=headers,
        ignored=checked.ignored,
    )
