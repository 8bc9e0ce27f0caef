"""``sagedock local``: SageMaker's part played on this machine.

    sagedock local train      --spec job.json | flags      a training job (CreateTrainingJob)
    sagedock local serve      --spec model.json | --model  an endpoint (CreateModel+Endpoint)
    sagedock local invoke     --spec req.json | flags BODY InvokeEndpoint against it
    sagedock local transform  --spec job.json | flags      a batch transform (CreateTransformJob)
    sagedock local describe   NAME                         the record of a local job
    sagedock local stop       NAME                         stop an endpoint started with --detach

Cheap to import: the work happens in the modules ``run`` imports.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "run training jobs, endpoints and batch transforms locally from SageMaker API shapes"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="local_command", metavar="SUBCOMMAND")
    _configure_train(
        sub.add_parser("train", help="run a training job (CreateTrainingJob JSON or flags)")
    )
    _configure_serve(
        sub.add_parser("serve", help="serve a model (CreateModel JSON, model.tar.gz or dir)")
    )
    _configure_invoke(sub.add_parser("invoke", help="POST /invocations and print the answer"))
    _configure_transform(
        sub.add_parser("transform", help="run a batch transform (CreateTransformJob JSON or flags)")
    )
    describe = sub.add_parser("describe", help="print the record of a local job")
    describe.add_argument("job", metavar="JOB", help="job name, record file, or output location")
    stop = sub.add_parser("stop", help="stop an endpoint started with serve --detach")
    stop.add_argument("name", metavar="NAME", help="endpoint name")


def _common_job_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--spec",
        metavar="FILE",
        help="the request JSON of the SageMaker API call (a path or file:// URI)",
    )
    p.add_argument("--job-name", metavar="NAME", help="job name (default: generated)")
    p.add_argument("--env", action="append", metavar="K=V", help="container environment")
    p.add_argument("--docker", action="store_true", help="run the image with Docker")


def _configure_train(p: argparse.ArgumentParser) -> None:
    _common_job_flags(p)
    what = p.add_argument_group("what to run")
    what.add_argument(
        "--algorithm", metavar="NAME", help="a built-in algorithm (xgboost, linear-learner)"
    )
    what.add_argument("--image", metavar="IMAGE", help="training image (AlgorithmSpecification)")
    what.add_argument("--entry-point", metavar="SCRIPT", help="script-mode training script")
    what.add_argument("--source-dir", metavar="DIR", help="directory holding --entry-point")
    data = p.add_argument_group("data and outputs")
    data.add_argument(
        "--channel",
        action="append",
        metavar="NAME=URI[,k=v]",
        help="an input channel; options: content_type=, mode=File|Pipe|FastFile, "
        "distribution=FullyReplicated|ShardedByS3Key, type=S3Prefix|ManifestFile|"
        "AugmentedManifestFile, wrapper=RecordIO, compression=Gzip, attributes=a;b, seed=N",
    )
    data.add_argument("--input-mode", choices=("File", "Pipe", "FastFile"))
    data.add_argument("--output", metavar="URI", help="S3OutputPath: a path or s3:// (default .)")
    data.add_argument("--checkpoint", metavar="URI", help="CheckpointConfig.S3Uri")
    data.add_argument("--checkpoint-local-path", metavar="PATH")
    job = p.add_argument_group("job")
    job.add_argument("--hp", action="append", metavar="K=V", help="a hyperparameter")
    job.add_argument("--instance-count", type=int, metavar="N")
    job.add_argument("--instance-type", metavar="TYPE")
    job.add_argument("--max-runtime", type=int, metavar="S", help="MaxRuntimeInSeconds")
    job.add_argument("--metric", action="append", metavar="NAME=REGEX", help="a metric definition")
    local = p.add_argument_group("local platform")
    local.add_argument(
        "--stop-grace",
        type=float,
        default=120.0,
        metavar="S",
        help="seconds between SIGTERM and SIGKILL on a stop (SageMaker: 120)",
    )
    local.add_argument("--keep", action="store_true", help="keep the hosts' /opt/ml trees")
    local.add_argument(
        "--replace", action="store_true", help="reuse the name of an earlier finished job"
    )


def _configure_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--spec",
        metavar="FILE",
        help="CreateModel JSON, optionally with its endpoint (a path or file:// URI)",
    )
    p.add_argument("--model", metavar="URI", help="model.tar.gz (path, file://, s3://) or dir")
    p.add_argument("--image", metavar="IMAGE")
    p.add_argument("--algorithm", metavar="NAME", help="serve with a built-in algorithm's hooks")
    p.add_argument("--env", action="append", metavar="K=V")
    p.add_argument("--name", metavar="NAME", help="endpoint name (default: the model name)")
    p.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (0: any free one)")
    p.add_argument("--docker", action="store_true", help="run the image with Docker")
    p.add_argument("--detach", action="store_true", help="leave it running in the background")
    p.add_argument("--startup-timeout", type=float, metavar="S", help="wait this long for /ping")


def _configure_invoke(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--spec",
        metavar="FILE",
        help="InvokeEndpoint request JSON (Body, ContentType, Accept, CustomAttributes, "
        "TargetModel, TargetVariant, InferenceId, EndpointName; a path or file:// URI); "
        "flags and BODY override its fields",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--url", metavar="URL", help="endpoint URL (default http://127.0.0.1:8080)")
    where.add_argument("--port", type=int, metavar="N", help="endpoint port on 127.0.0.1")
    where.add_argument(
        "--endpoint-name", metavar="NAME", help="an endpoint started with serve --name NAME"
    )
    p.add_argument("--content-type", metavar="TYPE", help="default application/json")
    p.add_argument("--accept", metavar="TYPE")
    p.add_argument("--custom-attributes", metavar="TEXT")
    p.add_argument("--target-model", metavar="NAME", help="multi-model endpoints")
    p.add_argument("--target-variant", metavar="NAME")
    p.add_argument("--inference-id", metavar="ID")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S")
    p.add_argument(
        "body",
        nargs="?",
        metavar="BODY|@FILE|-",
        help="the request body, a file, or - (stdin); optional when --spec has a Body",
    )


def _configure_transform(p: argparse.ArgumentParser) -> None:
    _common_job_flags(p)
    model = p.add_argument_group("model")
    model.add_argument("--model", metavar="URI", help="model.tar.gz (path, file://, s3://) or dir")
    model.add_argument(
        "--model-spec", metavar="FILE", help="CreateModel JSON of the model (path or file://)"
    )
    model.add_argument("--image", metavar="IMAGE")
    model.add_argument("--algorithm", metavar="NAME")
    model.add_argument("--url", metavar="URL", help="use a server already running there")
    data = p.add_argument_group("input and output")
    data.add_argument("--input", metavar="URI", help="input prefix, directory or file")
    data.add_argument("--manifest", action="store_true", help="--input is a manifest file")
    data.add_argument("--output", metavar="URI", help="output prefix or directory")
    data.add_argument("--content-type", metavar="TYPE")
    data.add_argument("--split-type", choices=("None", "Line", "RecordIO", "TFRecord"))
    data.add_argument("--compression", choices=("None", "Gzip"))
    data.add_argument("--accept", metavar="TYPE")
    data.add_argument("--assemble-with", choices=("None", "Line"))
    batching = p.add_argument_group("batching")
    batching.add_argument("--strategy", choices=("SingleRecord", "MultiRecord"))
    batching.add_argument("--max-payload", type=int, metavar="MB", help="MaxPayloadInMB")
    batching.add_argument("--concurrency", type=int, metavar="N", help="MaxConcurrentTransforms")
    batching.add_argument("--timeout", type=int, metavar="S", help="InvocationsTimeoutInSeconds")
    batching.add_argument("--retries", type=int, metavar="N", help="InvocationsMaxRetries")
    dp = p.add_argument_group("data processing")
    dp.add_argument("--input-filter", metavar="JSONPATH")
    dp.add_argument("--output-filter", metavar="JSONPATH")
    dp.add_argument("--join-source", choices=("None", "Input"))


# -- run ------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    from sagedock.toolkit.errors import SagedockError

    command = getattr(args, "local_command", None)
    if command is None:
        print(
            "usage: sagedock local {train,serve,invoke,transform,describe,stop} ...",
            file=sys.stderr,
        )
        return 2
    handler = {
        "train": _run_train,
        "serve": _run_serve,
        "invoke": _run_invoke,
        "transform": _run_transform,
        "describe": _run_describe,
        "stop": _run_stop,
    }[command]
    try:
        return handler(args)
    except SagedockError as exc:
        print(f"error: {exc.describe()}", file=sys.stderr)
        return 2 if type(exc).__name__ == "SpecError" else 1


def _note_ignored(paths: tuple[str, ...]) -> None:
    """Say once, before a command runs, which of the request's fields have no effect here."""
    if paths:
        print(f"ignored by the local platform: {', '.join(paths)}", file=sys.stderr, flush=True)


def _run_train(args: argparse.Namespace) -> int:
    import signal

    from .spec.flags import training_request
    from .spec.training import parse_training_job
    from .training import TrainingJob, TrainOptions

    spec = parse_training_job(training_request(args))
    _note_ignored(spec.ignored)
    job = TrainingJob(
        spec,
        options=TrainOptions(
            docker=args.docker,
            stop_grace=args.stop_grace,
            keep_hosts=args.keep,
            replace=args.replace,
        ),
    )
    interrupts = {"count": 0, "signal": 0}

    def on_interrupt(signum: int, frame: Any) -> None:
        interrupts["count"] += 1
        if interrupts["count"] == 1:
            interrupts["signal"] = signum
            print(
                "\nstopping the job (SIGTERM to every host; Ctrl-C again to kill at once)",
                file=sys.stderr,
            )
            job.stop()
        else:
            job.stop(force=True)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    previous_term = signal.signal(signal.SIGTERM, on_interrupt)
    try:
        result = job.run()
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
    if interrupts["count"] and result.status == "Stopped":
        return 128 + interrupts["signal"]  # 130 for Ctrl-C, 143 for SIGTERM
    return result.exit_code


def _run_serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .serving import LocalEndpoint, ServeOptions
    from .spec.flags import model_request
    from .spec.model import parse_model

    if not args.spec and not args.model and not args.image and not args.algorithm:
        print("error: give --spec FILE or --model URI (model.tar.gz or directory)", file=sys.stderr)
        return 2
    model = parse_model(model_request(args, args.spec))
    _note_ignored(model.ignored)
    options = ServeOptions(
        docker=args.docker,
        port=args.port,
        startup_timeout=args.startup_timeout,
        algorithm=args.algorithm,
        image=args.image,
        detach=args.detach,
        stream=None if args.detach else sys.stdout,
    )
    endpoint = LocalEndpoint(model, name=args.name or model.endpoint_name, options=options)
    url = endpoint.start()
    print(f"endpoint {endpoint.name!r} is in service at {url}", flush=True)
    print(f"  try: sagedock local invoke --url {url} --content-type text/csv '1,2,3'", flush=True)
    if args.detach:
        print(f"  logs: {endpoint.log_file}\n  stop: sagedock local stop {endpoint.name}")
        return 0
    done = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        done.set()

    previous = signal.signal(signal.SIGINT, on_signal)
    previous_term = signal.signal(signal.SIGTERM, on_signal)
    try:
        while not done.wait(0.5):
            if not endpoint.alive():
                print("error: the model server exited", file=sys.stderr)
                return 1
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
        print("stopping the endpoint", file=sys.stderr)
        endpoint.stop()
    return 0


def _read_body(value: str) -> bytes:
    from pathlib import Path

    from sagedock.toolkit.errors import UserError

    if value == "-":
        return sys.stdin.buffer.read()
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {value[1:]}: {exc.strerror or exc}") from None
    return value.encode("utf-8")


def _run_invoke(args: argparse.Namespace) -> int:
    from . import http
    from .serving import endpoint_url
    from .spec.flags import invoke_request
    from .spec.invoke import parse_invoke_request
    from .spec.reader import SpecError

    request = parse_invoke_request(invoke_request(args))
    _note_ignored(request.ignored)
    if args.body is not None:
        body = _read_body(args.body)
    elif request.body is not None:
        body = request.body
    else:
        raise SpecError("no request body: give BODY, @FILE or -, or a Body in --spec")
    if args.url or args.port:
        url = args.url or f"http://127.0.0.1:{args.port}"
    elif request.endpoint_name:
        url = endpoint_url(request.endpoint_name)
    else:
        url = "http://127.0.0.1:8080"
    resp = http.invoke(
        url,
        body,
        content_type=request.content_type,
        accept=request.accept,
        headers=dict(request.headers),
        timeout=args.timeout,
    )
    print(f"HTTP {resp.status} {resp.content_type or ''}".rstrip(), file=sys.stderr)
    if not resp.ok:
        print(
            f"error: the endpoint answered {resp.status}: {resp.error_message()}", file=sys.stderr
        )
        return 1
    sys.stdout.buffer.write(resp.body)
    if resp.body and not resp.body.endswith(b"\n") and sys.stdout.isatty():
        sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()
    return 0


def _run_transform(args: argparse.Namespace) -> int:
    import signal

    from .serving import ServeOptions
    from .spec.flags import model_request, transform_request
    from .spec.model import parse_model
    from .spec.transform import parse_transform_job
    from .transform.stopping import StopRequest, TransformStopped
    from .transform_job import TransformOptions, run_transform_job

    spec = parse_transform_job(transform_request(args))
    _note_ignored(spec.ignored)
    model = None
    if args.url is None:
        if not (args.model or args.model_spec or args.image or args.algorithm):
            print(
                "error: give the model (--model URI, --model-spec FILE) or --url of a server",
                file=sys.stderr,
            )
            return 2
        model_args = argparse.Namespace(
            model=args.model, image=args.image, env=None, name=spec.model_name
        )
        model = parse_model(model_request(model_args, args.model_spec))
        _note_ignored(model.ignored)
    stop = StopRequest()
    signals = {"count": 0}

    def on_stop_signal(signum: int, frame: Any) -> None:
        # The first signal asks the job to stop where that leaves nothing half done (the job
        # checks between requests and outputs); the second stops it at once, wherever it is
        # (a long model load, upload or server shutdown); later ones must not cut short the
        # cleanup that the forced stop still does.
        signals["count"] += 1
        if signals["count"] == 1:
            name = signal.Signals(signum).name
            print(
                f"\nstopping the transform job ({name}; Ctrl-C again to stop at once)",
                file=sys.stderr,
            )
            stop.set(signum)
        elif signals["count"] == 2:
            print("stopping at once", file=sys.stderr)
            raise TransformStopped(stop.signum)
        else:
            print("still stopping (removing outputs, stopping the model server)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_stop_signal)
    previous_term = signal.signal(signal.SIGTERM, on_stop_signal)
    try:
        result = run_transform_job(
            spec,
            model=model,
            options=TransformOptions(
                url=args.url,
                serve=ServeOptions(
                    docker=args.docker, port=0, algorithm=args.algorithm, image=args.image
                ),
                stop=stop,
            ),
        )
    except TransformStopped as exc:  # forced before the job had a record to end
        return 128 + exc.signum
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
    return result.exit_code


def _run_describe(args: argparse.Namespace) -> int:
    import json

    from .training import describe

    print(json.dumps(describe(args.job), indent=2))
    return 0


def _run_stop(args: argparse.Namespace) -> int:
    from .serving import stop_endpoint

    record = stop_endpoint(args.name)
    print(f"endpoint {args.name!r} stopped (was at {record.get('Url')})")
    return 0
