"""`sagedock local train` end to end with the process backend: real `sagedock train` hosts."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from sagedock.toolkit.errors import UserError
from sagedock.toolkit.local import TrainingJob, TrainOptions, describe, parse_training_job
from sagedock.toolkit.local.spec.flags import training_request
from tests.fixtures.s3 import S3Server


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """This process's environment with the local platform's state in a temporary directory."""
    return {**os.environ, "SAGEDOCK_LOCAL_DIR": str(tmp_path / "state")}


def script(tmp_path: Path, name: str, body: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / name).write_text(textwrap.dedent(body))
    return src


def job_doc(
    tmp_path: Path, entry: str, *, channels: list[str] = (), **flags: Any
) -> dict[str, Any]:
    import argparse

    ns = argparse.Namespace(
        entry_point=entry,
        source_dir=str(tmp_path / "src"),
        channel=list(channels),
        output=flags.pop("output", str(tmp_path / "out")),
        job_name=flags.pop("job_name", "job"),
        **flags,
    )
    return training_request(ns)


def run_job(doc: dict[str, Any], env: dict[str, str], **options: Any) -> tuple[Any, str]:
    out = io.StringIO()
    job = TrainingJob(
        parse_training_job(doc),
        environ=env,
        options=TrainOptions(stream=out, progress_stream=io.StringIO(), **options),
    )
    return job.run(), out.getvalue()


def members(tarball: Path | bytes) -> dict[str, bytes]:
    data = tarball if isinstance(tarball, bytes) else tarball.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


WRITE_MODEL = """
import json, os, sys
host = os.environ["SM_CURRENT_HOST"]
channel = os.environ.get("SM_CHANNEL_TRAIN")
files = sorted(os.listdir(channel)) if channel else []
print(f"{host} sees {files}")
print(f"loss={0.25 if host == 'algo-1' else 0.5}")
with open(os.path.join(os.environ["SM_MODEL_DIR"], f"{host}.json"), "w") as f:
    json.dump({"files": files, "hosts": json.loads(os.environ["SM_HOSTS"]),
               "addresses": json.loads(os.environ["SAGEDOCK_HOST_ADDRESSES"]),
               "argv": sys.argv[1:]}, f)
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], f"{host}.txt"), "w") as f:
    f.write("output of " + host)
"""


def test_script_mode_job_writes_model_output_and_record_where_sagemaker_does(
    tmp_path: Path, env: dict[str, str]
) -> None:
    script(tmp_path, "train.py", WRITE_MODEL)
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("1,2\n")
    doc = job_doc(
        tmp_path,
        "train.py",
        channels=[f"train={data}"],
        hp=["epochs=3"],
        metric=["loss=loss=([0-9.]+)"],
    )
    result, logs = run_job(doc, env)

    assert result.exit_code == 0, logs
    out = tmp_path / "out" / "job"
    record = json.loads((out / "training-job.json").read_text())
    assert record["TrainingJobStatus"] == "Completed"
    assert record["SecondaryStatus"] == "Completed"
    assert [t["Status"] for t in record["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert record["ModelArtifacts"]["S3ModelArtifacts"] == str(out / "output" / "model.tar.gz")
    assert record["FinalMetricDataList"][0]["MetricName"] == "loss"
    assert record["FinalMetricDataList"][0]["Value"] == 0.25
    model = json.loads(members(out / "output" / "model.tar.gz")["algo-1.json"])
    assert model["files"] == ["a.csv"]
    assert model["argv"] == ["--epochs", "3"]
    assert members(out / "output" / "output.tar.gz") == {"algo-1.txt": b"output of algo-1"}
    assert "algo-1 | algo-1 sees ['a.csv']" in logs
    assert describe("job", env)["TrainingJobStatus"] == "Completed"
    # no temporary files left beside the published artifacts
    assert sorted(p.name for p in (out / "output").iterdir()) == ["model.tar.gz", "output.tar.gz"]


def test_two_host_job_shards_files_and_merges_the_model_dirs(
    tmp_path: Path, env: dict[str, str]
) -> None:
    script(tmp_path, "train.py", WRITE_MODEL)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(5):
        (data / f"part-{i}.csv").write_text(f"{i}\n")
    doc = job_doc(
        tmp_path,
        "train.py",
        channels=[f"train={data},distribution=ShardedByS3Key"],
        instance_count=2,
    )
    result, logs = run_job(doc, env)

    assert result.exit_code == 0, logs
    files = members(tmp_path / "out" / "job" / "output" / "model.tar.gz")
    one, two = json.loads(files["algo-1.json"]), json.loads(files["algo-2.json"])
    assert one["hosts"] == two["hosts"] == ["algo-1", "algo-2"]
    assert one["addresses"] == {"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}
    assert not set(one["files"]) & set(two["files"])
    assert sorted(one["files"] + two["files"]) == [f"part-{i}.csv" for i in range(5)]
    assert set(members(tmp_path / "out" / "job" / "output" / "output.tar.gz")) == {
        "algo-1.txt",
        "algo-2.txt",
    }
    assert "algo-2 | algo-2 sees" in logs


def test_a_failing_job_is_failed_with_the_reason_from_its_failure_file(
    tmp_path: Path, env: dict[str, str]
) -> None:
    script(tmp_path, "train.py", "raise SystemExit('learning_rate must be positive, got -1')\n")
    result, _logs = run_job(job_doc(tmp_path, "train.py"), env)

    assert result.exit_code == 1
    record = result.record
    assert record["TrainingJobStatus"] == "Failed"
    assert record["SecondaryStatus"] == "Failed"
    assert record["FailureReason"].startswith(("ClientError:", "AlgorithmError:"))
    assert "learning_rate must be positive" in record["FailureReason"]
    assert "ModelArtifacts" not in record
    published = json.loads((tmp_path / "out" / "job" / "training-job.json").read_text())
    assert published["FailureReason"] == record["FailureReason"]
    assert not (tmp_path / "out" / "job" / "output" / "model.tar.gz").exists()
    # the hosts' trees are kept for a post-mortem
    assert (result.job_dir / "hosts" / "algo-1" / "output" / "failure").is_file()


def test_one_failing_host_stops_the_others_and_fails_the_job(
    tmp_path: Path, env: dict[str, str]
) -> None:
    script(
        tmp_path,
        "train.py",
        """
        import os, sys, time
        if os.environ["SM_CURRENT_HOST"] == "algo-2":
            sys.exit("algo-2 ran out of patience")
        time.sleep(60)
        """,
    )
    started = time.monotonic()
    result, logs = run_job(job_doc(tmp_path, "train.py", instance_count=2), env, stop_grace=2)
    assert result.record["TrainingJobStatus"] == "Failed"
    assert "algo-2 ran out of patience" in result.record["FailureReason"]
    assert time.monotonic() - started < 40, logs


SLEEPER = """
import os, signal, sys, time
def on_term(signum, frame):
    if os.environ.get("SAVE_ON_TERM"):
        open(os.path.join(os.environ["SM_MODEL_DIR"], "saved-on-sigterm"), "w").write("x")
        sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("sleeping", flush=True)
time.sleep(120)
"""


def test_max_runtime_sends_sigterm_and_keeps_what_the_job_saved(
    tmp_path: Path, env: dict[str, str]
) -> None:
    script(tmp_path, "train.py", SLEEPER)
    # The limit counts from the job's start: leave the script time to install its SIGTERM
    # handler on a busy machine.
    doc = job_doc(tmp_path, "train.py", max_runtime=4, env=["SAVE_ON_TERM=1"])
    result, logs = run_job(doc, env, stop_grace=30)

    record = result.record
    assert (record["TrainingJobStatus"], record["SecondaryStatus"]) == (
        "Stopped",
        "MaxRuntimeExceeded",
    )
    assert "Stopping" in [t["Status"] for t in record["SecondaryStatusTransitions"]]
    assert result.exit_code == 3
    model = tmp_path / "out" / "job" / "output" / "model.tar.gz"
    assert "saved-on-sigterm" in members(model), logs


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace_period(
    tmp_path: Path, env: dict[str, str]
) -> None:
    script(
        tmp_path,
        "train.py",
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring SIGTERM", flush=True)
        time.sleep(120)
        """,
    )
    started = time.monotonic()
    result, logs = run_job(job_doc(tmp_path, "train.py", max_runtime=1), env, stop_grace=1)
    assert result.record["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert "SIGKILL" in logs
    assert time.monotonic() - started < 60


def test_s3_channels_outputs_and_checkpoints_against_a_real_s3_api(
    tmp_path: Path, env: dict[str, str], s3_server: S3Server
) -> None:
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="data/train/a.csv", Body=b"1,2\n")
    client.put_object(Bucket=bucket, Key="data/train/sub/b.csv", Body=b"3,4\n")
    client.put_object(Bucket=bucket, Key="ck/step-1.pt", Body=b"old checkpoint")
    script(
        tmp_path,
        "train.py",
        """
        import json, os
        config = os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "checkpointconfig.json")
        ck = json.load(open(config))["LocalPath"]
        restored = sorted(os.listdir(ck))
        open(os.path.join(ck, "step-2.pt"), "w").write("new checkpoint")
        walk = sorted(os.path.relpath(os.path.join(r, f), os.environ["SM_CHANNEL_TRAIN"])
                      for r, _, fs in os.walk(os.environ["SM_CHANNEL_TRAIN"]) for f in fs)
        json.dump({"restored": restored, "train": walk},
                  open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w"))
        """,
    )
    doc = job_doc(
        tmp_path,
        "train.py",
        channels=[f"train=s3://{bucket}/data/train"],
        output=f"s3://{bucket}/out",
        checkpoint=f"s3://{bucket}/ck",
    )
    result, logs = run_job(doc, {**env, **s3_server.environ})

    assert result.exit_code == 0, logs
    key = "out/job/output/model.tar.gz"
    assert result.model_artifacts == f"s3://{bucket}/{key}"
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    seen = json.loads(members(body)["seen.json"])
    assert seen == {"restored": ["step-1.pt"], "train": ["a.csv", "sub/b.csv"]}
    assert client.get_object(Bucket=bucket, Key="ck/step-2.pt")["Body"].read() == b"new checkpoint"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="out/")["Contents"]}
    assert keys == {
        "out/job/output/model.tar.gz",
        "out/job/output/output.tar.gz",
        "out/job/training-job.json",
    }


PIPE_READER = """
import gzip, json, os
from sagedock.toolkit.formats.recordio import iter_records
base = os.environ["SM_INPUT_DIR"] + "/data"
seen = {}
for epoch in range(2):
    with open(f"{base}/train_{epoch}", "rb") as pipe:
        data = pipe.read()
    seen[f"train_{epoch}"] = data.decode()
with open(f"{base}/wrapped_0", "rb") as pipe:
    seen["wrapped_0"] = [r.decode() for r in iter_records(pipe)]
json.dump(seen, open(os.path.join(os.environ["SM_MODEL_DIR"], "pipes.json"), "w"))
"""


def test_pipe_mode_feeds_one_fifo_per_epoch_with_gzip_and_recordio_wrapping(
    tmp_path: Path, env: dict[str, str]
) -> None:
    script(tmp_path, "train.py", PIPE_READER)
    plain, wrapped = tmp_path / "plain", tmp_path / "wrapped"
    plain.mkdir()
    wrapped.mkdir()
    (plain / "1.csv.gz").write_bytes(gzip.compress(b"a,1\n"))
    (plain / "2.csv.gz").write_bytes(gzip.compress(b"b,2\n"))
    (wrapped / "x.json").write_text('{"x": 1}')
    (wrapped / "y.json").write_text('{"y": 2}')
    doc = job_doc(
        tmp_path,
        "train.py",
        channels=[
            f"train={plain},mode=Pipe,compression=Gzip",
            f"wrapped={wrapped},mode=Pipe,wrapper=RecordIO",
        ],
    )
    result, logs = run_job(doc, env)

    assert result.exit_code == 0, logs
    seen = json.loads(members(tmp_path / "out" / "job" / "output" / "model.tar.gz")["pipes.json"])
    assert seen == {
        "train_0": "a,1\nb,2\n",
        "train_1": "a,1\nb,2\n",
        "wrapped_0": ['{"x": 1}', '{"y": 2}'],
    }


def test_augmented_manifest_streams_attributes_and_referenced_objects_in_order(
    tmp_path: Path, env: dict[str, str]
) -> None:
    script(
        tmp_path,
        "train.py",
        """
        import json, os
        from sagedock.toolkit.formats.recordio import iter_records
        with open(os.environ["SM_INPUT_DIR"] + "/data/train_0", "rb") as pipe:
            records = [r.decode() for r in iter_records(pipe)]
        json.dump(records, open(os.path.join(os.environ["SM_MODEL_DIR"], "r.json"), "w"))
        """,
    )
    (tmp_path / "img1.jpg").write_bytes(b"IMAGE-ONE")
    (tmp_path / "img2.jpg").write_bytes(b"IMAGE-TWO")
    manifest = tmp_path / "train.manifest"
    manifest.write_text(
        json.dumps({"source-ref": f"file://{tmp_path}/img1.jpg", "is-a-cat": 1, "x": "ignored"})
        + "\n"
        + json.dumps({"source-ref": str(tmp_path / "img2.jpg"), "is-a-cat": 0})
        + "\n"
    )
    doc = job_doc(
        tmp_path,
        "train.py",
        channels=[
            f"train={manifest},type=AugmentedManifestFile,attributes=source-ref;is-a-cat,"
            "mode=Pipe,wrapper=RecordIO"
        ],
    )
    result, logs = run_job(doc, env)
    assert result.exit_code == 0, logs
    records = json.loads(members(tmp_path / "out" / "job" / "output" / "model.tar.gz")["r.json"])
    assert records == ["IMAGE-ONE", "1", "IMAGE-TWO", "0"]


def test_manifest_file_channels_hold_the_listed_files(tmp_path: Path, env: dict[str, str]) -> None:
    script(tmp_path, "train.py", WRITE_MODEL)
    store = tmp_path / "store"
    (store / "day1").mkdir(parents=True)
    (store / "day1" / "a.csv").write_text("a\n")
    (store / "b.csv").write_text("b\n")
    (store / "not-listed.csv").write_text("x\n")
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([{"prefix": f"file://{store}/"}, "day1/a.csv", "b.csv"]))
    doc = job_doc(tmp_path, "train.py", channels=[f"train={manifest},type=ManifestFile"])
    result, logs = run_job(doc, env)
    assert result.exit_code == 0, logs
    model = json.loads(members(tmp_path / "out" / "job" / "output" / "model.tar.gz")["algo-1.json"])
    assert model["files"] == ["b.csv", "day1"]


def test_a_missing_channel_fails_the_job_with_a_client_error(
    tmp_path: Path, env: dict[str, str]
) -> None:
    script(tmp_path, "train.py", WRITE_MODEL)
    result, _ = run_job(job_doc(tmp_path, "train.py", channels=[f"train={tmp_path}/nope"]), env)
    assert result.record["TrainingJobStatus"] == "Failed"
    assert result.record["FailureReason"].startswith("ClientError: channel 'train': no such file")


def test_a_platform_failure_is_an_algorithm_error_in_the_job_record(
    tmp_path: Path, env: dict[str, str]
) -> None:
    # A host that cannot be started is this machine's fault (a PlatformError), and a job's
    # FailureReason starts ClientError or AlgorithmError only, as SageMaker's do.
    from sagedock.toolkit.local.backends import ProcessBackend

    script(tmp_path, "train.py", WRITE_MODEL)
    out = io.StringIO()
    job = TrainingJob(
        parse_training_job(job_doc(tmp_path, "train.py")),
        environ=env,
        options=TrainOptions(stream=out, progress_stream=io.StringIO()),
    )
    job.backend = ProcessBackend(python=str(tmp_path / "no-such-python"))
    result = job.run()
    assert result.record["TrainingJobStatus"] == "Failed"
    assert result.record["FailureReason"].startswith("AlgorithmError: cannot start algo-1: ")
    assert describe("job", env)["FailureReason"] == result.record["FailureReason"]


def test_a_job_name_cannot_be_reused_without_replace(tmp_path: Path, env: dict[str, str]) -> None:
    script(tmp_path, "train.py", WRITE_MODEL)
    first, _ = run_job(job_doc(tmp_path, "train.py"), env)
    assert first.exit_code == 0
    with pytest.raises(UserError, match="exists already"):
        run_job(job_doc(tmp_path, "train.py"), env)
    again, _ = run_job(job_doc(tmp_path, "train.py"), env, replace=True)
    assert again.exit_code == 0


def _cli(env: dict[str, str], *args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sagedock.toolkit", "local", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_cli_spec_file_then_describe(tmp_path: Path, env: dict[str, str]) -> None:
    script(tmp_path, "train.py", WRITE_MODEL)
    spec = {
        "TrainingJobName": "from-spec",
        "HyperParameters": {
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": '"src"',
        },
        "OutputDataConfig": {"S3OutputPath": "file://out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    (tmp_path / "job.json").write_text(json.dumps(spec))
    proc = _cli(env, "train", "--spec", "job.json", cwd=tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert (tmp_path / "out" / "from-spec" / "output" / "model.tar.gz").is_file()
    described = subprocess.run(
        [sys.executable, "-m", "sagedock.toolkit", "local", "describe", "from-spec"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(described.stdout)["TrainingJobStatus"] == "Completed"


def test_cli_bad_spec_exits_2_naming_the_field(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "job.json").write_text(json.dumps({"TrainingJobName": "x", "OutputDataConfig": {}}))
    proc = _cli(env, "train", "--spec", "job.json", cwd=tmp_path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "OutputDataConfig.S3OutputPath: is required" in out


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_stops_the_job_like_stop_training_job(
    tmp_path: Path, env: dict[str, str], signum: int, code: int
) -> None:
    script(tmp_path, "train.py", SLEEPER)
    proc = _cli(
        {**env, "SAVE_ON_TERM": "1"},
        "train",
        "--entry-point",
        "train.py",
        "--source-dir",
        "src",
        "--output",
        "out",
        "--job-name",
        "interrupted",
        "--env",
        "SAVE_ON_TERM=1",
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "sleeping" in line:
            break
    proc.send_signal(signum)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, rest
    record = describe("interrupted", env)
    assert (record["TrainingJobStatus"], record["SecondaryStatus"]) == ("Stopped", "Stopped")
    transitions = record["SecondaryStatusTransitions"]
    assert [t["Status"] for t in transitions[-4:]] == [
        "Training",
        "Stopping",
        "Uploading",
        "Stopped",
    ]
    message = "Training job stopped while training: a stop was requested"
    assert transitions[-3]["StatusMessage"] == transitions[-1]["StatusMessage"] == message
    assert "saved-on-sigterm" in members(
        tmp_path / "out" / "interrupted" / "output" / "model.tar.gz"
    )


def test_builtin_xgboost_trains_on_two_hosts_with_sharded_csv(
    tmp_path: Path, env: dict[str, str]
) -> None:
    import argparse

    import numpy as np

    rng = np.random.default_rng(3)
    train = tmp_path / "train"
    train.mkdir()
    for part in range(4):
        x = rng.normal(size=(200, 3))
        y = (x[:, 0] - x[:, 1] > 0).astype(int)
        np.savetxt(train / f"part-{part}.csv", np.column_stack([y, x]), delimiter=",", fmt="%.5g")
    doc = training_request(
        argparse.Namespace(
            algorithm="xgboost",
            channel=[f"train={train},content_type=text/csv,distribution=ShardedByS3Key"],
            hp=["objective=binary:logistic", "num_round=5", "eval_metric=error"],
            metric=["train:error=train-error:([0-9.]+)"],
            instance_count=2,
            output=str(tmp_path / "out"),
            job_name="xgb-2",
        )
    )
    result, logs = run_job(doc, env, stop_grace=5)
    assert result.exit_code == 0, logs
    assert "algo-2 | " in logs and "got rank 1" in logs
    assert "xgboost-model" in members(tmp_path / "out" / "xgb-2" / "output" / "model.tar.gz")
    (metric,) = result.record["FinalMetricDataList"]
    assert metric["MetricName"] == "train:error" and 0 <= metric["Value"] < 0.2


SEE_CHANNELS = """
import json, os
host = os.environ["SM_CURRENT_HOST"]
seen = {}
for channel in json.loads(os.environ["SM_CHANNELS"]):
    if channel == "stream":
        with open(os.environ["SM_INPUT_DIR"] + "/data/stream_0", "rb") as pipe:
            seen[channel] = pipe.read().decode().split()
    else:
        seen[channel] = sorted(os.listdir(os.environ["SM_CHANNEL_" + channel.upper()]))
with open(os.path.join(os.environ["SM_MODEL_DIR"], f"{host}.json"), "w") as f:
    json.dump(seen, f)
"""


def test_sharded_channels_limited_to_an_instance_group_are_dealt_among_its_hosts_only(
    tmp_path: Path, env: dict[str, str]
) -> None:
    script(tmp_path, "train.py", SEE_CHANNELS)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(8):
        (data / f"part-{i}.csv").write_text(f"{i}\n")
    doc = job_doc(
        tmp_path,
        "train.py",
        channels=[
            f"train={data},distribution=ShardedByS3Key",
            f"stream={data},distribution=ShardedByS3Key,mode=Pipe",
        ],
    )
    doc["ResourceConfig"] = {
        "InstanceGroups": [
            {"InstanceGroupName": "a", "InstanceType": "ml.m5.large", "InstanceCount": 2},
            {"InstanceGroupName": "b", "InstanceType": "ml.c5.xlarge", "InstanceCount": 2},
        ]
    }
    for channel in doc["InputDataConfig"]:
        channel["DataSource"]["S3DataSource"]["InstanceGroupNames"] = ["b"]
    result, logs = run_job(doc, env, stop_grace=5)

    assert result.exit_code == 0, logs
    files = members(tmp_path / "out" / "job" / "output" / "model.tar.gz")
    seen = {host: json.loads(files[f"{host}.json"]) for host in ("algo-3", "algo-4")}
    # group a's hosts get neither channel
    assert json.loads(files["algo-1.json"]) == json.loads(files["algo-2.json"]) == {}
    # group b's two hosts share every object between them, File and Pipe mode alike
    assert seen["algo-3"]["train"] == [f"part-{i}.csv" for i in (0, 2, 4, 6)]
    assert seen["algo-4"]["train"] == [f"part-{i}.csv" for i in (1, 3, 5, 7)]
    assert seen["algo-3"]["stream"] == ["0", "2", "4", "6"]
    assert seen["algo-4"]["stream"] == ["1", "3", "5", "7"]


class TerminalLike(io.StringIO):
    """A progress stream that looks like a terminal, so that staging redraws its bar after the
    first file; that first redraw runs *on_first_draw* (a stop arriving mid-staging)."""

    def __init__(self, on_first_draw: Any) -> None:
        super().__init__()
        self.on_first_draw = on_first_draw
        self.drawn = False

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not self.drawn:
            self.drawn = True
            self.on_first_draw()
        return super().write(text)


def _staging_job(
    tmp_path: Path, env: dict[str, str], on_first_draw: Any, **flags: Any
) -> tuple[TrainingJob, io.StringIO]:
    script(tmp_path, "train.py", SLEEPER)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(20):
        (data / f"part-{i:02d}.csv").write_text(f"{i}\n")
    doc = job_doc(tmp_path, "train.py", channels=[f"train={data}"], **flags)
    out = io.StringIO()
    job = TrainingJob(
        parse_training_job(doc),
        environ=env,
        options=TrainOptions(stream=out, progress_stream=TerminalLike(on_first_draw)),
    )
    return job, out


def test_a_stop_during_staging_ends_the_job_before_the_remaining_files_or_any_host(
    tmp_path: Path, env: dict[str, str]
) -> None:
    holder: dict[str, TrainingJob] = {}
    job, out = _staging_job(tmp_path, env, lambda: holder["job"].stop())
    holder["job"] = job
    result = job.run()

    record = result.record
    assert (record["TrainingJobStatus"], record["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert result.exit_code == 3
    last = record["SecondaryStatusTransitions"][-1]["StatusMessage"]
    assert last == "Training job stopped while downloading input data: a stop was requested"
    assert [t["Status"] for t in record["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Stopping",
        "Stopped",
    ]
    staged = list((result.job_dir / "hosts" / "algo-1" / "input" / "data" / "train").iterdir())
    assert len(staged) == 1, out.getvalue()
    assert "sleeping" not in out.getvalue()  # the host never started
    assert not (tmp_path / "out" / "job" / "output").exists()


def test_max_runtime_counts_from_the_job_start_so_slow_staging_uses_it_up(
    tmp_path: Path, env: dict[str, str]
) -> None:
    job, out = _staging_job(tmp_path, env, lambda: time.sleep(1.2), max_runtime=1)
    result = job.run()

    record = result.record
    assert (record["TrainingJobStatus"], record["SecondaryStatus"]) == (
        "Stopped",
        "MaxRuntimeExceeded",
    )
    assert record["SecondaryStatusTransitions"][-1]["StatusMessage"] == (
        "Training job stopped while downloading input data: MaxRuntimeInSeconds (1) was exceeded"
    )
    assert "sleeping" not in out.getvalue()
    staged = list((result.job_dir / "hosts" / "algo-1" / "input" / "data" / "train").iterdir())
    assert len(staged) == 1


def test_aws_endpoint_url_s3_alone_serves_data_code_and_outputs(
    tmp_path: Path, env: dict[str, str], s3_server: S3Server
) -> None:
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="data/a.csv", Body=b"1,2\n")
    code = io.BytesIO()
    with tarfile.open(fileobj=code, mode="w:gz") as tar:
        body = textwrap.dedent(WRITE_MODEL).encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    client.put_object(Bucket=bucket, Key="code/sourcedir.tar.gz", Body=code.getvalue())
    script(tmp_path, "train.py", "raise SystemExit('the local copy must not run')\n")
    doc = job_doc(
        tmp_path, "train.py", channels=[f"train=s3://{bucket}/data"], output=f"s3://{bucket}/out"
    )
    # the host fetches its code from S3 itself, through the same endpoint
    doc["HyperParameters"]["sagemaker_submit_directory"] = json.dumps(
        f"s3://{bucket}/code/sourcedir.tar.gz"
    )
    environ = {k: v for k, v in env.items() if not k.startswith("AWS_ENDPOINT_URL")}
    environ.update(s3_server.environ_s3_only())
    assert "AWS_ENDPOINT_URL" not in environ and "AWS_ENDPOINT_URL_S3" in environ
    result, logs = run_job(doc, environ)

    assert result.exit_code == 0, logs
    body = client.get_object(Bucket=bucket, Key="out/job/output/model.tar.gz")["Body"].read()
    assert json.loads(members(body)["algo-1.json"])["files"] == ["a.csv"]
