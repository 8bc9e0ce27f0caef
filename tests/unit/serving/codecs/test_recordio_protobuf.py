"""application/x-recordio-protobuf in serving: features in, scores out."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from sagedock.serving.errors import BadRequest
from sagedock.toolkit.formats.protobuf import (
    Record,
    Tensor,
    encode_recordio_protobuf,
    read_recordio_protobuf,
)

from .helpers import decode, encode

CT = "application/x-recordio-protobuf"


def test_dense_request_decodes_to_float32_features() -> None:
    features = np.arange(12, dtype=np.float64).reshape(4, 3)
    decoded = decode(encode_recordio_protobuf(features, np.ones(4)), CT)
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, features)


def test_sparse_request_decodes_to_csr(shared_testdata: Path) -> None:
    body = (shared_testdata / "xgboost/data/recordio_protobuf/sparse/train.pb").read_bytes()
    decoded = decode(body, CT)
    assert scipy.sparse.isspmatrix_csr(decoded)
    assert decoded.shape == (5, 5)


def test_corrupt_request_is_400_naming_the_record() -> None:
    body = encode_recordio_protobuf(np.ones((3, 2), dtype=np.float32))
    with pytest.raises(BadRequest) as caught:
        decode(body[:-6], CT)
    assert caught.value.message == (
        "invalid application/x-recordio-protobuf body: corrupt RecordIO data: record 2 at byte "
        "offset 64: truncated: header announces 24 payload bytes, only 18 remain"
    )


def _labels(body: bytes) -> list[dict[str, list[float]]]:
    out = []
    for record in read_recordio_protobuf(io.BytesIO(body)):
        row = {}
        for key, value in record.label.items():
            assert isinstance(value, Tensor) and value.dtype == "float32"
            row[key] = value.values.tolist()
        out.append(row)
    return out


@pytest.mark.parametrize(
    ("prediction", "labels"),
    [
        (np.array([0.5, 0.25]), [{"score": [0.5]}, {"score": [0.25]}]),
        (np.array([[0.5, 0.5], [1, 0]]), [{"score": [0.5, 0.5]}, {"score": [1, 0]}]),
        ([{"score": 0.5, "predicted_label": 1}], [{"score": [0.5], "predicted_label": [1.0]}]),
        ({"score": [0.5, 0.75]}, [{"score": [0.5]}, {"score": [0.75]}]),
        (np.float32(2.0), [{"score": [2.0]}]),
    ],
)
def test_predictions_are_written_as_label_records(prediction: object, labels: list) -> None:
    body, content_type = encode(prediction, CT)
    assert content_type == CT
    assert _labels(body) == labels


def test_record_objects_are_written_as_given() -> None:
    records = [Record(label={"closest_cluster": Tensor("float32", np.array([3.0], np.float32))})]
    body, _ = encode(records, CT)
    assert list(read_recordio_protobuf(io.BytesIO(body))) == records


@pytest.mark.parametrize("prediction", [{"a": 1}, "text", b"raw", np.zeros((2, 2, 2))])
def test_unrepresentable_predictions_are_refused(prediction: object) -> None:
    from sagedock.serving.errors import NotAcceptable

    with pytest.raises(NotAcceptable):
        encode(prediction, CT)
