"""``sagedock demo``: a tiny script-mode training job, run end to end, and what happened.

It lays out a fresh ``/opt/ml`` tree in a temporary directory (hyperparameters, one CSV
channel, a ``train.py`` submitted as a source directory), runs ``sagedock train`` on it as a
separate process, exactly as a platform would, and prints the ``SM_*`` variables the script
saw, its output, the model it saved and the success file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HELP = "run a tiny script-mode training job in a temporary /opt/ml and show what happened"

TRAIN_PY = '''\
"""A script-mode training script: least-squares fit of the CSV in the train channel."""
import argparse
import json
import os

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--l2", type=float, default=0.0)
parser.add_argument("--target-column", type=int, default=0)
args = parser.parse_args()

# What the toolkit gave us: every SM_* variable, for the demo to show.
seen = {k: v for k, v in os.environ.items() if k.startswith("SM_")}
os.makedirs(os.environ["SM_OUTPUT_DATA_DIR"], exist_ok=True)
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "env.json"), "w") as f:
    json.dump({"argv": os.sys.argv[1:], "env": seen}, f, indent=2, sort_keys=True)

train_dir = os.environ["SM_CHANNEL_TRAIN"]
data = np.vstack([np.loadtxt(os.path.join(train_dir, name), delimiter=",", ndmin=2)
                  for name in sorted(os.listdir(train_dir))])
y = data[:, args.target_column]
x = np.delete(data, args.target_column, axis=1)
x = np.hstack([x, np.ones((len(x), 1))])
w = np.linalg.solve(x.T @ x + args.l2 * np.eye(x.shape[1]), x.T @ y)
mse = float(np.mean((x @ w - y) ** 2))
print(f"rows={len(y)} weights={np.round(w, 3).tolist()}")
print(f"train_mse={mse:.6f}")  # a metric line, as SageMaker metric regexes read them

np.savez(os.path.join(os.environ["SM_MODEL_DIR"], "model.npz"), weights=w)
'''


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary job directory and print it"
    )


def write_job(root: Path) -> Path:
    """Lay out a demo job under *root*; returns its base dir (``root/opt/ml``)."""
    import numpy as np

    base = root / "opt" / "ml"
    source = root / "source"
    config = base / "input" / "config"
    train = base / "input" / "data" / "train"
    for directory in (source, config, train, base / "model"):
        directory.mkdir(parents=True, exist_ok=True)
    (source / "train.py").write_text(TRAIN_PY)

    rng = np.random.default_rng(7)
    features = rng.normal(size=(200, 2))
    target = 3.0 * features[:, 0] - 2.0 * features[:, 1] + 1.0 + rng.normal(0, 0.1, 200)
    np.savetxt(train / "data.csv", np.column_stack([target, features]), delimiter=",", fmt="%.5f")

    # As the SageMaker SDK writes them: every value a JSON-encoded string.
    hyperparameters = {
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": source.as_uri(),
        "l2": 0.01,
        "target-column": 0,
    }
    documents = {
        "hyperparameters.json": {k: json.dumps(v) for k, v in hyperparameters.items()},
        "inputdataconfig.json": {"train": {"TrainingInputMode": "File", "ContentType": "text/csv"}},
        "resourceconfig.json": {"current_host": "algo-1", "hosts": ["algo-1"]},
    }
    for name, document in documents.items():
        (config / name).write_text(json.dumps(document, indent=2))
    return base


def _section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 74 - len(title)), flush=True)


def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="sagedock-demo-"))
    try:
        base = write_job(root)
        _section("the job")
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            print(f"  {path.relative_to(root)}")
        print(textwrap.indent((base / "input/config/hyperparameters.json").read_text(), "  "))

        _section("sagedock train (a separate process, SAGEMAKER_BASE_DIR=<job>/opt/ml)")
        completed = subprocess.run(
            [sys.executable, "-m", "sagedock.toolkit", "train"],
            env={**os.environ, "SAGEMAKER_BASE_DIR": str(base)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        for line in completed.stdout.splitlines():
            # The full SM_TRAINING_ENV dump is long; the SM_* section below shows it compactly.
            if not line.startswith(("    ", "{", "}")):
                print(f"  {line}")
        print(f"  -> exit code {completed.returncode}")

        seen_file = base / "output" / "data" / "env.json"
        if seen_file.is_file():
            seen = json.loads(seen_file.read_text())
            _section("what the script saw")
            print(f"  argv: {seen['argv']}")
            for key, value in sorted(seen["env"].items()):
                shown = value if len(value) <= 100 else value[:97] + "..."
                print(f"  {key}={shown}")

        _section("results")
        for path in sorted((base / "model").rglob("*")):
            print(f"  model/{path.relative_to(base / 'model')} ({path.stat().st_size} bytes)")
        if (base / "output" / "success").exists():
            print("  output/success exists: the job succeeded")
        if (base / "output" / "failure").exists():
            print(f"  output/failure: {(base / 'output' / 'failure').read_text()}")
        if args.keep:
            print(f"\n  job kept in {root}")
        return completed.returncode
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
