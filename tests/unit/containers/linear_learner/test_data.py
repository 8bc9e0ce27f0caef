"""Linear Learner's channels -> checked mini-batches (sagedock.containers.linear_learner.data)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given
from hypothesis import strategies as st

from sagedock.containers.linear_learner.data import (
    ChannelSource,
    LabelRule,
    MiniBatcher,
    data_format,
    first_rows,
    to_dense,
)
from sagedock.toolkit.errors import UserError
from sagedock.toolkit.formats.protobuf import write_recordio_protobuf
from tests.fuzz import any_bytes, outcome, property_settings

BINARY = LabelRule("binary_classifier")


def _csv(path: Path, table: np.ndarray) -> Path:
    np.savetxt(path, table, delimiter=",", fmt="%.6g")
    return path


def _table(rows: int, features: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, features)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    return np.column_stack([y, x])


@pytest.mark.parametrize(
    ("content_type", "fmt"),
    [
        ("text/csv", "csv"),
        ("text/csv;label_size=1", "csv"),
        ("Text/CSV; label_size=1", "csv"),
        ("application/x-recordio-protobuf", "recordio-protobuf"),
        (None, "recordio-protobuf"),  # SageMaker's default for Linear Learner
        ("", "recordio-protobuf"),
    ],
)
def test_the_two_formats_linear_learner_reads(content_type: str | None, fmt: str) -> None:
    assert data_format(content_type) == fmt


@pytest.mark.parametrize("content_type", ["csv", "text/libsvm", "application/x-parquet"])
def test_other_content_types_get_sagemakers_no_iterator_message(content_type: str) -> None:
    with pytest.raises(UserError, match=r"No iterator has been registered for ContentType \("):
        data_format(content_type)


def test_the_bare_csv_shorthand_is_named_in_the_refusal() -> None:
    with pytest.raises(UserError, match=r"\('csv', '1.0'\)"):
        data_format("csv")


def test_label_size_other_than_one_is_refused() -> None:
    with pytest.raises(UserError, match="label_size=1"):
        data_format("text/csv;label_size=2")


def test_csv_files_become_fixed_size_mini_batches_across_file_boundaries(tmp_path: Path) -> None:
    table = _table(25, 3)
    files = [_csv(tmp_path / "a.csv", table[:12]), _csv(tmp_path / "b.csv", table[12:])]
    source = ChannelSource("train", "csv", files=files)
    batcher = MiniBatcher("train", 10, BINARY)
    batches = list(batcher(source.batches(0)))
    assert [b.num_rows for b in batches] == [10, 10, 5]
    assert batcher.feature_dim == 3
    features = np.concatenate([b.features for b in batches])
    labels = np.concatenate([b.label for b in batches])
    np.testing.assert_allclose(features, table[:, 1:], rtol=1e-5)
    np.testing.assert_array_equal(labels, table[:, 0])
    again = list(batcher(source.batches(1)))  # every epoch reads the files again
    assert [b.num_rows for b in again] == [10, 10, 5]


def _recordio(path: Path, features: object, labels: np.ndarray) -> Path:
    with path.open("wb") as out:
        write_recordio_protobuf(out, features, labels)
    return path


def test_dense_recordio_protobuf_trains_as_csv_does(tmp_path: Path) -> None:
    table = _table(7, 4)
    path = _recordio(tmp_path / "d.rec", table[:, 1:], table[:, 0])
    batches = list(MiniBatcher("train", 4, BINARY)(read(path)))
    np.testing.assert_allclose(np.concatenate([b.features for b in batches]), table[:, 1:])


def read(path: Path) -> object:
    return ChannelSource("train", "recordio-protobuf", files=[path]).batches(0)


def test_sparse_recordio_protobuf_keeps_its_shape_and_reads_absent_entries_as_zero(
    tmp_path: Path,
) -> None:
    dense = np.zeros((6, 9), dtype=np.float32)
    dense[0, 2], dense[3, 8], dense[5, 0] = 1.5, -2.0, 4.0
    labels = np.array([0, 1, 0, 1, 1, 0], dtype=np.float32)
    path = _recordio(tmp_path / "s.rec", scipy.sparse.csr_matrix(dense), labels)
    batcher = MiniBatcher("train", 4, BINARY)
    batches = list(batcher(read(path)))
    assert batcher.feature_dim == 9  # the records' shape, not the highest key used
    assert [b.num_rows for b in batches] == [4, 2]
    np.testing.assert_array_equal(np.vstack([to_dense(b.features) for b in batches]), dense)


def test_an_explicit_feature_dim_that_the_data_does_not_have_is_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path / "a.csv", _table(5, 3))
    batcher = MiniBatcher("train", 2, BINARY, feature_dim=4)
    with pytest.raises(UserError, match="3 features, but feature_dim is 4"):
        list(batcher(ChannelSource("train", "csv", files=[path]).batches(0)))


def test_a_later_file_with_another_width_is_refused_naming_the_row(tmp_path: Path) -> None:
    first, second = _table(5, 3), _table(5, 2)
    files = [
        _recordio(tmp_path / "a.rec", first[:, 1:], first[:, 0]),
        _recordio(tmp_path / "b.rec", second[:, 1:], second[:, 0]),
    ]
    source = ChannelSource("validation", "recordio-protobuf", files=files)
    with pytest.raises(UserError, match=r"channel 'validation', row 6: 2 features"):
        list(MiniBatcher("validation", 3, BINARY)(source.batches(0)))
    # CSV files of another width are already refused by the shared reader, naming the file
    csv = [_csv(tmp_path / "a.csv", first), _csv(tmp_path / "b.csv", second)]
    with pytest.raises(UserError, match=r"b\.csv: line 1: expected 4 columns, found 3"):
        list(MiniBatcher("train", 3, BINARY)(ChannelSource("train", "csv", files=csv).batches(0)))


@pytest.mark.parametrize(
    ("rule", "label", "message"),
    [
        (BINARY, 2.0, "is not 0 or 1 for binary_classifier"),
        (LabelRule("multiclass_classifier", 3), 3.0, "integer from 0 to 2"),
        (LabelRule("multiclass_classifier", 3), 1.5, "integer from 0 to 2"),
        (LabelRule("multiclass_classifier", 3), -1.0, "integer from 0 to 2"),
    ],
)
def test_labels_the_predictor_type_cannot_train_on_are_refused_naming_the_row(
    tmp_path: Path, rule: LabelRule, label: float, message: str
) -> None:
    table = _table(6, 2)
    table[4, 0] = label
    path = _csv(tmp_path / "a.csv", table)
    with pytest.raises(UserError, match=rf"row 5: label .*{message}"):
        list(MiniBatcher("train", 4, rule)(ChannelSource("train", "csv", files=[path]).batches(0)))


def test_regression_labels_are_any_finite_number(tmp_path: Path) -> None:
    table = _table(6, 2)
    table[:, 0] = [-3.5, 0, 1e6, 2.25, 7, -1]
    path = _csv(tmp_path / "a.csv", table)
    rule = LabelRule("regressor")
    batches = list(
        MiniBatcher("train", 6, rule)(ChannelSource("train", "csv", files=[path]).batches(0))
    )
    np.testing.assert_allclose(batches[0].label, table[:, 0])


def test_an_empty_csv_field_is_refused_not_trained_on_as_nan(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("1,0.5,0.25\n0,,0.75\n")
    with pytest.raises(UserError, match=r"row 2: a feature is missing"):
        list(
            MiniBatcher("train", 4, BINARY)(ChannelSource("train", "csv", files=[path]).batches(0))
        )


def test_an_infinite_sparse_value_is_refused_naming_its_row(tmp_path: Path) -> None:
    dense = np.zeros((4, 5), dtype=np.float32)
    dense[0, 1], dense[2, 3] = 1.0, np.inf
    path = _recordio(tmp_path / "s.rec", scipy.sparse.csr_matrix(dense), np.zeros(4, np.float32))
    with pytest.raises(UserError, match=r"row 3: a feature is missing or not a finite"):
        list(MiniBatcher("train", 4, BINARY)(read(path)))


def test_pipe_mode_opens_the_stream_of_each_epoch(tmp_path: Path) -> None:
    table = _table(9, 2)
    buffer = io.BytesIO()
    write_recordio_protobuf(buffer, table[:, 1:], table[:, 0])
    opened: list[int] = []

    def open_epoch(epoch: int) -> io.BytesIO:
        opened.append(epoch)
        return io.BytesIO(buffer.getvalue())

    source = ChannelSource("train", "recordio-protobuf", open_epoch=open_epoch)
    batcher = MiniBatcher("train", 5, BINARY)
    for epoch in range(2):
        assert [b.num_rows for b in batcher(source.batches(epoch))] == [5, 4]
    assert opened == [0, 1]


def test_first_rows_stops_reading_once_it_has_enough(tmp_path: Path) -> None:
    table = _table(30, 2)
    path = _csv(tmp_path / "a.csv", table)
    seen: list[int] = []

    def counted() -> object:
        for batch in MiniBatcher("train", 4, BINARY)(
            ChannelSource("train", "csv", files=[path]).batches(0)
        ):
            seen.append(batch.num_rows)
            yield batch

    sample = first_rows(counted(), 10)  # type: ignore[arg-type]
    assert sample is not None and sample.num_rows == 10
    np.testing.assert_allclose(sample.features, table[:10, 1:], rtol=1e-5)
    assert sum(seen) == 12  # three mini-batches of 4, not the whole channel
    assert first_rows(iter([]), 5) is None


def _valid_csv() -> st.SearchStrategy[bytes]:
    return st.integers(1, 6).map(
        lambda rows: "".join(f"{r % 2},{r * 0.5},{-r}\n" for r in range(rows)).encode()
    )


def _valid_recordio() -> st.SearchStrategy[bytes]:
    def encode(rows: int) -> bytes:
        table = _table(rows, 3)
        buffer = io.BytesIO()
        write_recordio_protobuf(buffer, table[:, 1:], table[:, 0])
        return buffer.getvalue()

    return st.integers(1, 4).map(encode)


@pytest.mark.parametrize(
    ("fmt", "valid"), [("csv", _valid_csv()), ("recordio-protobuf", _valid_recordio())]
)
def test_any_bytes_in_a_channel_give_mini_batches_or_a_user_error(
    fmt: str, valid: st.SearchStrategy[bytes]
) -> None:
    @property_settings(examples=60)
    @given(any_bytes(valid))
    def check(body: bytes) -> None:
        source = ChannelSource("train", fmt, open_epoch=lambda _epoch: io.BytesIO(body))  # type: ignore[arg-type]
        result = outcome(
            lambda: list(MiniBatcher("train", 3, BINARY)(source.batches(0))), (UserError,)
        )
        if not isinstance(result, UserError):
            for batch in result:
                assert np.isfinite(to_dense(batch.features)).all()
                assert set(np.unique(batch.label)) <= {0.0, 1.0}

    check()
