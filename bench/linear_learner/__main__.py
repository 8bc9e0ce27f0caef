"""Built-in Linear Learner benchmarks, side by side with their references, in one run.

(a) Training throughput: ``--rows`` x 100 dense float32 rows (1M by default), ``--epochs`` 5,
    mini-batches of 1000, logistic loss:
    - ``ours-32``: 32 models (``num_models=auto``: the settings a job gets) trained together
      by the trainer's own loop (:class:`ParallelLinear`) on mini-batches held in memory;
    - ``sklearn-1``: scikit-learn's ``SGDClassifier`` fitting one model on the same array for
      the same epochs (``max_iter=epochs, tol=None``);
    - ``sklearn-32``: 32 such fits, one per alpha of our 32 models' ``wd`` (what a user
      without batched training would run);
    - ``job``: ``sagedock train --algorithm linear-learner`` end to end on the same rows as a
      RecordIO-protobuf file (the algorithm's default format), read again every epoch; its
      ``#throughput_metric`` line and its wall time.
    Ratios: ours-32 / sklearn-1 time (goal <= 2) and sklearn-32 / ours-32 (goal >= 10).
(b) Peak memory on a CSV ``--rss-factor`` (5) times larger than a memory limit
    (``--rss-limit-mb``, a cgroup v1 memory limit on the job's process when this machine lets
    us make one; else only measured): peak RSS of the job (``ru_maxrss``) and the cgroup's
    peak, which counts page cache too.
(c) Serving: requests/s at c=32 for a 1-row CSV -> JSON through ``sagedock serve`` (nginx, 2
    workers) with a Linear Learner model, beside the same for a built-in XGBoost model (wrk,
    as bench/serving runs it).
(d) ``--device cuda``: (a)'s ``ours-32`` on the GPU too, when one is there.

    .venv/bin/python bench/linear_learner                      # everything, about 5 minutes
    .venv/bin/python bench/linear_learner --quick              # smoke run
    .venv/bin/python bench/linear_learner --only train --device cuda
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # bench/machine.py
from machine import busy_seconds, wait_for_quiet  # noqa: E402

FEATURES = 100
BATCH = 1000
CGROUP_ROOT = Path("/sys/fs/cgroup/memory")


def make_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, FEATURES), dtype=np.float32)
    w = rng.standard_normal(FEATURES).astype(np.float32)
    noise = rng.standard_normal(rows).astype(np.float32)
    return x, (x @ w + noise > 0).astype(np.float32)


def _config() -> Any:
    from sagedock.containers.linear_learner.hyperparameters import parse_hyperparameters

    return parse_hyperparameters({"predictor_type": "binary_classifier"}, seed=0)


# -- (a) training --------------------------------------------------------------------------------


def time_ours(x: np.ndarray, y: np.ndarray, epochs: int, device: str) -> dict[str, float]:
    import torch

    from sagedock.containers.linear_learner.batched import (
        LossSpec,
        Normaliser,
        ParallelLinear,
        Rows,
        cpu_threads,
    )

    cfg = _config()
    torch.set_num_threads(cpu_threads(FEATURES, len(cfg.models), 1, os.cpu_count() or 1))
    dev = torch.device(device)
    models = ParallelLinear(
        cfg.models,
        FEATURES,
        1,
        loss=LossSpec("logistic"),
        normaliser=Normaliser.identity(FEATURES),
        device=dev,
    )
    started = time.perf_counter()
    for _ in range(epochs):
        for start in range(0, len(y), BATCH):
            models.step(Rows.of(x[start : start + BATCH], y[start : start + BATCH], dev))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    accuracy = _best_accuracy(models, x[:100_000], y[:100_000], dev)
    return {"seconds": seconds, "records_per_second": len(y) * epochs / seconds, "acc": accuracy}


def _best_accuracy(models: Any, x: np.ndarray, y: np.ndarray, device: Any) -> float:
    import torch

    with torch.no_grad():
        scores = models.scores(torch.from_numpy(x).to(device))[:, :, 0].cpu().numpy()
    return float(((scores > 0) == (y[:, None] == 1)).mean(axis=0).max())


def time_sklearn(x: np.ndarray, y: np.ndarray, epochs: int, alphas: list[float]) -> dict[str, Any]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier

    seconds = []
    accuracy = 0.0
    for alpha in alphas:
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = SGDClassifier(loss="log_loss", alpha=alpha, max_iter=epochs, tol=None)
            model.fit(x, y)
        seconds.append(time.perf_counter() - started)
        accuracy = max(accuracy, float(model.score(x[:100_000], y[:100_000])))
    total = sum(seconds)
    return {
        "seconds": total,
        "records_per_second": len(y) * epochs * len(alphas) / total,
        "acc": accuracy,
        "fits": len(alphas),
    }


def time_job(x: np.ndarray, y: np.ndarray, epochs: int, work: Path) -> dict[str, Any]:
    from sagedock.toolkit.formats.protobuf import write_recordio_protobuf

    base = work / "job"
    channel = base / "input" / "data" / "train"
    channel.mkdir(parents=True)
    with (channel / "part-0.pbr").open("wb") as fh:
        write_recordio_protobuf(fh, x, y)
    hps = {
        "predictor_type": "binary_classifier",
        "epochs": str(epochs),
        "mini_batch_size": str(BATCH),
        "num_calibration_samples": "100000",
    }
    result, seconds, _ = run_job(base, hps, {"train": "application/x-recordio-protobuf"})
    match = re.search(r"train throughput=(\S+) records/second", result.stderr)
    return {
        "seconds": seconds,
        "records_per_second": float(match[1]) if match else float("nan"),
        "ok": result.returncode == 0,
    }


def run_job(
    base: Path, hps: dict[str, str], channels: dict[str, str], memory_limit: int | None = None
) -> tuple[subprocess.CompletedProcess[str], float, dict[str, Any]]:
    """``sagedock train --algorithm linear-learner`` on the tree at *base*; the result, its
    wall time and its memory (ru_maxrss of the job, the cgroup's peak when limited)."""
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hps))
    (config / "inputdataconfig.json").write_text(
        json.dumps({name: {"ContentType": ct} for name, ct in channels.items()})
    )
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
    env["SAGEMAKER_BASE_DIR"] = str(base)
    command = [sys.executable, "-m", "sagedock.toolkit", "train", "--algorithm", "linear-learner"]
    memory: dict[str, Any] = {}
    logs = base / "job-log"
    with limited_memory(memory_limit) as group, logs.open("w+") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=group.join if group else None,
        )
        # wait4: the rusage of this child alone (RUSAGE_CHILDREN keeps the largest of all)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        memory["peak_rss_mb"] = usage.ru_maxrss / 1024
        if group is not None:
            memory |= group.peaks()
        log.seek(0)
        stderr = log.read()
    result = subprocess.CompletedProcess(command, process.returncode, "", stderr)
    return result, seconds, memory


class MemoryGroup:
    """A cgroup v1 memory group with a limit (the machine must let root make one)."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        path.mkdir()
        (path / "memory.limit_in_bytes").write_text(str(limit))
        swap = path / "memory.memsw.limit_in_bytes"
        if swap.exists():
            swap.write_text(str(limit))

    def join(self) -> None:
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def peaks(self) -> dict[str, Any]:
        def read(name: str) -> int:
            return int((self.path / name).read_text())

        control = dict(
            line.split() for line in (self.path / "memory.oom_control").read_text().splitlines()
        )
        return {
            "cgroup_limit_mb": read("memory.limit_in_bytes") / 2**20,
            "cgroup_peak_mb": read("memory.max_usage_in_bytes") / 2**20,
            "oom_kills": int(control.get("oom_kill", 0)),
        }


@contextlib.contextmanager
def limited_memory(limit: int | None) -> Iterator[MemoryGroup | None]:
    if limit is None or not os.access(CGROUP_ROOT, os.W_OK):
        yield None
        return
    path = CGROUP_ROOT / f"sagedock-bench-{os.getpid()}"
    try:
        group = MemoryGroup(path, limit)
    except OSError as exc:
        print(f"# no cgroup memory limit ({exc}); peak memory is only measured")
        yield None
        return
    try:
        yield group
    finally:
        with contextlib.suppress(OSError):
            path.rmdir()


# -- (b) peak memory on a CSV larger than the limit ---------------------------------------------


def write_big_csv(path: Path, size: int) -> int:
    """A CSV of about *size* bytes (label first, 100 features), one block written again and
    again: the rows repeat, which is all a memory bound needs. Returns its row count."""
    x, y = make_data(10_000, seed=1)
    block = "".join(
        ",".join([f"{label:g}", *(f"{v:.5f}" for v in row)]) + "\n"
        for label, row in zip(y, x, strict=True)
    ).encode()
    rows = 0
    with path.open("wb") as fh:
        while fh.tell() < size:
            fh.write(block)
            rows += len(y)
    return rows


def peak_memory(work: Path, limit_mb: int, factor: int) -> dict[str, Any]:
    base = work / "big"
    channel = base / "input" / "data" / "train"
    channel.mkdir(parents=True)
    rows = write_big_csv(channel / "big.csv", factor * limit_mb * 2**20)
    hps = {
        "predictor_type": "binary_classifier",
        "epochs": "1",
        "mini_batch_size": str(BATCH),
        "num_calibration_samples": "100000",
    }
    result, seconds, memory = run_job(base, hps, {"train": "text/csv"}, limit_mb * 2**20)
    size = (channel / "big.csv").stat().st_size
    shutil.rmtree(base, ignore_errors=True)
    return {
        "csv_mb": size / 2**20,
        "rows": rows,
        "seconds": seconds,
        "ok": result.returncode == 0,
        "tail": "" if result.returncode == 0 else result.stderr[-1500:],
        **memory,
    }


# -- (c) serving ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def serve_rps(algorithm: str, model_dir: Path, body: Path, seconds: int) -> dict[str, Any]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
    env |= {
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
        "SAGEDOCK_MODEL_DIR": str(model_dir),
        "SAGEDOCK_ALGORITHM": algorithm,
    }
    log_path = model_dir.parent / f"serve-{algorithm}.log"
    server_log = log_path.open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "sagedock.toolkit", "serve"],
        env=env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _ping(port):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"sagedock serve ({algorithm}) did not answer /ping")
            time.sleep(0.2)
        answer = urllib.request.urlopen(
            urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations",
                data=body.read_bytes(),
                headers={"Content-Type": "text/csv", "Accept": "application/json"},
            ),
            timeout=5,
        ).read()
        wrk = [
            "wrk",
            "-t1",
            "-c32",
            f"-d{seconds}s",
            "-s",
            str(HERE.parent / "serving" / "report.lua"),
            f"http://127.0.0.1:{port}/invocations",
        ]
        wrk_env = {
            **os.environ,
            "BENCH_BODY": str(body),
            "BENCH_METHOD": "POST",
            "BENCH_CONTENT_TYPE": "text/csv",
            "BENCH_ACCEPT": "application/json",
        }
        busy = busy_seconds()
        out = subprocess.run(wrk, env=wrk_env, capture_output=True, text=True, check=True)
        busy = busy_seconds() - busy
        line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH_RESULT "))
        result = json.loads(line.removeprefix("BENCH_RESULT "))
        duration = result["duration_us"] / 1e6
        return {
            "rps": result["requests"] / duration,
            "non2xx": result["status"],
            "machine_cores": busy / duration,
            "answer": answer.decode()[:80],
        }
    finally:
        # SIGTERM to serve (its nginx and gunicorn have process groups of their own); a
        # server that has not stopped in 30 s is killed, and the run shows its log
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print(f"# sagedock serve ({algorithm}) had not stopped 30 s after SIGTERM: killed")
            print("# the end of its log:\n" + log_path.read_text(errors="replace")[-3000:])
            os.killpg(server.pid, 9)
            server.wait()
        server_log.close()


def serving(work: Path, seconds: int) -> dict[str, dict[str, Any]]:
    import xgboost

    from sagedock.containers.linear_learner.model import LinearModel, save_model

    x, y = make_data(2000)
    ll_dir, xgb_dir = work / "ll-model", work / "xgb-model"
    ll_dir.mkdir()
    xgb_dir.mkdir()
    weights = np.linalg.lstsq(x, y * 2 - 1, rcond=None)[0].astype(np.float32)[:, None]
    model = LinearModel(
        predictor_type="binary_classifier",
        loss="logistic",
        weights=weights,
        bias=np.zeros(1, np.float32),
        feature_mean=np.zeros(FEATURES, np.float32),
        feature_scale=np.ones(FEATURES, np.float32),
    )
    save_model(model, ll_dir / "model_algo-1")
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 6}, xgboost.DMatrix(x, y), 50
    )
    booster.save_model(str(xgb_dir / "xgboost-model.ubj"))
    body = work / "row.csv"
    body.write_text(",".join(f"{v:.5f}" for v in x[0]))
    return {
        "linear-learner": serve_rps("linear-learner", ll_dir, body, seconds),
        "xgboost": serve_rps("xgboost", xgb_dir, body, seconds),
    }


# -- the run -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/linear_learner", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda adds a GPU row)")
    parser.add_argument("--rss-limit-mb", type=int, default=1024)
    parser.add_argument("--rss-factor", type=int, default=5)
    parser.add_argument("--serve-seconds", type=int, default=10)
    parser.add_argument("--only", choices=("train", "memory", "serve"), action="append")
    parser.add_argument("--wait-quiet", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.epochs, args.rss_limit_mb, args.serve_seconds = 20_000, 2, 800, 2
    parts = set(args.only or ("train", "memory", "serve"))
    waited = wait_for_quiet(args.wait_quiet)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, waited {waited:.0f} s")
    work = Path(tempfile.mkdtemp(prefix="bench-ll-"))
    try:
        if "train" in parts:
            train_part(args, work)
        if "memory" in parts:
            found = peak_memory(work, args.rss_limit_mb, args.rss_factor)
            print(f"memory: {json.dumps(found)}")
        if "serve" in parts:
            for name, found in serving(work, args.serve_seconds).items():
                print(f"serve {name}: {json.dumps(found)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def train_part(args: argparse.Namespace, work: Path) -> None:
    x, y = make_data(args.rows)
    alphas = [float(m.wd) for m in _config().models]
    rows: dict[str, dict[str, Any]] = {}
    busy = busy_seconds()
    started = time.perf_counter()
    rows["ours-32 cpu"] = time_ours(x, y, args.epochs, "cpu")
    if args.device == "cuda":
        rows["ours-32 cuda"] = time_ours(x, y, args.epochs, "cuda")
    rows["sklearn-1"] = time_sklearn(x, y, args.epochs, alphas[:1])
    rows["sklearn-32"] = time_sklearn(x, y, args.epochs, alphas)
    rows["job (recordio-protobuf file)"] = time_job(x, y, args.epochs, work)
    load = (busy_seconds() - busy) / (time.perf_counter() - started)
    print(f"training: {args.rows} rows x {FEATURES}, {args.epochs} epochs, batches of {BATCH}")
    print(f"{'':32} {'seconds':>9} {'records/second':>15} {'accuracy':>9}")
    for name, found in rows.items():
        acc = found.get("acc")
        acc_text = f"{acc:9.4f}" if acc is not None else " " * 9
        print(f"{name:32} {found['seconds']:9.2f} {found['records_per_second']:15.1f} {acc_text}")
    ours, one, many = rows["ours-32 cpu"], rows["sklearn-1"], rows["sklearn-32"]
    print(f"# the machine was busy for {load:.2f} cores on average meanwhile")
    first = ours["seconds"] / one["seconds"]
    second = many["seconds"] / ours["seconds"]
    print(f"ratio: ours-32 / sklearn-1 time = {first:.2f} (goal <= 2: {_met(first <= 2)})")
    print(f"ratio: sklearn-32 / ours-32 time = {second:.1f} (goal >= 10: {_met(second >= 10)})")
    if "ours-32 cuda" in rows:
        print(f"ratio: cpu / cuda time = {ours['seconds'] / rows['ours-32 cuda']['seconds']:.1f}")


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


if __name__ == "__main__":
    raise SystemExit(main())
