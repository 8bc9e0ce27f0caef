from __future__ import annotations

import numpy as np
import scipy.sparse

from sagedock.containers.data.batch import Batch, concat, dense_to_csr


def test_dense_to_csr_keeps_zeros_and_drops_only_nan() -> None:
    dense = np.array([[0.0, np.nan, 2.0], [np.nan, 0.0, np.nan]], dtype=np.float32)
    csr = dense_to_csr(dense)
    assert csr.nnz == 3
    assert csr.indices.tolist() == [0, 2, 1]
    assert csr.data.tolist() == [0.0, 2.0, 0.0]


def test_concat_widens_sparse_batches_and_fills_missing_weights() -> None:
    a = Batch(scipy.sparse.csr_matrix(np.eye(2, dtype=np.float32)), np.zeros(2, np.float32))
    b = Batch(
        scipy.sparse.csr_matrix(np.ones((1, 3), dtype=np.float32)),
        np.ones(1, np.float32),
        weight=np.array([5.0], np.float32),
    )
    joined = concat([a, b])
    assert joined.features.shape == (3, 3)
    assert joined.weight.tolist() == [1.0, 1.0, 5.0]  # type: ignore[union-attr]
    assert joined.label.tolist() == [0.0, 0.0, 1.0]  # type: ignore[union-attr]


def test_csr_to_dense_marks_absent_entries_missing_and_keeps_zeros() -> None:
    from sagedock.containers.data.batch import csr_to_dense

    csr = scipy.sparse.csr_matrix(
        (np.array([0.0, 2.0], np.float32), np.array([0, 2]), np.array([0, 1, 2])), shape=(2, 3)
    )
    dense = csr_to_dense(csr, 4)
    assert dense.shape == (2, 4)
    assert dense[0, 0] == 0.0 and dense[1, 2] == 2.0
    assert np.isnan(dense[0, 1]) and np.isnan(dense[1, 3])


def test_split_rows_cuts_big_batches_into_views() -> None:
    from sagedock.containers.data.batch import split_rows

    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    batch = Batch(x, np.arange(10, dtype=np.float32))
    pieces = split_rows(batch, 48)
    assert len(pieces) > 1 and sum(p.num_rows for p in pieces) == 10
    np.testing.assert_array_equal(np.concatenate([p.features for p in pieces]), x)
    np.testing.assert_array_equal(np.concatenate([p.label for p in pieces]), batch.label)
    assert split_rows(batch, 10**6) == [batch]
