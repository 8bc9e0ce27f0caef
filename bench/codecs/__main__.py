"""bench/codecs: per-request cost of sagedock's JSON and CSV codecs against the stdlib baselines.

Run from the repository root::

    .venv/bin/python bench/codecs [--repeat 5]

Reference side, what SageMaker's inference toolkit does per request: ``json.loads`` +
``np.array`` / ``json.dumps(default=tolist)`` for JSON, ``np.genfromtxt`` for CSV decoding and
``np.savetxt`` for CSV encoding. Ours: the codecs of ``default_registry()`` as the server calls
them (with orjson, and with the stdlib fallback used where orjson is missing). Prints
microseconds per call and ratios.
"""

from __future__ import annotations

import argparse
import io
import json
import timeit
from collections.abc import Callable
from typing import Any

import numpy as np

from sagedock.serving.codecs import _jsonlib, default_registry
from sagedock.serving.negotiation import parse_content_type


def per_call(func: Callable[[], Any], repeat: int) -> float:
    """Best-of-*repeat* seconds per call, each timing enough calls for ~0.1 s."""
    timer = timeit.Timer(func)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    registry = default_registry()
    rng = np.random.default_rng(0)
    json_media = parse_content_type("application/json", "application/json")
    csv_media = parse_content_type("text/csv", "text/csv")
    rows: list[tuple[str, float, float, float | None]] = []

    def with_stdlib(func: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            saved, _jsonlib._orjson = _jsonlib._orjson, None
            try:
                return func()
            finally:
                _jsonlib._orjson = saved

        return run

    for n in (1, 100):
        body = json.dumps({"instances": rng.normal(size=(n, 50)).tolist()}).encode()

        def ours(body: bytes = body) -> Any:
            return registry.decode(body, json_media)

        def reference(body: bytes = body) -> Any:
            return np.array(json.loads(body.decode("utf-8"))["instances"])

        rows.append(
            (
                f"JSON decode {n} x 50",
                per_call(reference, args.repeat),
                per_call(ours, args.repeat),
                per_call(with_stdlib(ours), args.repeat),
            )
        )
    for n in (1, 100, 10_000):
        predictions = rng.random(n).astype(np.float32)

        def ours_enc(p: np.ndarray = predictions) -> Any:
            return registry.encode(p, "application/json", "application/json")

        def reference_enc(p: np.ndarray = predictions) -> Any:
            return json.dumps(p, default=lambda a: a.tolist()).encode()

        rows.append(
            (
                f"JSON encode {n} predictions",
                per_call(reference_enc, args.repeat),
                per_call(ours_enc, args.repeat),
                per_call(with_stdlib(ours_enc), args.repeat),
            )
        )
    for n in (1, 100):
        body = "\n".join(",".join(map(repr, r)) for r in rng.normal(size=(n, 50)).tolist())
        data = body.encode()

        def ours_csv(data: bytes = data) -> Any:
            return registry.decode(data, csv_media)

        def reference_csv(data: bytes = data) -> Any:
            return np.genfromtxt(io.StringIO(data.decode("utf-8")), delimiter=",")

        rows.append(
            (
                f"CSV decode {n} x 50",
                per_call(reference_csv, args.repeat),
                per_call(ours_csv, args.repeat),
                None,
            )
        )
    for n in (1, 100, 10_000):
        predictions = rng.random(n)

        def ours_csv_enc(p: np.ndarray = predictions) -> Any:
            return registry.encode(p, "text/csv", "text/csv")

        def reference_csv_enc(p: np.ndarray = predictions) -> Any:
            out = io.StringIO()
            np.savetxt(out, p, delimiter=",", fmt="%s")
            return out.getvalue().encode()

        rows.append(
            (
                f"CSV encode {n} predictions",
                per_call(reference_csv_enc, args.repeat),
                per_call(ours_csv_enc, args.repeat),
                None,
            )
        )

    print(f"{'case':30} {'reference':>12} {'sagedock':>12} {'speed-up':>9} {'stdlib path':>12}")
    for name, ref, ours_t, stdlib_t in rows:
        extra = f"{stdlib_t * 1e6:>9.1f} us" if stdlib_t is not None else ""
        print(
            f"{name:30} {ref * 1e6:>9.1f} us {ours_t * 1e6:>9.1f} us {ref / ours_t:>8.1f}x {extra}"
        )


if __name__ == "__main__":
    main()
