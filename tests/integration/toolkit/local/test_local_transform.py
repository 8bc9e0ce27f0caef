"""`sagedock local transform` against a real HTTP model server (a small flask app in a thread)."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server

from sagedock.toolkit.errors import UserError
from sagedock.toolkit.formats.recordio import encode_record, iter_records
from sagedock.toolkit.local import describe, parse_transform_job
from sagedock.toolkit.local.transform import (
    StopRequest,
    TransformError,
    TransformStopped,
    run_transform,
)
from sagedock.toolkit.local.transform_job import TransformOptions, run_transform_job
from tests.fixtures.s3 import S3Server


@dataclass
class FakeModel:
    """A model server following the hosting contract; predictions are ``pred(<line>)``.

    A body with ``SLOW`` is answered after 2 s; one with ``HOLD`` is held until :attr:`release`
    is set, then answered 503 (which a transform retries).
    """

    url: str = ""
    execution_parameters: dict[str, Any] | None = None
    failures_before_success: int = 0
    requests: list[tuple[str | None, str | None, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    def held(self) -> int:
        """How many HOLD requests have arrived."""
        with self.lock:
            return sum(b"HOLD" in body for _, _, body in self.requests)

    def app(self) -> Flask:
        app = Flask("fake-model")

        @app.get("/ping")
        def ping() -> Response:
            return Response("", 200)

        @app.get("/execution-parameters")
        def params() -> Response:
            if self.execution_parameters is None:
                return Response("not found", 404)
            return Response(json.dumps(self.execution_parameters), 200, mimetype="application/json")

        @app.post("/invocations")
        def invocations() -> Response:
            body = request.get_data()
            with self.lock:
                self.requests.append((request.content_type, request.headers.get("Accept"), body))
                if self.failures_before_success > 0:
                    self.failures_before_success -= 1
                    return Response('{"message": "warming up"}', 503, mimetype="application/json")
            if b"SLOW" in body:
                time.sleep(2)
            if b"HOLD" in body:
                self.release.wait(120)
                return Response('{"message": "overloaded"}', 503, mimetype="application/json")
            if b"BAD" in body:
                return Response(
                    json.dumps({"message": "cannot parse a record: BAD"}),
                    400,
                    mimetype="application/json",
                )
            if request.content_type == "application/x-recordio":
                out = b"".join(b"pred(" + p + b")\n" for p in iter_records(_io(body)))
                return Response(out, 200, mimetype="text/csv")
            lines = body.decode().splitlines()
            if request.headers.get("Accept") == "application/json":
                payload = json.dumps({"predictions": [{"score": len(x)} for x in lines]})
                return Response(payload, 200, mimetype="application/json")
            preds = "".join(f"pred({x.replace(',', ';')})\n" for x in lines)
            return Response(preds, 200, mimetype="text/csv")

        return app


def _io(data: bytes) -> Any:
    import io

    return io.BytesIO(data)


@pytest.fixture
def model() -> Iterator[FakeModel]:
    fake = FakeModel()
    server = make_server("127.0.0.1", 0, fake.app(), threaded=True)
    fake.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        thread.join(timeout=10)


def spec_for(inputs: str, outputs: str, **overrides: Any) -> Any:
    doc: dict[str, Any] = {
        "TransformJobName": "t",
        "ModelName": "fake",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": inputs}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": outputs, "AssembleWith": "Line"},
    }
    for key, value in overrides.items():
        if key in ("TransformInput", "TransformOutput"):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return parse_transform_job(doc)


def write_inputs(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def test_one_out_file_per_input_keeping_the_relative_layout_and_record_order(
    tmp_path: Path, model: FakeModel
) -> None:
    inputs = write_inputs(
        tmp_path / "in",
        {"a.csv": "".join(f"a{i}\n" for i in range(50)), "sub/b.csv": "b0\nb1\n"},
    )
    spec = spec_for(
        str(inputs), str(tmp_path / "out"), MaxConcurrentTransforms=4, BatchStrategy="SingleRecord"
    )
    result = run_transform(spec, model.url)

    assert (tmp_path / "out" / "a.csv.out").read_text() == "".join(
        f"pred(a{i})\n" for i in range(50)
    )
    assert (tmp_path / "out" / "sub" / "b.csv.out").read_text() == "pred(b0)\npred(b1)\n"
    assert result.records == 52
    assert len(model.requests) == 52
    assert {(ct, acc) for ct, acc, _ in model.requests} == {("text/csv", None)}


def test_multi_record_batches_fill_up_to_max_payload(tmp_path: Path, model: FakeModel) -> None:
    line = "x" * 1000
    inputs = write_inputs(
        tmp_path / "in", {"big.csv": "".join(f"{i}{line}\n" for i in range(3000))}
    )
    spec = spec_for(
        str(inputs), str(tmp_path / "out"), BatchStrategy="MultiRecord", MaxPayloadInMB=1
    )
    run_transform(spec, model.url)
    sizes = [len(body) for _, _, body in model.requests]
    assert len(sizes) == 3  # ~3 MB of records in 1 MB mini-batches
    assert all(s <= 1024 * 1024 for s in sizes)
    out = (tmp_path / "out" / "big.csv.out").read_text().splitlines()
    assert out == [f"pred({i}{line})" for i in range(3000)]


def test_the_containers_multi_record_spelling_is_adopted_when_the_request_sets_none(
    tmp_path: Path, model: FakeModel
) -> None:
    model.execution_parameters = {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }
    inputs = write_inputs(tmp_path / "in", {"a.csv": "1\n2\n3\n"})
    result = run_transform(spec_for(str(inputs), str(tmp_path / "out")), model.url)
    assert result.settings.batch_strategy == "MultiRecord"
    assert result.settings.max_concurrent == 2
    assert [body for _, _, body in model.requests] == [b"1\n2\n3\n"]


def test_the_request_wins_over_the_container(tmp_path: Path, model: FakeModel) -> None:
    model.execution_parameters = {"BatchStrategy": "MULTI_RECORD"}
    inputs = write_inputs(tmp_path / "in", {"a.csv": "1\n2\n3\n"})
    spec = spec_for(str(inputs), str(tmp_path / "out"), BatchStrategy="SingleRecord")
    run_transform(spec, model.url)
    assert len(model.requests) == 3


def test_a_failure_names_the_file_and_records_and_publishes_nothing(
    tmp_path: Path, model: FakeModel
) -> None:
    inputs = write_inputs(
        tmp_path / "in",
        {"a.csv": "1\n2\n", "b.csv": "".join(f"{i}\n" for i in range(10)) + "BAD\n"},
    )
    spec = spec_for(str(inputs), str(tmp_path / "out"), BatchStrategy="SingleRecord")
    with pytest.raises(TransformError) as info:
        run_transform(spec, model.url)
    message = info.value.message
    assert (
        f"{inputs / 'b.csv'} record 11: the model answered 400: cannot parse a record: BAD"
        in message
    )
    assert not (tmp_path / "out").exists()  # not even a.csv.out, which had succeeded


def test_5xx_answers_are_retried(tmp_path: Path, model: FakeModel) -> None:
    model.failures_before_success = 2
    inputs = write_inputs(tmp_path / "in", {"a.csv": "1\n"})
    run_transform(spec_for(str(inputs), str(tmp_path / "out")), model.url)
    assert (tmp_path / "out" / "a.csv.out").read_text() == "pred(1)\n"
    assert len(model.requests) == 3


def test_retries_run_out_with_the_last_error(tmp_path: Path, model: FakeModel) -> None:
    model.failures_before_success = 10
    inputs = write_inputs(tmp_path / "in", {"a.csv": "1\n"})
    spec = spec_for(
        str(inputs), str(tmp_path / "out"), ModelClientConfig={"InvocationsMaxRetries": 1}
    )
    with pytest.raises(
        TransformError, match=r"failed after 2 attempt\(s\): the model answered 503: warming up"
    ):
        run_transform(spec, model.url)


def test_invocations_time_out_per_model_client_config(tmp_path: Path, model: FakeModel) -> None:
    inputs = write_inputs(tmp_path / "in", {"a.csv": "SLOW\n"})
    spec = spec_for(
        str(inputs),
        str(tmp_path / "out"),
        ModelClientConfig={"InvocationsTimeoutInSeconds": 1, "InvocationsMaxRetries": 0},
    )
    with pytest.raises(TransformError, match="timed out"):
        run_transform(spec, model.url)


def test_gzip_inputs_are_decompressed(tmp_path: Path, model: FakeModel) -> None:
    inputs = write_inputs(tmp_path / "in", {"a.csv.gz": gzip.compress(b"1\n2\n")})
    spec = spec_for(str(inputs), str(tmp_path / "out"), TransformInput={"CompressionType": "Gzip"})
    run_transform(spec, model.url)
    assert (tmp_path / "out" / "a.csv.gz.out").read_text() == "pred(1)\npred(2)\n"


def test_corrupt_gzip_names_the_file(tmp_path: Path, model: FakeModel) -> None:
    inputs = write_inputs(tmp_path / "in", {"a.csv.gz": b"not gzip at all"})
    spec = spec_for(str(inputs), str(tmp_path / "out"), TransformInput={"CompressionType": "Gzip"})
    with pytest.raises(TransformError, match=r"a\.csv\.gz: not valid gzip data"):
        run_transform(spec, model.url)


def test_recordio_records_are_sent_framed(tmp_path: Path, model: FakeModel) -> None:
    data = b"".join(encode_record(p) for p in (b"r1", b"r2", b"r3"))
    inputs = write_inputs(tmp_path / "in", {"data.rec": data})
    spec = spec_for(
        str(inputs),
        str(tmp_path / "out"),
        TransformInput={"SplitType": "RecordIO", "ContentType": "application/x-recordio"},
        BatchStrategy="MultiRecord",
    )
    run_transform(spec, model.url)
    assert [body for _, _, body in model.requests] == [data]
    assert (tmp_path / "out" / "data.rec.out").read_text() == "pred(r1)\npred(r2)\npred(r3)\n"


def test_an_oversize_record_is_an_error_naming_it(tmp_path: Path, model: FakeModel) -> None:
    inputs = write_inputs(tmp_path / "in", {"a.csv": "small\n" + "y" * (1024 * 1024 + 10) + "\n"})
    spec = spec_for(str(inputs), str(tmp_path / "out"), MaxPayloadInMB=1)
    with pytest.raises(
        TransformError, match=r"a\.csv: record 2 is 1048587 bytes, over MaxPayloadInMB 1"
    ):
        run_transform(spec, model.url)
    assert not (tmp_path / "out").exists()


def test_join_source_with_input_and_output_filters_on_csv(tmp_path: Path, model: FakeModel) -> None:
    inputs = write_inputs(tmp_path / "in", {"a.csv": "id1,1.5,2.5\nid2,3.5,4.5\n"})
    spec = spec_for(
        str(inputs),
        str(tmp_path / "out"),
        TransformOutput={"Accept": "text/csv"},
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
        BatchStrategy="MultiRecord",
    )
    run_transform(spec, model.url)
    assert [body for _, _, body in model.requests] == [b"1.5,2.5\n3.5,4.5\n"]
    assert (tmp_path / "out" / "a.csv.out").read_text() == "id1,pred(1.5;2.5)\nid2,pred(3.5;4.5)\n"


def test_json_lines_join_with_json_predictions(tmp_path: Path, model: FakeModel) -> None:
    inputs = write_inputs(
        tmp_path / "in", {"a.jsonl": '{"id": 1, "f": "abc"}\n{"id": 2, "f": "de"}\n'}
    )
    spec = spec_for(
        str(inputs),
        str(tmp_path / "out"),
        TransformInput={"ContentType": "application/jsonlines"},
        TransformOutput={"Accept": "application/json"},
        DataProcessing={
            "InputFilter": "$.f",
            "JoinSource": "Input",
            "OutputFilter": "$['id','SageMakerOutput']",
        },
    )
    run_transform(spec, model.url)
    lines = [json.loads(x) for x in (tmp_path / "out" / "a.jsonl.out").read_text().splitlines()]
    assert lines == [
        {"id": 1, "SageMakerOutput": {"score": 5}},
        {"id": 2, "SageMakerOutput": {"score": 4}},
    ]


def test_s3_inputs_and_outputs(tmp_path: Path, model: FakeModel, s3_env: S3Server) -> None:
    bucket = s3_env.new_bucket()
    client = s3_env.client()
    client.put_object(Bucket=bucket, Key="in/a.csv", Body=b"1\n2\n")
    client.put_object(Bucket=bucket, Key="in/deep/b.csv", Body=b"3\n")
    spec = spec_for(f"s3://{bucket}/in/", f"s3://{bucket}/out")
    run_transform(spec, model.url)
    read = lambda key: client.get_object(Bucket=bucket, Key=key)["Body"].read()  # noqa: E731
    assert read("out/a.csv.out") == b"pred(1)\npred(2)\n"
    assert read("out/deep/b.csv.out") == b"pred(3)\n"


def test_manifest_inputs(tmp_path: Path, model: FakeModel) -> None:
    store = write_inputs(tmp_path / "store", {"x/1.csv": "1\n", "2.csv": "2\n", "skip.csv": "s\n"})
    manifest = tmp_path / "in.manifest"
    manifest.write_text(json.dumps([{"prefix": f"{store}/"}, "x/1.csv", "2.csv"]))
    doc_spec = spec_for(str(manifest), str(tmp_path / "out"))
    spec = type(doc_spec)(**{**doc_spec.__dict__, "input_data_type": "ManifestFile"})
    run_transform(spec, model.url)
    assert sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.out")
    ) == [
        "2.csv.out",
        "x/1.csv.out",
    ]


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sizes=st.lists(st.integers(1, 500_000), min_size=1, max_size=12),
    max_payload=st.integers(1, 2),
    concurrency=st.integers(1, 4),
    strategy=st.sampled_from(["SingleRecord", "MultiRecord"]),
)
def test_end_to_end_every_record_once_in_order(
    tmp_path_factory: pytest.TempPathFactory,
    model: FakeModel,
    sizes: list[int],
    max_payload: int,
    concurrency: int,
    strategy: str,
) -> None:
    root = tmp_path_factory.mktemp("prop")
    records = [f"{i}:" + "z" * n for i, n in enumerate(sizes)]
    inputs = write_inputs(root / "in", {"d.csv": "".join(r + "\n" for r in records)})
    spec = spec_for(
        str(inputs),
        str(root / "out"),
        BatchStrategy=strategy,
        MaxPayloadInMB=max_payload,
        MaxConcurrentTransforms=concurrency,
    )
    run_transform(spec, model.url)
    out = (root / "out" / "d.csv.out").read_text().splitlines()
    assert out == [f"pred({r})" for r in records]


def test_transform_job_record_and_cli_against_a_running_server(
    tmp_path: Path, model: FakeModel
) -> None:
    inputs = write_inputs(tmp_path / "in", {"a.csv": "1\n2\n"})
    env = {**os.environ, "SAGEDOCK_LOCAL_DIR": str(tmp_path / "state")}
    done = subprocess.run(
        [
            sys.executable, "-m", "sagedock.toolkit", "local", "transform",
            "--url", model.url, "--input", str(inputs), "--output", str(tmp_path / "out"),
            "--content-type", "text/csv", "--split-type", "Line", "--assemble-with", "Line",
            "--job-name", "cli-transform",
        ],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "out" / "a.csv.out").read_text() == "pred(1)\npred(2)\n"
    record = json.loads(
        subprocess.run(
            [sys.executable, "-m", "sagedock.toolkit", "local", "describe", "cli-transform"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    assert record["TransformJobStatus"] == "Completed"
    assert record["BatchStrategy"] == "MultiRecord"


def test_a_failed_transform_job_records_its_reason(tmp_path: Path, model: FakeModel) -> None:
    inputs = write_inputs(tmp_path / "in", {"a.csv": "BAD\n"})
    spec = spec_for(str(inputs), str(tmp_path / "out"))
    env = {**os.environ, "SAGEDOCK_LOCAL_DIR": str(tmp_path / "state")}
    import io

    result = run_transform_job(
        spec, environ=env, options=TransformOptions(url=model.url, stream=io.StringIO())
    )
    assert result.exit_code == 1
    assert result.record["TransformJobStatus"] == "Failed"
    assert result.record["FailureReason"].startswith("ClientError: ")
    assert "record 1: the model answered 400" in result.record["FailureReason"]


def _outputs(client: Any, bucket: str, prefix: str = "out/") -> list[str]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_an_upload_failing_midway_withdraws_the_outputs_published_before_it(
    tmp_path: Path, model: FakeModel, s3_env: S3Server
) -> None:
    bucket = s3_env.new_bucket()
    client = s3_env.client()
    for key in ("in/a.csv", "in/b.csv", "in/c.csv"):
        client.put_object(Bucket=bucket, Key=key, Body=b"1\n2\n")
    work = tmp_path / "work"
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if line.strip().startswith("published") and len(_outputs(client, bucket)) == 2:
            # The third output's local file goes missing before its upload: the upload fails
            # with a real error after two outputs are visible in the bucket.
            (work / "out" / "2.out").unlink()

    spec = spec_for(f"s3://{bucket}/in/", f"s3://{bucket}/out")
    with pytest.raises(UserError, match=r"cannot upload .*2\.out: not a file"):
        run_transform(spec, model.url, work_dir=work, log=log)
    assert _outputs(client, bucket) == []
    assert any("removing the 2 output(s) published already" in line for line in lines), lines


def test_a_local_output_that_cannot_be_written_withdraws_the_ones_before_it(
    tmp_path: Path, model: FakeModel
) -> None:
    inputs = write_inputs(tmp_path / "in", {"a.csv": "1\n", "b/x.csv": "2\n"})
    out = tmp_path / "out"
    out.mkdir()
    (out / "b").write_text("a file where the b/ directory of the outputs would go")
    with pytest.raises(TransformError, match=r"cannot write .*b/x\.csv\.out"):
        run_transform(spec_for(str(inputs), str(out)), model.url)
    assert sorted(p.name for p in out.iterdir()) == ["b"]  # a.csv.out is gone again


def test_an_interrupt_while_publishing_withdraws_what_was_published(
    tmp_path: Path, model: FakeModel, s3_env: S3Server
) -> None:
    bucket = s3_env.new_bucket()
    client = s3_env.client()
    for key in ("in/a.csv", "in/b.csv"):
        client.put_object(Bucket=bucket, Key=key, Body=b"1\n")

    def log(line: str) -> None:
        if line.strip().startswith("published"):
            raise KeyboardInterrupt  # Ctrl-C right after the first upload

    spec = spec_for(f"s3://{bucket}/in/", f"s3://{bucket}/out")
    with pytest.raises(KeyboardInterrupt):
        run_transform(spec, model.url, log=log)
    assert _outputs(client, bucket) == []


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_ends_the_transform_job_stopped_with_nothing_published(
    tmp_path: Path, model: FakeModel, signum: int, code: int
) -> None:
    inputs = write_inputs(tmp_path / "in", {"a.csv": "1\n", "b.csv": "SLOW\n"})
    env = {**os.environ, "SAGEDOCK_LOCAL_DIR": str(tmp_path / "state")}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "sagedock.toolkit", "local", "transform",
            "--url", model.url, "--input", str(inputs), "--output", str(tmp_path / "out"),
            "--content-type", "text/csv", "--split-type", "Line", "--job-name", "stopped",
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not any(b"SLOW" in body for _, _, body in model.requests):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.05)
    started = time.monotonic()
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)

    assert proc.returncode == code, out
    assert time.monotonic() - started < 1.5, "the stop waited for the slow request"
    record = describe("stopped", env)
    assert record["TransformJobStatus"] == "Stopped"
    name = signal.Signals(signum).name
    assert record["FailureReason"] == (
        f"Stopped: {name} received before the job finished; no output was published"
    )
    assert not (tmp_path / "out").exists()


def _wait_for(condition: Any, proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        if proc is not None:
            assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.02)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_with_requests_in_flight_on_two_workers_waits_for_none_of_them(
    tmp_path: Path, model: FakeModel, signum: int, code: int
) -> None:
    # MaxConcurrentTransforms 2: two requests at once, both held by the model until after the
    # command has exited. Stopping must abandon them: not wait for their answers, nor retry.
    inputs = write_inputs(tmp_path / "in", {"a.csv": "HOLD 1\nHOLD 2\nHOLD 3\nHOLD 4\n5\n"})
    env = {**os.environ, "SAGEDOCK_LOCAL_DIR": str(tmp_path / "state")}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "sagedock.toolkit", "local", "transform",
            "--url", model.url, "--input", str(inputs), "--output", str(tmp_path / "out"),
            "--content-type", "text/csv", "--split-type", "Line", "--job-name", "stopped",
            "--strategy", "SingleRecord", "--concurrency", "2",
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _wait_for(lambda: model.held() == 2, proc)
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=30)  # the held requests are not answered meanwhile
    finally:
        proc.kill()

    assert proc.returncode == code, out
    assert model.held() == 2 and not model.release.is_set()
    record = describe("stopped", env)
    assert record["TransformJobStatus"] == "Stopped"
    assert record["MaxConcurrentTransforms"] == 2
    name = signal.Signals(signum).name
    assert record["FailureReason"] == (
        f"Stopped: {name} received before the job finished; no output was published"
    )
    assert "TransformEndTime" in record
    assert not (tmp_path / "out").exists()


def test_a_stopped_transform_sends_no_retry_of_the_requests_it_abandoned(
    tmp_path: Path, model: FakeModel
) -> None:
    inputs = write_inputs(tmp_path / "in", {"a.csv": "HOLD 1\nHOLD 2\n3\n"})
    spec = spec_for(
        str(inputs), str(tmp_path / "out"), BatchStrategy="SingleRecord", MaxConcurrentTransforms=2
    )
    stop = StopRequest()

    def stop_once_both_are_held() -> None:
        _wait_for(lambda: model.held() == 2)
        stop.set(signal.SIGTERM)

    helper = threading.Thread(target=stop_once_both_are_held)
    helper.start()
    with pytest.raises(TransformStopped) as info:
        run_transform(spec, model.url, stop=stop)
    helper.join()
    assert info.value.signum == signal.SIGTERM
    # Now the model answers the abandoned requests 503, which a running job would retry (3
    # retries each); the worker threads end without sending any.
    model.release.set()
    for thread in threading.enumerate():
        if thread.name.startswith("transform-"):
            thread.join(timeout=30)
            assert not thread.is_alive()
    assert model.held() == 2
    assert not (tmp_path / "out").exists()


class _StopAfterPublishing(io.StringIO):
    """A job's log stream that asks for a stop once *count* outputs were published."""

    def __init__(self, stop: StopRequest, count: int, then: Any = None) -> None:
        super().__init__()
        self.stop, self.count, self.then = stop, count, then

    def write(self, text: str) -> int:
        if text.strip().startswith("published"):
            self.count -= 1
            if self.count == 0:
                if self.then is not None:
                    self.then(text.split("published", 1)[1].strip())
                self.stop.set(signal.SIGTERM)
        return super().write(text)


def _job_stopped_after_publishing(
    tmp_path: Path, model: FakeModel, count: int, then: Any = None
) -> Any:
    inputs = write_inputs(tmp_path / "in", {"a.csv": "1\n", "b.csv": "2\n"})
    spec = spec_for(str(inputs), str(tmp_path / "out"))
    stop = StopRequest()
    env = {**os.environ, "SAGEDOCK_LOCAL_DIR": str(tmp_path / "state")}
    options = TransformOptions(
        url=model.url, stream=_StopAfterPublishing(stop, count, then), stop=stop
    )
    return run_transform_job(spec, environ=env, options=options)


def test_a_stop_between_two_published_outputs_withdraws_the_first(
    tmp_path: Path, model: FakeModel
) -> None:
    result = _job_stopped_after_publishing(tmp_path, model, count=1)
    assert result.record["TransformJobStatus"] == "Stopped"
    assert result.exit_code == 143
    assert result.record["FailureReason"] == (
        "Stopped: SIGTERM received before the job finished; no output was published"
    )
    assert not (tmp_path / "out").exists()


def test_a_stop_after_the_last_output_was_published_leaves_the_job_completed(
    tmp_path: Path, model: FakeModel
) -> None:
    result = _job_stopped_after_publishing(tmp_path, model, count=2)
    assert result.record["TransformJobStatus"] == "Completed"
    assert result.exit_code == 0
    assert "FailureReason" not in result.record
    assert (tmp_path / "out" / "a.csv.out").read_text() == "pred(1)\n"
    assert (tmp_path / "out" / "b.csv.out").read_text() == "pred(2)\n"


def test_a_stopped_jobs_reason_names_an_output_it_could_not_withdraw(
    tmp_path: Path, model: FakeModel
) -> None:
    def make_undeletable(dest: str) -> None:
        # Something else puts a directory where the output was: deleting it as a file fails.
        Path(dest).unlink()
        (Path(dest) / "kept").mkdir(parents=True)

    result = _job_stopped_after_publishing(tmp_path, model, count=1, then=make_undeletable)
    first = str(tmp_path / "out" / "a.csv.out")
    assert result.record["TransformJobStatus"] == "Stopped"
    assert result.record["FailureReason"] == (
        "Stopped: SIGTERM received before the job finished; 1 output(s) published before the "
        f"stop could not be removed again: {first}"
    )
    assert not (tmp_path / "out" / "b.csv.out").exists()
