"""sagedock.serving.codecs: request bodies to Python values and predictions to response bodies.

One module per content type; :func:`default_registry` returns a fresh
:class:`CodecRegistry` holding all of them::

    registry = default_registry()
    data = registry.decode(body, parse_content_type(content_type, "application/json"))
    body, content_type = registry.encode(prediction, accept, "application/json")

Algorithms add their own types with ``registry.register(MyCodec())``.
"""

from .base import Codec as Codec
from .base import CodecRegistry as CodecRegistry
from .base import text_of as text_of
from .csv import CSVCodec as CSVCodec
from .json import JSONCodec as JSONCodec
from .jsonlines import JSONLinesCodec as JSONLinesCodec
from .npy import NpyCodec as NpyCodec
from .npz import DEFAULT_MAX_PAYLOAD_BYTES
from .npz import NpzCodec as NpzCodec
from .passthrough import ImageCodec as ImageCodec
from .passthrough import OctetStreamCodec as OctetStreamCodec
from .passthrough import TextCodec as TextCodec
from .recordio import RecordIOProtobufCodec as RecordIOProtobufCodec


def default_registry(*, max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES) -> CodecRegistry:
    """A new registry with every built-in codec (callers may register more without sharing).

    :param max_payload_bytes: ``SAGEMAKER_MAX_PAYLOAD_IN_MB`` in bytes (None: unlimited), which
        bounds what a compressed body may expand to.
    """
    return CodecRegistry(
        [
            JSONCodec(),
            JSONLinesCodec(),
            CSVCodec(),
            NpyCodec(),
            NpzCodec(max_payload_bytes),
            RecordIOProtobufCodec(),
            OctetStreamCodec(),
            TextCodec(),
            ImageCodec(),
        ]
    )
