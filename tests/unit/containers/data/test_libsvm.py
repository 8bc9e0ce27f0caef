from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from sagedock.containers.data.batch import concat
from sagedock.containers.data.libsvm import parse_libsvm, read_libsvm_files
from sagedock.toolkit.errors import UserError
from tests.fixtures.xgboost import make_dataset, write_libsvm


def test_indices_are_used_as_written(tmp_path: Path) -> None:
    data = make_dataset("regression", rows=40, cols=4)
    path = write_libsvm(tmp_path / "zero.libsvm", data.x, data.y)
    batch = concat(list(read_libsvm_files([path])))
    np.testing.assert_allclose(batch.features.toarray(), data.x, rtol=1e-6)
    np.testing.assert_allclose(batch.label, data.y, rtol=1e-6)
    one = write_libsvm(tmp_path / "one.libsvm", data.x, data.y, one_based=True)
    batch = concat(list(read_libsvm_files([one])))
    # 1-based files get an empty column 0, as SageMaker's XGBoost reads them.
    assert batch.num_cols == 5
    np.testing.assert_allclose(batch.features.toarray()[:, 1:], data.x, rtol=1e-6)


def test_abalone_gives_nine_columns_and_all_rows(shared_testdata: Path) -> None:
    base = shared_testdata / "xgboost" / "abalone" / "data"
    files = sorted((base / "train").iterdir()) + sorted((base / "validation").iterdir())
    batch = concat(list(read_libsvm_files(files)))
    assert batch.num_rows == 1100  # tests/data keeps the first 300 + 300 + 500 lines
    assert batch.num_cols == 9


def test_label_weight_gives_instance_weights(shared_testdata: Path) -> None:
    path = shared_testdata / "xgboost" / "data" / "libsvm" / "train.libsvm.weights"
    batch = concat(list(read_libsvm_files([path])))
    assert batch.num_rows == 5 and batch.weight is not None
    assert np.all(batch.weight > 0)


def test_rows_without_a_weight_weigh_one_and_missing_entries_stay_missing() -> None:
    batch = parse_libsvm(b"1:0.5 1:2 3:4\n0 2:1\n", labelled=True)
    assert batch.label.tolist() == [1.0, 0.0]  # type: ignore[union-attr]
    assert batch.weight.tolist() == [0.5, 1.0]  # type: ignore[union-attr]
    assert batch.features.nnz == 3


def test_qid_tokens_become_groups_not_features() -> None:
    batch = parse_libsvm(b"1 qid:3 1:2\n0 qid:3 2:1\n2 qid:7 0:1\n", labelled=True)
    assert batch.qid.tolist() == [3, 3, 7]  # type: ignore[union-attr]
    assert batch.features.toarray().tolist() == [[0, 2, 0], [0, 0, 1], [1, 0, 0]]


def test_blocks_are_parsed_in_parallel_and_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sagedock.containers.data import libsvm

    monkeypatch.setattr(libsvm, "BATCH_BYTES", 64 << 10)  # several parsed blocks per batch
    data = make_dataset("binary", rows=5000, cols=8)
    path = write_libsvm(tmp_path / "big.libsvm", data.x, data.y)
    batches = list(read_libsvm_files([path], block_size=16 << 10))
    assert len(batches) > 2
    joined = concat(batches)
    np.testing.assert_allclose(joined.features.toarray(), data.x, rtol=1e-6)
    np.testing.assert_allclose(joined.label, data.y)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("1 2:abc", "'2:abc': the value is not a number"),
        ("1 2:3:4", "'2:3:4' is not <index>:<value>"),
        ("abc 1:2", "the label in 'abc' is not a number"),
        ("1 2", "'2' is not <index>:<value>"),
        ("1 a:2", "'a:2': the index must be a non-negative integer"),
        ("1 -1:2", "'-1:2': the index must be a non-negative integer"),
        ("1,2,3", "the label in '1,2,3' is not a number"),
        # Only a feature's value may be empty.
        ("1 qid: 1:2", "'qid:': qid must be an integer"),
        ("1 :2", "':2': the index must be a non-negative integer"),
        ("1: 1:2", "the weight in '1:' is not a number"),
        ("1 2:x", "'2:x': the value is not a number"),
    ],
)
def test_malformed_lines_are_named(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "bad.libsvm"
    path.write_text("1 1:1\n0 2:1\n" + line + "\n")
    with pytest.raises(UserError) as info:
        list(read_libsvm_files([path]))
    assert info.value.message == (
        "bad.libsvm: line 3 is not in LIBSVM format "
        f"(<label>[:<weight>] <index>:<value> ...): {problem}"
    )


def test_inference_payloads_may_omit_the_label() -> None:
    batch = parse_libsvm(b"2:1 3:1\n1 2:3\nlabel 0:5", labelled=False)
    assert batch.label is None
    assert batch.features.toarray().tolist() == [[0, 0, 1, 1], [0, 0, 3, 0], [5, 0, 0, 0]]


def test_an_index_with_an_empty_value_is_a_stored_zero_as_xgboost_reads_it(
    tmp_path: Path,
) -> None:
    xgboost = pytest.importorskip("xgboost")
    # Upstream's abalone-multiclass validation file has such an entry (``8:``). XGBoost's parser
    # turns the empty number into 0 when nothing follows; mid-file its conversion reads on into
    # the next line, so the empty values here are on the last line only.
    text = "1 1:1 2:0.5\n0 1:2 3:0.25\n2 2:4 1:3 8:\n"
    path = tmp_path / "empty.libsvm"
    path.write_text(text)
    ours = concat(list(read_libsvm_files([path])))
    theirs = xgboost.DMatrix(f"{path}?format=libsvm").get_data()
    assert ours.features.shape == theirs.shape == (3, 9)
    assert ours.features.nnz == theirs.nnz == 7  # the 0 is an entry, not a missing value
    ours.features.sort_indices()
    np.testing.assert_array_equal(ours.features.indices, theirs.indices)
    np.testing.assert_array_equal(ours.features.data, theirs.data)
    assert ours.features[2, 8] == 0


def test_empty_values_read_as_zero_anywhere_on_a_line_in_requests_too() -> None:
    batch = parse_libsvm(b"1 8: 2:1\n0 1:2 2:\t3:0.25\n", labelled=True)
    assert batch.features.nnz == 5
    dense = batch.features.toarray()
    assert dense[:, :4].tolist() == [[0, 0, 1, 0], [0, 2, 0, 0.25]]
    assert dense[:, 4:].tolist() == [[0] * 5, [0] * 5]
    assert batch.features[0, 8] == 0 and batch.features[1, 2] == 0  # stored zeros
    request = parse_libsvm(b"3:\n1 2:5 4:", labelled=False)
    assert request.features.nnz == 3
    assert request.features.toarray().tolist() == [[0, 0, 0, 0, 0], [0, 0, 5, 0, 0]]


def test_a_value_beyond_float32_is_inf_without_warnings() -> None:
    # As in the CSV reader and XGBoost's float32 matrices; numpy warned on every block.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = parse_libsvm(b"1e300 1:1e300 2:3\n", labelled=True)
    assert batch.label is not None and batch.label[0] == np.inf
    np.testing.assert_array_equal(batch.features.toarray(), [[0, np.inf, 3]])
