"""Run by test_sdk_records.py with the SageMaker Python SDK 2.x's interpreter: the SDK's own
RecordIO writers and serializers, the way a Linear Learner notebook uses them.

``write <dir>``: training files from ``write_numpy_to_dense_tensor`` and
``write_spmatrix_to_sparse_tensor``, and a request body from ``RecordSerializer``.
``read <file>``: the response read back by ``RecordDeserializer``; prints the scores and labels.
"""

import io
import json
import sys
from pathlib import Path

import numpy as np
import scipy.sparse
from sagemaker.amazon.common import (
    RecordDeserializer,
    RecordSerializer,
    write_numpy_to_dense_tensor,
    write_spmatrix_to_sparse_tensor,
)


def write(out):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((40, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    with open(out / "dense.rec", "wb") as f:
        write_numpy_to_dense_tensor(f, x, y)
    sparse = scipy.sparse.random(40, 7, density=0.3, format="csr", random_state=3, dtype="float32")
    with open(out / "sparse.rec", "wb") as f:
        write_spmatrix_to_sparse_tensor(f, sparse, y)
    body = RecordSerializer().serialize(x[:6])  # a BytesIO, which predict() sends as it is
    (out / "request.rec").write_bytes(body.getvalue() if hasattr(body, "getvalue") else body)
    np.save(out / "x.npy", x)
    np.save(out / "y.npy", y)
    np.save(out / "sparse.npy", sparse.toarray())


def read(path):
    records = RecordDeserializer().deserialize(
        io.BytesIO(path.read_bytes()), "application/x-recordio-protobuf"
    )
    result = [
        {
            "score": list(r.label["score"].float32_tensor.values),
            "predicted_label": list(r.label["predicted_label"].float32_tensor.values),
        }
        for r in records
    ]
    print("SCENARIO-RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    {"write": write, "read": read}[sys.argv[1]](Path(sys.argv[2]))
