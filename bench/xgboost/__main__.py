"""Built-in XGBoost benchmarks, side by side with the references, in one run.

(a) Load throughput (MB of file per second, to a ready XGBoost matrix) per format: sagedock's
    readers (``containers.data`` -> ``DMatrix``, and -> ``QuantileDMatrix`` as training builds
    it) against XGBoost's own file loader (``DMatrix("f?format=csv|libsvm")``) and pandas
    (``read_csv`` / ``read_parquet`` -> ``DMatrix``) on the same files.
(b) ``sagedock train --algorithm xgboost`` end to end against a bare ``xgboost.train`` script
    (XGBoost's CSV loader, the same parameters, the same train watchlist, model saved) on the
    same CSV: wall time of the whole process, the overhead ratio (target <= 1.10), and the
    median seconds of each phase (from the job log's timestamps, and from time stamps the bare
    script prints at the end).
(c) Peak memory of loading (peak RSS during the load minus RSS before it) against the size of
    the data as a dense float32 matrix (target <= 1.5x): the lowest and the highest of the
    repeats (the peak of one loader varies from run to run with how the allocator's per-thread
    arenas happen to be reused).

Every measurement runs in a fresh child process (so peak RSS belongs to one loader only).

    .venv/bin/python bench/xgboost --rows 1000000 --e2e-rows 1000000 --repeat 5 --wait-quiet 120
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # bench/machine.py
from machine import busy_seconds, wait_for_quiet  # noqa: E402

METHODS: dict[str, tuple[str, ...]] = {
    "csv": ("sagedock-dmatrix", "sagedock-quantile", "xgboost-uri", "pandas"),
    "libsvm": ("sagedock-dmatrix", "sagedock-quantile", "xgboost-uri"),
    "parquet": ("sagedock-dmatrix", "sagedock-quantile", "pandas"),
    "recordio-protobuf": ("sagedock-dmatrix", "sagedock-quantile"),
}
SUFFIX = {"csv": "csv", "libsvm": "libsvm", "parquet": "parquet", "recordio-protobuf": "pbr"}


# -- data ------------------------------------------------------------------------------------


def make_data(rows: int, cols: int, seed: int = 0) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols), dtype=np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.standard_normal(rows, dtype=np.float32) > 0).astype(
        np.float32
    )
    return x, y


def write_csv(path: Path, x: Any, y: Any) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    columns = [pa.array(y)] + [pa.array(x[:, j]) for j in range(x.shape[1])]
    table = pa.table(columns, names=[f"c{j}" for j in range(len(columns))])
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(include_header=False))


def write_libsvm(path: Path, x: Any, y: Any) -> None:
    import numpy as np

    cols = x.shape[1]
    with path.open("w") as fh:
        for start in range(0, len(y), 20000):
            block = x[start : start + 20000]
            labels = y[start : start + 20000]
            parts = [labels.astype(np.int64).astype(str)]
            for j in range(cols):
                parts.append(np.char.add(f"{j}:", block[:, j].astype(str)))
            lines = parts[0]
            for part in parts[1:]:
                lines = np.char.add(np.char.add(lines, " "), part)
            fh.write("\n".join(lines.tolist()) + "\n")


def write_parquet(path: Path, x: Any, y: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [pa.array(y)] + [pa.array(x[:, j]) for j in range(x.shape[1])]
    pq.write_table(pa.table(columns, names=[f"c{j}" for j in range(len(columns))]), path)


def write_recordio(path: Path, x: Any, y: Any) -> None:
    from sagedock.toolkit.formats.protobuf import write_recordio_protobuf

    with path.open("wb") as fh:
        write_recordio_protobuf(fh, x, y)


WRITERS = {
    "csv": write_csv,
    "libsvm": write_libsvm,
    "parquet": write_parquet,
    "recordio-protobuf": write_recordio,
}


# -- (a) + (c): one load in a child process ----------------------------------------------------


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM (the peak RSS) to the current RSS, so the
    # peak measured next belongs to the load alone, not to the imports before it.
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def child_load(fmt: str, method: str, path: Path) -> dict[str, Any]:
    """Load *path* with *method*; seconds and peak-RSS growth, printed as JSON."""
    import numpy as np
    import pandas
    import pyarrow.compute
    import pyarrow.csv
    import pyarrow.parquet  # noqa: F401
    import scipy.sparse  # noqa: F401
    import xgboost

    from sagedock.containers.xgboost import data as xgb_data

    _reset_peak()
    baseline = _status("VmRSS")
    start = time.perf_counter()
    if method.startswith("sagedock"):
        # What training does: the QuantileDMatrix path spills the parsed batches to scratch.
        quantile = method.endswith("quantile")
        scratch = Path(tempfile.mkdtemp(prefix="bench-scratch-")) if quantile else None
        loaded = xgb_data.load_files("train", path, fmt, spill_dir=scratch)  # type: ignore[arg-type]
        assert loaded is not None
        matrix = xgb_data.build_matrix(loaded.batches, num_cols=loaded.num_cols, quantile=quantile)
        loaded.close()
        del loaded
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    elif method == "xgboost-uri":
        uri = f"{path}?format=csv&label_column=0" if fmt == "csv" else f"{path}?format=libsvm"
        matrix = xgboost.DMatrix(uri)
    elif fmt == "csv":
        frame = pandas.read_csv(path, header=None, dtype=np.float32, engine="c")
        values = frame.to_numpy()
        del frame
        matrix = xgboost.DMatrix(values[:, 1:], label=values[:, 0])
        del values
    else:
        frame = pandas.read_parquet(path)
        values = frame.to_numpy(dtype=np.float32)
        del frame
        matrix = xgboost.DMatrix(values[:, 1:], label=values[:, 0])
        del values
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_growth": max(0, _status("VmHWM") - baseline),
        "rows": matrix.num_row(),
        "cols": matrix.num_col(),
    }


def run_child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(HERE), "--child", *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def bench_loads(workdir: Path, rows: int, cols: int, repeat: int) -> list[dict[str, Any]]:
    x, y = make_data(rows, cols)
    dense_bytes = rows * cols * 4
    results = []
    for fmt, methods in METHODS.items():
        directory = workdir / f"load-{fmt}"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"train.{SUFFIX[fmt]}"
        if not path.exists():
            WRITERS[fmt](path, x, y)
        size = path.stat().st_size
        for method in methods:
            target = directory if method.startswith("sagedock") else path
            runs = [run_child("load", fmt, method, str(target)) for _ in range(repeat)]
            best = min(runs, key=lambda r: r["seconds"])
            results.append(
                {
                    "format": fmt,
                    "method": method,
                    "file_mb": size / 1e6,
                    "seconds": best["seconds"],
                    "mb_per_s": size / 1e6 / best["seconds"],
                    "peak_vs_dense": min(r["peak_growth"] for r in runs) / dense_bytes,
                    "peak_max_vs_dense": max(r["peak_growth"] for r in runs) / dense_bytes,
                    "shape": (best["rows"], best["cols"]),
                }
            )
            print(
                f"  {fmt:18} {method:18} {results[-1]['seconds']:7.2f} s "
                f"{results[-1]['mb_per_s']:7.1f} MB/s  peak {results[-1]['peak_vs_dense']:.2f}x"
                f" (max {results[-1]['peak_max_vs_dense']:.2f}x)",
                flush=True,
            )
    return results


# -- (b): end to end ---------------------------------------------------------------------------

BARE_SCRIPT = """
import sys, time
marks = [("import", time.time())]
import xgboost as xgb
marks.append(("load", time.time()))
train_csv, model, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
dtrain = xgb.DMatrix(f"{train_csv}?format=csv&label_column=0")
marks.append(("train", time.time()))
params = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.3, "tree_method": "hist"}
booster = xgb.train(params, dtrain, rounds, evals=[(dtrain, "train")], verbose_eval=True)
marks.append(("save", time.time()))
booster.save_model(model)
marks.append(("exit", time.time()))
print("MARKS", *(f"{name}={t!r}" for name, t in marks), file=sys.stderr)
"""

#: Where each phase of ``sagedock train`` starts: the first job log line matching the text.
OUR_PHASES = (
    ("import", "running the algorithm"),
    ("read", "channel train:"),
    ("matrix", "Train matrix has"),
    ("train", "built the "),
    ("save", "Stored trained model"),
    ("exit", "training succeeded"),
)
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _marks(stderr: str, ours: bool) -> list[tuple[str, float]]:
    """``(phase, wall-clock start)`` of each phase the process logged."""
    if not ours:
        for line in stderr.splitlines():
            if line.startswith("MARKS "):
                pairs = (item.split("=", 1) for item in line.split()[1:])
                return [(name, float(value)) for name, value in pairs]
        return []
    found = []
    phases = iter(OUR_PHASES)
    name, text = next(phases)
    for line in stderr.splitlines():
        match = _LOG_TIME.match(line)
        if match and text in line:
            stamp = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
            found.append((name, stamp.timestamp()))
            name, text = next(phases, ("", "\0"))
    return found


#: A run during which the rest of the machine used less than this many cores counts as quiet.
QUIET_RUN_CORES = 0.1


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Timed:
    seconds: float
    phases: dict[str, float]
    others_cores: float
    """CPU the rest of the machine used meanwhile, in cores (0 = the run had the machine)."""


def _timed(command: list[str], env: dict[str, str], *, ours: bool) -> Timed:
    """Wall time of *command*, seconds per phase (``start`` = interpreter start-up and
    whatever runs before the first phase the process reports; the last phase ends when the
    process has exited), and what else ran on the machine meanwhile."""
    began = time.time()
    busy, own = busy_seconds(), _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(
        command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    seconds = time.perf_counter() - start
    others = (busy_seconds() - busy) - (_children_cpu() - own)
    marks = [("start", began), *_marks(done.stderr, ours), ("", began + seconds)]
    phases = {name: max(0.0, nxt - at) for (name, at), (_, nxt) in itertools.pairwise(marks)}
    return Timed(seconds, phases, max(0.0, others / seconds))


def bench_end_to_end(
    workdir: Path, rows: int, cols: int, rounds: int, repeat: int, wait_quiet: float = 0.0
) -> dict[str, Any]:
    x, y = make_data(rows, cols, seed=1)
    base = workdir / "e2e"
    shutil.rmtree(base, ignore_errors=True)
    channel = base / "opt_ml" / "input" / "data" / "train"
    channel.mkdir(parents=True)
    csv_path = channel / "train.csv"
    write_csv(csv_path, x, y)
    del x, y
    config = base / "opt_ml" / "input" / "config"
    config.mkdir(parents=True)
    hyperparameters = {
        "num_round": str(rounds),
        "objective": "binary:logistic",
        "max_depth": "6",
        "eta": "0.3",
        "tree_method": "hist",
    }
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(
        json.dumps({"train": {"ContentType": "text/csv", "TrainingInputMode": "File"}})
    )
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
    )
    script = base / "bare_train.py"
    script.write_text(BARE_SCRIPT)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_", "SAGEDOCK_"))
    }
    ours_env = {**env, "SAGEMAKER_BASE_DIR": str(base / "opt_ml")}
    bare_cmd = [sys.executable, str(script), str(csv_path), str(base / "bare-model"), str(rounds)]
    ours_cmd = [sys.executable, "-m", "sagedock.toolkit", "train", "--algorithm", "xgboost"]
    bare: list[Timed] = []
    ours: list[Timed] = []
    for _ in range(repeat):  # interleaved, so both see the same machine load
        if wait_quiet:
            wait_for_quiet(wait_quiet)
        bare.append(_timed(bare_cmd, env, ours=False))
        if wait_quiet:
            wait_for_quiet(wait_quiet)
        ours.append(_timed(ours_cmd, ours_env, ours=True))
        print(
            f"  bare {bare[-1].seconds:.1f} s (others {bare[-1].others_cores:.2f} cores)   "
            f"sagedock {ours[-1].seconds:.1f} s (others {ours[-1].others_cores:.2f} cores)",
            flush=True,
        )
    bare_times = [t.seconds for t in bare]
    ours_times = [t.seconds for t in ours]
    return {
        "rows": rows,
        "cols": cols,
        "rounds": rounds,
        "csv_mb": csv_path.stat().st_size / 1e6,
        "bare": bare_times,
        "sagedock": ours_times,
        "bare_others": [t.others_cores for t in bare],
        "sagedock_others": [t.others_cores for t in ours],
        "bare_phases": _median_phases([t.phases for t in bare]),
        "sagedock_phases": _median_phases([t.phases for t in ours]),
        "ratio_median": statistics.median(ours_times) / statistics.median(bare_times),
        "ratio_pairs": statistics.median(
            o / b for o, b in zip(ours_times, bare_times, strict=True)
        ),
        "ratio_best": min(ours_times) / min(bare_times),
        "bare_quiet": [t.seconds for t in bare if t.others_cores < QUIET_RUN_CORES],
        "sagedock_quiet": [t.seconds for t in ours if t.others_cores < QUIET_RUN_CORES],
    }


def _median_phases(runs: list[dict[str, float]]) -> dict[str, float]:
    names = list(dict.fromkeys(name for run in runs for name in run))
    return {name: statistics.median(run.get(name, 0.0) for run in runs) for name in names}


# -- report ------------------------------------------------------------------------------------


def report(loads: list[dict[str, Any]], e2e: dict[str, Any] | None, rows: int, cols: int) -> None:
    if loads:
        _report_loads(loads, rows, cols)
    if e2e:
        _report_e2e(e2e)


def _report_loads(loads: list[dict[str, Any]], rows: int, cols: int) -> None:
    print(
        f"\n(a) load throughput and (c) peak memory, {rows} x {cols} (dense float32 "
        f"{rows * cols * 4 / 1e6:.0f} MB)"
    )
    print(
        "| format | loader | file MB | s | MB/s | vs xgboost | vs pandas | peak / dense "
        "| max peak / dense |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    by_key = {(r["format"], r["method"]): r for r in loads}
    for r in loads:
        ref_x = by_key.get((r["format"], "xgboost-uri"))
        ref_p = by_key.get((r["format"], "pandas"))
        vs_x = f"{r['mb_per_s'] / ref_x['mb_per_s']:.2f}x" if ref_x else "-"
        vs_p = f"{r['mb_per_s'] / ref_p['mb_per_s']:.2f}x" if ref_p else "-"
        print(
            f"| {r['format']} | {r['method']} | {r['file_mb']:.0f} | {r['seconds']:.2f} | "
            f"{r['mb_per_s']:.0f} | {vs_x} | {vs_p} | {r['peak_vs_dense']:.2f}x | "
            f"{r['peak_max_vs_dense']:.2f}x |"
        )


def _report_e2e(e2e: dict[str, Any]) -> None:
    if e2e:
        print(
            f"\n(b) end to end, {e2e['rows']} x {e2e['cols']} CSV ({e2e['csv_mb']:.0f} MB), "
            f"{e2e['rounds']} rounds"
        )
        print(f"  bare xgboost.train script: {', '.join(f'{t:.1f}' for t in e2e['bare'])} s")
        print(f"  sagedock train:            {', '.join(f'{t:.1f}' for t in e2e['sagedock'])} s")
        for side in ("bare", "sagedock"):
            phases = e2e[f"{side}_phases"]
            print(
                f"  {side} phases (median s): "
                + "  ".join(f"{name} {seconds:.2f}" for name, seconds in phases.items())
            )
        quiet_bare, quiet_ours = e2e["bare_quiet"], e2e["sagedock_quiet"]
        if quiet_bare and quiet_ours:
            print(
                f"  quiet runs (others < {QUIET_RUN_CORES} cores): bare {len(quiet_bare)}, "
                f"sagedock {len(quiet_ours)}; ratio of their medians "
                f"{statistics.median(quiet_ours) / statistics.median(quiet_bare):.3f}"
            )
        print(
            f"  overhead ratio (median): {e2e['ratio_median']:.3f}   (best): "
            f"{e2e['ratio_best']:.3f}   (median of the pairs' ratios): {e2e['ratio_pairs']:.3f}"
            "   target <= 1.10"
        )


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/xgboost", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for (a) and (c); 0 skips")
    parser.add_argument("--cols", type=int, default=50)
    parser.add_argument("--e2e-rows", type=int, default=1_000_000, help="rows for (b); 0 skips")
    parser.add_argument("--rounds", type=int, default=50, help="boosting rounds for (b)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="keep generated files here")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="(b): before each run, wait up to SECONDS for a second with the machine idle",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _, fmt, method, path = args.child
        print(json.dumps(child_load(fmt, method, Path(path))))
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-xgboost-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        loads = []
        if args.rows:
            print(f"(a)+(c) loading, {args.rows} x {args.cols}", flush=True)
            loads = bench_loads(workdir, args.rows, args.cols, args.repeat)
        e2e = None
        if args.e2e_rows:
            print(
                f"(b) end to end, {args.e2e_rows} x {args.cols}, {args.rounds} rounds", flush=True
            )
            e2e = bench_end_to_end(
                workdir, args.e2e_rows, args.cols, args.rounds, args.repeat, args.wait_quiet
            )
        report(loads, e2e, args.rows, args.cols)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
