"""bench/wide_csv: the XGBoost CSV request reader on one very wide row, against the generic codec.

Run from the repository root::

    .venv/bin/python bench/wide_csv [--columns 1600000] [--repeat 3]

The claim (issue 11): one 3.2 MB row of 1.6M columns took the XGBoost ``input_fn`` 53 s of
worker CPU, the generic ``text/csv`` codec 0.23 s. Three readers of the same body, in one run:

- reference: the generic codec of ``default_registry()`` (numpy's C ``loadtxt``);
- column by column: the XGBoost reader with the wide-row path switched off (what every
  request took before: pyarrow with one column per field, ~30 us each);
- sagedock: the XGBoost reader as it is (rows of ``WIDE_COLUMNS`` fields or more are parsed as
  one column of values and reshaped).

Prints seconds per call (best of *repeat*; the column-by-column reader runs once, it is slow)
and the ratios. ``--columns 20000`` is a smoke run of a few seconds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sagedock.containers.data import csv as csv_reader
from sagedock.serving.codecs import default_registry
from sagedock.serving.negotiation import parse_content_type


def best_of(func: Callable[[], Any], repeat: int) -> float:
    """Fewest seconds one call took, over *repeat* calls."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - started)
    return best


def column_by_column(body: bytes) -> np.ndarray:
    """The XGBoost reader with its wide-row path off: pyarrow, one column per field."""
    saved = csv_reader.WIDE_COLUMNS
    csv_reader.WIDE_COLUMNS = 1 << 62
    try:
        return csv_reader.parse_csv_payload(body)
    finally:
        csv_reader.WIDE_COLUMNS = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", type=int, default=1_600_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    values = rng.integers(0, 10, size=args.columns)
    body = ",".join(map(str, values.tolist())).encode()
    registry = default_registry(max_payload_bytes=None)
    media = parse_content_type("text/csv", "text/csv")

    def reference() -> Any:
        return registry.decode(body, media)

    def ours() -> Any:
        return csv_reader.parse_csv_payload(body)

    # Same answer from all three before any timing.
    expected = reference().astype(np.float32)
    np.testing.assert_array_equal(ours(), expected)
    np.testing.assert_array_equal(column_by_column(body), expected)

    ref_t = best_of(reference, args.repeat)
    old_t = best_of(lambda: column_by_column(body), 1)
    ours_t = best_of(ours, args.repeat)
    print(f"one row of {args.columns} columns, {len(body) / 1e6:.2f} MB")
    print(f"{'reader':40} {'seconds':>9} {'vs reference':>13}")
    for name, seconds in (
        ("reference: generic text/csv codec", ref_t),
        ("XGBoost reader, column by column", old_t),
        ("sagedock: XGBoost reader", ours_t),
    ):
        print(f"{name:40} {seconds:>9.3f} {seconds / ref_t:>12.2f}x")
    print(f"speed-up of the XGBoost reader: {old_t / ours_t:.0f}x")


if __name__ == "__main__":
    main()
