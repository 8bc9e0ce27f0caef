"""Training data that is valid, or wrong in a way the client can fix (issue 11, section 4),
through the built-in XGBoost training: a job that trains, or a ClientError naming the file."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sagedock.toolkit.errors import UserError
from tests.fixtures.xgboost import XGBoostJob, write_recordio_protobuf

from .support import load_model, train_inprocess

JobFactory = Callable[..., XGBoostJob]


def _job(xgboost_job: JobFactory, content_type: str, name: str, body: bytes) -> XGBoostJob:
    job = xgboost_job({"num_round": 2})
    (job.add_channel("train", content_type) / name).write_bytes(body)
    return job


def test_a_csv_whose_first_row_is_over_1_mib_trains(xgboost_job: JobFactory) -> None:
    # Refused once as 'expected 262145 columns, found 500001' (the first row was cut at 1 MiB);
    # then 100 s of CPU for two rows (XGBoost's DataFrame reader, per column).
    row = "1," + ",".join(["0.5"] * 300_000) + "\n"
    assert len(row) > 1 << 20
    job = _job(xgboost_job, "text/csv", "train.csv", (row + row.replace("1,", "0,", 1)).encode())
    train_inprocess(job)
    assert load_model(job.model_dir / "xgboost-model").num_features() == 300_000


def _parquet() -> bytes:
    rng = np.random.default_rng(0)
    table = pa.table({"label": np.arange(1000.0), "a": rng.random(1000), "b": rng.random(1000)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy")
    return buffer.getvalue()


def test_a_corrupt_parquet_page_is_a_client_error_naming_the_file(
    xgboost_job: JobFactory,
) -> None:
    body = bytearray(_parquet())
    body[4:20] = b"\xff" * 16  # the first page header
    job = _job(xgboost_job, "application/x-parquet", "train.parquet", bytes(body))
    with pytest.raises(UserError) as caught:
        train_inprocess(job)
    assert caught.value.message.startswith("train.parquet: row group 0 is corrupt: ")
    assert "\n" not in caught.value.message
    assert list(job.model_dir.iterdir()) == []


@pytest.mark.parametrize("fmt", ["csv", "recordio-protobuf"])
def test_a_value_beyond_float32_is_a_client_error_without_warnings(
    xgboost_job: JobFactory, fmt: str
) -> None:
    # 1e300 reads as inf in float32, as XGBoost reads it; XGBoost refuses inf, which was an
    # AlgorithmError (after numpy's 'overflow encountered in cast' warnings).
    x = np.array([[1.0, 2.0], [1e300, 3.0], [4.0, 5.0]])
    y = np.array([0.0, 1.0, 0.0])
    job = xgboost_job({"num_round": 2})
    channel = job.add_channel(
        "train", "text/csv" if fmt == "csv" else "application/x-recordio-protobuf"
    )
    if fmt == "csv":
        (channel / "train.csv").write_text("0,1,2\n1,1e300,3\n0,4,5\n")
    else:
        write_recordio_protobuf(channel / "train.rec", x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserError, match=r"Input data contains `inf` or a value too large"):
            train_inprocess(job)
