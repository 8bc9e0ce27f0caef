"""``sagedock demo``: the built-in XGBoost algorithm through the local platform, end to end.

On a small classification dataset generated on the spot it runs, with no cloud and no network:

1. a training job (``sagedock local train --algorithm xgboost``: CreateTrainingJob shape, File
   channels ``train`` and ``validation``, metric definitions read from the logs);
2. an endpoint serving the resulting ``model.tar.gz`` (``sagedock local serve``), invoked with
   CSV, asking for CSV and JSON answers, and with libsvm;
3. a batch transform (``sagedock local transform``: Line split, MultiRecord mini-batches of up
   to 1 MB with up to two requests at once (the 400 rows fit in one mini-batch, so one request
   is made, and the demo says how many it made), an id column kept out of the model's input and
   joined back onto each prediction with DataProcessing);

then prints the final metrics, sample predictions, the batch accuracy and the time each step
took. Everything lives in a temporary directory, removed afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HELP = "train, serve and batch-transform the built-in XGBoost locally on generated data"

N_FEATURES = 6
ROWS = {"train": 2000, "validation": 500, "batch": 400}
HYPERPARAMETERS = {
    "objective": "binary:logistic",
    "num_round": "40",
    "max_depth": "4",
    "eta": "0.3",
    "eval_metric": "auc",
}
METRICS = [
    {"Name": "train:auc", "Regex": r"train-auc:([0-9.]+)"},
    {"Name": "validation:auc", "Regex": r"validation-auc:([0-9.]+)"},
]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep", action="store_true", help="keep the demo directory (data, models, outputs)"
    )
    parser.add_argument("--verbose", action="store_true", help="stream the training job's logs")


def make_data(root: Path, seed: int = 7) -> dict[str, Any]:
    """Write train/validation CSVs (label first, no header) and a batch CSV (id, features);
    returns the batch labels for scoring."""
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = rng.normal(size=N_FEATURES)
    labels: dict[str, Any] = {}
    for name, n in ROWS.items():
        x = rng.normal(size=(n, N_FEATURES))
        logits = x @ weights + 0.5 * x[:, 0] * x[:, 1]
        y = (rng.random(n) < 1 / (1 + np.exp(-2 * logits))).astype(int)
        labels[name] = y
        directory = root / "data" / name
        directory.mkdir(parents=True, exist_ok=True)
        if name == "batch":
            ids = np.array([f"row-{i:04d}" for i in range(n)])
            rows = [
                f"{i}," + ",".join(f"{v:.5f}" for v in row) for i, row in zip(ids, x, strict=True)
            ]
            (directory / "batch.csv").write_text("\n".join(rows) + "\n")
        else:
            np.savetxt(
                directory / f"{name}.csv", np.column_stack([y, x]), delimiter=",", fmt="%.5g"
            )
    return labels


class _Steps:
    def __init__(self) -> None:
        self.timings: list[tuple[str, float]] = []

    def run(self, title: str) -> _Step:
        print(f"\n=== {title} " + "=" * max(0, 74 - len(title)), flush=True)
        return _Step(self, title)


class _Step:
    def __init__(self, steps: _Steps, title: str) -> None:
        self.steps, self.title = steps, title

    def __enter__(self) -> _Step:
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.steps.timings.append((self.title, time.monotonic() - self.started))


def run(args: argparse.Namespace) -> int:
    from sagedock.toolkit.errors import SagedockError

    root = Path(tempfile.mkdtemp(prefix="sagedock-demo-"))
    try:
        return _demo(root, args)
    except SagedockError as exc:
        print(f"\ndemo failed: {exc.describe()}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"\ndemo directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _demo(root: Path, args: argparse.Namespace) -> int:
    from sagedock.toolkit.local import (
        LocalEndpoint,
        ServeOptions,
        TrainingJob,
        TrainOptions,
        TransformOptions,
        http,
        parse_model,
        parse_training_job,
        parse_transform_job,
        run_transform_job,
    )

    env = {**os.environ, "SAGEDOCK_LOCAL_DIR": str(root / "state")}
    steps = _Steps()
    started = time.monotonic()

    with steps.run("data"):
        labels = make_data(root)
        for name, n in ROWS.items():
            print(f"  data/{name}/{name}.csv  {n} rows, {N_FEATURES} features")

    with steps.run("sagedock local train --algorithm xgboost"):
        channels = [
            {
                "ChannelName": name,
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(root / "data" / name)}
                },
            }
            for name in ("train", "validation")
        ]
        spec = parse_training_job(
            {
                "TrainingJobName": "demo-xgboost",
                "AlgorithmSpecification": {
                    "AlgorithmName": "xgboost",
                    "TrainingInputMode": "File",
                    "MetricDefinitions": METRICS,
                },
                "HyperParameters": HYPERPARAMETERS,
                "InputDataConfig": channels,
                "OutputDataConfig": {"S3OutputPath": f"file://{root / 'jobs'}"},
                "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
                "StoppingCondition": {"MaxRuntimeInSeconds": 300},
            }
        )
        print(f"  hyperparameters: {json.dumps(HYPERPARAMETERS)}")
        logs = io.StringIO()
        job = TrainingJob(
            spec,
            environ=env,
            options=TrainOptions(
                stream=sys.stdout if args.verbose else logs, progress_stream=io.StringIO()
            ),
        )
        result = job.run()
        record = result.record
        if result.status != "Completed":
            print(logs.getvalue())
            print(f"  training {result.status}: {record.get('FailureReason')}")
            return 1
        for line in logs.getvalue().splitlines():
            if "validation-auc" in line and line.split("|", 1)[-1].strip().startswith(
                ("[0]", "[39]")
            ):
                print(f"  {line}")
        print(f"  status: {record['TrainingJobStatus']} ({record['TrainingTimeInSeconds']} s)")
        print(f"  model:  {result.model_artifacts}")

    model = parse_model(
        {
            "ModelName": "demo-xgboost",
            "PrimaryContainer": {
                "ModelDataUrl": result.model_artifacts,
                "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
            },
        }
    )
    batch_rows = (root / "data" / "batch" / "batch.csv").read_text().splitlines()
    features = [row.split(",", 1)[1] for row in batch_rows[:3]]
    samples: list[tuple[str, str, str]] = []
    with steps.run("sagedock local serve + invoke"):
        endpoint = LocalEndpoint(
            model,
            name="demo-xgboost",
            environ=env,
            options=ServeOptions(port=0, algorithm="xgboost"),
        )
        with endpoint:
            print(f"  endpoint in service at {endpoint.url}")
            body = "\n".join(features).encode()
            for accept in ("text/csv", "application/json"):
                resp = http.invoke(endpoint.url, body, content_type="text/csv", accept=accept)
                if not resp.ok:
                    print(f"  invoke failed: HTTP {resp.status}: {resp.error_message()}")
                    return 1
                text = resp.body.decode().strip()
                samples.append(("text/csv", accept, text))
                print(
                    f"  POST /invocations text/csv -> {accept}:\n    "
                    + text.replace("\n", "\n    ")
                )
            # libsvm: feature indexes as XGBoost numbers CSV columns (from 0).
            libsvm = " ".join(f"{i}:{v}" for i, v in enumerate(features[0].split(",")))
            resp = http.invoke(
                endpoint.url, libsvm.encode(), content_type="text/libsvm", accept="application/json"
            )
            answer = resp.body.decode().strip() if resp.ok else f"HTTP {resp.status}"
            print(f"  POST /invocations text/libsvm -> application/json:\n    {answer}")

    with steps.run("sagedock local transform"):
        transform = parse_transform_job(
            {
                "TransformJobName": "demo-batch",
                "ModelName": "demo-xgboost",
                "BatchStrategy": "MultiRecord",
                "MaxPayloadInMB": 1,
                "MaxConcurrentTransforms": 2,
                "TransformInput": {
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": str(root / "data" / "batch"),
                        }
                    },
                    "ContentType": "text/csv",
                    "SplitType": "Line",
                },
                "TransformOutput": {
                    "S3OutputPath": str(root / "batch-out"),
                    "Accept": "text/csv",
                    "AssembleWith": "Line",
                },
                "DataProcessing": {
                    "InputFilter": "$[1:]",
                    "JoinSource": "Input",
                    "OutputFilter": "$[0,-1]",
                },
            }
        )
        out = io.StringIO()
        done = run_transform_job(
            transform,
            model=model,
            environ=env,
            options=TransformOptions(serve=ServeOptions(port=0, algorithm="xgboost"), stream=out),
        )
        if done.record["TransformJobStatus"] != "Completed":
            print(out.getvalue())
            return 1
        output = root / "batch-out" / "batch.csv.out"
        lines = output.read_text().splitlines()
        assert done.result is not None
        requests = sum(f.requests for f in done.result.files)
        print(
            f"  {done.record['RecordCount']} records in {requests} request(s): "
            f"{done.record['BatchStrategy']}, MaxPayloadInMB {done.record['MaxPayloadInMB']}, "
            f"MaxConcurrentTransforms {done.record['MaxConcurrentTransforms']}"
        )
        print("  InputFilter $[1:] (drop the id), JoinSource Input, OutputFilter $[0,-1]:")
        for line in lines[:3]:
            print(f"    {line}")
        scores = [float(line.rsplit(",", 1)[1]) for line in lines]
        hits = sum((s >= 0.5) == bool(y) for s, y in zip(scores, labels["batch"], strict=True))
        accuracy = hits / len(scores)

    print("\n=== summary " + "=" * 66)
    for metric in record.get("FinalMetricDataList", []):
        print(f"  {metric['MetricName']:<16} {metric['Value']:.4f}   (FinalMetricDataList)")
    print(f"  batch accuracy   {accuracy:.4f}   ({len(scores)} rows, threshold 0.5)")
    first_csv = samples[0][2].splitlines()
    print(f"  sample predictions (first 3 batch rows): {', '.join(first_csv)}")
    for title, seconds in steps.timings:
        print(f"  {seconds:6.2f} s  {title}")
    print(f"  {time.monotonic() - started:6.2f} s  total")
    return 0
