from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from sagedock.containers.data.batch import Batch
from sagedock.containers.data.spill import SpilledBatches


def _batches() -> list[Batch]:
    rng = np.random.default_rng(0)
    dense_f = np.asfortranarray(rng.random((7, 3), dtype=np.float32))
    dense_c = rng.random((5, 3), dtype=np.float32)
    sparse = scipy.sparse.csr_matrix(
        rng.random((4, 6), dtype=np.float32) * (rng.random((4, 6)) > 0.5)
    )
    return [
        Batch(dense_f, np.arange(7, dtype=np.float32)),
        Batch(dense_c, np.ones(5, np.float32), weight=np.full(5, 2.0, np.float32)),
        Batch(sparse, np.zeros(4, np.float32), qid=np.array([1, 1, 2, 2], np.uint32)),
    ]


def test_batches_come_back_as_they_went_in(tmp_path: Path) -> None:
    original = _batches()
    with SpilledBatches.write(iter(original), tmp_path) as spilled:
        assert len(spilled) == 3
        assert [spilled.info(i).num_rows for i in range(3)] == [7, 5, 4]
        assert spilled.info(2).is_sparse and spilled.info(1).has_weight and spilled.info(2).has_qid
        for _ in range(2):  # every pass reads the same
            for before, after in zip(original, spilled, strict=True):
                if before.is_sparse:
                    assert (before.features != after.features).nnz == 0
                else:
                    np.testing.assert_array_equal(before.features, after.features)
                    assert after.features.flags.f_contiguous == before.features.flags.f_contiguous
                for name in ("label", "weight", "qid"):
                    a, b = getattr(before, name), getattr(after, name)
                    assert (a is None and b is None) or np.array_equal(a, b)
        scratch = next(tmp_path.iterdir())
        assert (scratch / "batches.bin").is_file()
    assert list(tmp_path.iterdir()) == []  # close() removed the scratch directory


def test_a_failing_source_leaves_no_scratch_file(tmp_path: Path) -> None:
    def broken():  # type: ignore[no-untyped-def]
        yield _batches()[0]
        raise ValueError("bad data")

    with pytest.raises(ValueError, match="bad data"):
        SpilledBatches.write(broken(), tmp_path)
    assert list(tmp_path.iterdir()) == []
