"""``sagedock local transform``: a CreateTransformJob run on this machine.

Starts the model's server (or uses one already running at ``url``) with the environment
SageMaker gives a transform container, asks ``/execution-parameters``, transforms every input
file, publishes the ``.out`` files, and keeps a DescribeTransformJob-like record in the state
directory. A :class:`StopRequest` (what ``sagedock local transform``'s Ctrl-C and SIGTERM
set) stops the job at a safe point, so the record, the server's shutdown and the withdrawal of
published outputs always run to their end.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from sagedock.toolkit.errors import SagedockError, UserError

from . import http, state
from .record import now
from .serving import LocalEndpoint, ServeOptions
from .spec.model import ModelSpec
from .spec.schema import output_members
from .spec.transform import TransformJobSpec
from .training import arn
from .transform.runner import (
    TransformResult,
    resolve_settings,
    run_transform,
    transform_environment,
)
from .transform.stopping import StopRequest, TransformStopped

TRANSFORM_RECORD_NAME = "transform-job.json"


@dataclass(frozen=True)
class TransformOptions:
    url: str | None = None
    """Use the server already answering at this URL instead of starting one."""
    serve: ServeOptions | None = None
    replace: bool = True
    stream: TextIO | None = None
    stop: StopRequest | None = None
    """Set it (from a signal handler, another thread) to stop the job at the next safe point."""


@dataclass(frozen=True)
class TransformJobResult:
    record: dict[str, Any]
    result: TransformResult | None
    stop_signal: int | None = None
    """The signal that stopped the job, if one did."""

    @property
    def exit_code(self) -> int:
        """0 Completed, 1 Failed, 128 + the signal number when a signal stopped it (130 for
        Ctrl-C, 143 for SIGTERM), as ``sagedock local train`` exits."""
        status = self.record["TransformJobStatus"]
        if status == "Stopped":
            return 128 + (self.stop_signal or signal.SIGINT)
        return 0 if status == "Completed" else 1


def run_transform_job(
    spec: TransformJobSpec,
    *,
    model: ModelSpec | None = None,
    environ: Mapping[str, str] | None = None,
    options: TransformOptions | None = None,
) -> TransformJobResult:
    """Run *spec* against *model* (started locally) or ``options.url``.

    Failures end in a record with ``TransformJobStatus`` Failed and a ``FailureReason`` naming
    the file and records; ``options.stop``, or a KeyboardInterrupt (Ctrl-C without a stop
    request, or a forced stop), ends it Stopped, with a ``FailureReason`` saying what is left
    published (normally nothing). Either way the server this call started is stopped. A stop
    requested once the last output was published changes nothing: the job is Completed.
    """
    env = dict(os.environ if environ is None else environ)
    opts = options or TransformOptions()
    stop = opts.stop
    out = opts.stream or sys.stdout
    job_dir = state.entry_dir(state.TRANSFORM, spec.name, env)
    if (job_dir / TRANSFORM_RECORD_NAME).exists() and not opts.replace:
        raise UserError(f"a transform job named {spec.name!r} exists already")
    if opts.url is None and model is None:
        raise UserError("a transform job needs a model (--model / --model-spec) or --url")
    if job_dir.exists():
        shutil.rmtree(job_dir)
    job_dir.mkdir(parents=True)
    record: dict[str, Any] = {
        "TransformJobName": spec.name,
        "TransformJobArn": arn("transform-job", spec.name),
        "TransformJobStatus": "InProgress",
        "ModelName": spec.model_name,
        "CreationTime": now(),
        # The request's fields that DescribeTransformJob answers with, as SageMaker echoes them.
        **{k: v for k, v in spec.request.items() if k in output_members("DescribeTransformJob")},
    }
    record_path = job_dir / TRANSFORM_RECORD_NAME
    endpoint: LocalEndpoint | None = None
    result: TransformResult | None = None
    stop_signal: int | None = None
    try:
        state.write_json_atomic(record_path, record)
        url = opts.url
        if url is None:
            assert model is not None
            serve = opts.serve or ServeOptions(port=0)
            endpoint = LocalEndpoint(
                model,
                name=f"transform-{spec.name}",
                environ=env,
                options=serve,
                extra_env=transform_environment(spec),
                directory=job_dir / "endpoint",
            )
            out.write(f"{now()} starting the model server for {spec.name}\n")
            url = endpoint.start()
        if stop is not None:
            stop.check()
        record["TransformStartTime"] = now()
        settings = resolve_settings(spec, http.execution_parameters(url))
        record.update(
            BatchStrategy=settings.batch_strategy,
            MaxPayloadInMB=settings.max_payload_mb,
            MaxConcurrentTransforms=settings.max_concurrent,
        )
        state.write_json_atomic(record_path, record)

        def log(line: str) -> None:
            out.write(line + "\n")
            out.flush()

        result = run_transform(
            spec,
            url,
            environ=env,
            work_dir=job_dir / "work",
            log=log,
            settings=settings,
            stop=stop,
        )
        _completed(record, result)
    except SagedockError as exc:
        record["TransformJobStatus"] = "Failed"
        record["FailureReason"] = exc.failure_reason()[:1024]
    except KeyboardInterrupt as exc:
        if result is not None:  # a forced stop after every output was published
            _completed(record, result)
        else:
            stopped = exc if isinstance(exc, TransformStopped) else None
            stop_signal = stopped.signum if stopped else signal.SIGINT
            record["TransformJobStatus"] = "Stopped"
            record["FailureReason"] = _stopped_reason(
                stop_signal, stopped.still_published if stopped else ()
            )
    except Exception as exc:  # a bug of ours: still end the job with a record, then raise
        record["TransformJobStatus"] = "Failed"
        record["FailureReason"] = (
            f"AlgorithmError: sagedock local failed: {type(exc).__name__}: {exc}"[:1024]
        )
        raise
    finally:
        try:
            if endpoint is not None:
                endpoint.stop()
        finally:  # even when a forced stop cuts the server's shutdown short
            record["TransformEndTime"] = now()
            state.write_json_atomic(record_path, record)
            shutil.rmtree(job_dir / "work", ignore_errors=True)
    if record["TransformJobStatus"] in ("Failed", "Stopped"):
        out.write(f"{now()} {record['TransformJobStatus']} - {record['FailureReason']}\n")
    else:
        out.write(f"{now()} Completed - {record['RecordCount']} record(s) transformed\n")
    return TransformJobResult(record, result, stop_signal)


def _completed(record: dict[str, Any], result: TransformResult) -> None:
    record["TransformJobStatus"] = "Completed"
    record["TransformOutputs"] = [f.output for f in result.files]
    record["RecordCount"] = result.records


def _stopped_reason(signum: int, still_published: tuple[str, ...]) -> str:
    """The FailureReason of a stopped job, from what it left published."""
    reason = f"Stopped: {signal.Signals(signum).name} received before the job finished; "
    if not still_published:
        return reason + "no output was published"
    reason += (
        f"{len(still_published)} output(s) published before the stop could not be removed "
        f"again: {', '.join(still_published)}"
    )
    return reason[:1024]
