"""bench/recordio: sagedock's recordio-protobuf reader and writer against the protobuf runtime.

Run from the repository root::

    .venv/bin/python bench/recordio [--rows 100000] [--cols 50] [--repeat 3]

Both sides produce the same thing, a dense float32 feature matrix plus a label vector (or a CSR
matrix for the sparse case), from the same bytes:

- reference: the ``protobuf`` runtime (its C "upb" backend) with message classes built from
  ``toolkit/formats/record.proto``'s schema, one ``Record.ParseFromString`` per record and the
  values copied into numpy - what a reader built on generated ``record_pb2`` code does (the
  RecordIO framing is shared, so only the protobuf work differs);
- ours: ``sagedock.toolkit.formats.protobuf.to_arrays``.

It also times the per-record path of ours (``read_recordio_protobuf``) and both writers, and
prints every ratio. Needs the ``protobuf`` package (not a sagedock dependency).
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse

from sagedock.toolkit.formats import protobuf, recordio


def runtime_record_class() -> Any:
    """The ``aialgs.data.Record`` message class built by the protobuf runtime from the schema."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(
        name="sagedock_bench_record.proto", package="aialgs.data", syntax="proto2"
    )
    f = descriptor_pb2.FieldDescriptorProto
    for name, scalar in (
        ("Float32Tensor", f.TYPE_FLOAT),
        ("Float64Tensor", f.TYPE_DOUBLE),
        ("Int32Tensor", f.TYPE_INT32),
    ):
        msg = fdp.message_type.add(name=name)
        for number, field_name, field_type in (
            (1, "values", scalar),
            (2, "keys", f.TYPE_UINT64),
            (3, "shape", f.TYPE_UINT64),
        ):
            fld = msg.field.add(
                name=field_name, number=number, type=field_type, label=f.LABEL_REPEATED
            )
            fld.options.packed = True
    msg = fdp.message_type.add(name="Bytes")
    msg.field.add(name="value", number=1, type=f.TYPE_BYTES, label=f.LABEL_REPEATED)
    msg.field.add(name="content_type", number=2, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    msg = fdp.message_type.add(name="Value")
    msg.oneof_decl.add(name="value")
    for number, field_name, type_name in (
        (2, "float32_tensor", "Float32Tensor"),
        (3, "float64_tensor", "Float64Tensor"),
        (7, "int32_tensor", "Int32Tensor"),
        (9, "bytes", "Bytes"),
    ):
        msg.field.add(
            name=field_name,
            number=number,
            type=f.TYPE_MESSAGE,
            type_name=f".aialgs.data.{type_name}",
            label=f.LABEL_OPTIONAL,
            oneof_index=0,
        )
    msg = fdp.message_type.add(name="Record")
    for number, field_name, entry_name in (
        (1, "features", "FeaturesEntry"),
        (2, "label", "LabelEntry"),
    ):
        entry = msg.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
        entry.field.add(
            name="value",
            number=2,
            type=f.TYPE_MESSAGE,
            type_name=".aialgs.data.Value",
            label=f.LABEL_OPTIONAL,
        )
        msg.field.add(
            name=field_name,
            number=number,
            type=f.TYPE_MESSAGE,
            type_name=f".aialgs.data.Record.{entry_name}",
            label=f.LABEL_REPEATED,
        )
    for number, field_name in ((3, "uid"), (4, "metadata"), (5, "configuration")):
        msg.field.add(name=field_name, number=number, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("aialgs.data.Record"))


def _tensor(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value"))


def runtime_dense(data: bytes, record_class: Any) -> tuple[np.ndarray, np.ndarray]:
    """Reference reader for dense files: parse each record, copy its values into numpy."""
    rows = []
    labels = []
    record = record_class()
    for payload in recordio.iter_records(io.BytesIO(data)):
        record.ParseFromString(payload)
        rows.append(np.asarray(_tensor(record.features["values"]).values, dtype=np.float32))
        labels.append(_tensor(record.label["values"]).values[0])
    return np.vstack(rows), np.asarray(labels, dtype=np.float32)


def runtime_sparse(data: bytes, record_class: Any) -> tuple[Any, np.ndarray]:
    """Reference reader for sparse files: build CSR arrays from each record's keys/values."""
    values, keys, indptr, labels = [], [], [0], []
    width = 0
    record = record_class()
    for payload in recordio.iter_records(io.BytesIO(data)):
        record.ParseFromString(payload)
        tensor = _tensor(record.features["values"])
        values.append(np.asarray(tensor.values, dtype=np.float32))
        keys.append(np.asarray(tensor.keys, dtype=np.int64))
        indptr.append(indptr[-1] + len(tensor.values))
        width = max(width, tensor.shape[0])
        labels.append(_tensor(record.label["values"]).values[0])
    matrix = scipy.sparse.csr_matrix(
        (np.concatenate(values), np.concatenate(keys), np.asarray(indptr)),
        shape=(len(indptr) - 1, width),
    )
    return matrix, np.asarray(labels, dtype=np.float32)


def runtime_write_dense(features: np.ndarray, labels: np.ndarray, record_class: Any) -> bytes:
    """Reference writer: one message per row, framed like SageMaker's SDK does."""
    out = []
    for row, label in zip(features, labels, strict=True):
        record = record_class()
        record.features["values"].float32_tensor.values.extend(row.tolist())
        record.label["values"].float32_tensor.values.append(float(label))
        out.append(recordio.encode_record(record.SerializeToString()))
    return b"".join(out)


def best_of(repeat: int, func: Callable[[], Any]) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--cols", type=int, default=50)
    parser.add_argument("--density", type=float, default=0.1, help="for the sparse case")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    record_class = runtime_record_class()
    rng = np.random.default_rng(0)
    features = rng.normal(size=(args.rows, args.cols)).astype(np.float32)
    labels = rng.integers(0, 2, args.rows).astype(np.float32)

    print(f"recordio-protobuf, {args.rows} rows x {args.cols} features, best of {args.repeat}")
    t_ref_w, reference_bytes = best_of(
        args.repeat, lambda: runtime_write_dense(features, labels, record_class)
    )
    t_our_w, our_bytes = best_of(
        args.repeat, lambda: protobuf.encode_recordio_protobuf(features, labels)
    )
    assert our_bytes == reference_bytes, "writers disagree"
    megabytes = len(our_bytes) / 1e6
    rows_out: list[tuple[str, float, float]] = []

    t_ref, (x_ref, y_ref) = best_of(args.repeat, lambda: runtime_dense(our_bytes, record_class))
    t_our, (x_our, y_our) = best_of(args.repeat, lambda: protobuf.to_arrays(our_bytes))
    assert np.array_equal(x_ref, x_our) and np.array_equal(y_ref, y_our), "dense readers disagree"
    t_rec, _ = best_of(
        1, lambda: sum(1 for _ in protobuf.read_recordio_protobuf(io.BytesIO(our_bytes)))
    )
    rows_out += [
        ("dense read  (to_arrays)", t_ref, t_our),
        ("dense read  (our Record objects, per record)", t_ref, t_rec),
        ("dense write (encode_recordio_protobuf)", t_ref_w, t_our_w),
    ]

    sparse = scipy.sparse.random(
        args.rows, args.cols, density=args.density, format="csr", dtype=np.float32, random_state=1
    )
    sparse_bytes = protobuf.encode_recordio_protobuf(sparse, labels)
    t_ref_s, (s_ref, _) = best_of(args.repeat, lambda: runtime_sparse(sparse_bytes, record_class))
    t_our_s, (s_our, _) = best_of(args.repeat, lambda: protobuf.to_arrays(sparse_bytes))
    assert (s_ref != s_our).nnz == 0, "sparse readers disagree"
    rows_out.append((f"sparse read (density {args.density}, to_arrays)", t_ref_s, t_our_s))

    print(f"dense file {megabytes:.1f} MB, sparse file {len(sparse_bytes) / 1e6:.1f} MB")
    print(f"{'case':48} {'protobuf runtime':>17} {'sagedock':>10} {'speed-up':>9}")
    for name, ref, ours in rows_out:
        print(f"{name:48} {ref:>15.3f} s {ours:>8.3f} s {ref / ours:>8.1f}x")
    print(
        f"dense to_arrays: {args.rows / t_our / 1e6:.2f} M rows/s, {megabytes / t_our:.0f} MB/s "
        f"(protobuf runtime: {args.rows / t_ref / 1e6:.2f} M rows/s, {megabytes / t_ref:.0f} MB/s)"
    )


if __name__ == "__main__":
    main()
