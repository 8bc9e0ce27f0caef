"""``sagedock local train``: one training job, from spec to published artifacts.

:class:`TrainingJob` plays SageMaker's part: it lays out a fresh ``/opt/ml`` tree per host,
stages channels (File mode copies, Pipe mode FIFO feeders), restores checkpoints, starts every
host (processes or containers), streams their logs, enforces ``MaxRuntimeInSeconds`` and stop
requests (SIGTERM, then SIGKILL after the grace period), and finally publishes
``<output>/<job>/output/model.tar.gz`` and ``output.tar.gz`` and the job record.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sagedock.toolkit.errors import SagedockError, UserError
from sagedock.toolkit.paths import MlPaths

from . import layout, locations, state
from .artifacts import publish_merged
from .backends import (
    DockerBackend,
    HostRun,
    ProcessBackend,
    container_aws_environment,
    inherited_environment,
)
from .checkpoints import CheckpointSync, restore
from .logs import LogPump, LogSink
from .manifests import AugmentedRecord, read_augmented_manifest
from .metrics import MetricCollector
from .pipes import PipeFeeder, PipeItem
from .progress import Progress
from .record import RECORD_NAME, JobRecord, now
from .spec.reader import SpecError
from .spec.training import InputChannel, MetricDefinition, TrainingJobSpec
from .staging import ObjectCache, channel_objects, share_of, stage_files

DEFAULT_STOP_GRACE = 120.0
SUBMIT_DIR_HP = "sagemaker_submit_directory"
PROGRAM_HP = "sagemaker_program"
IMAGE_PREFIX = "sagedock"

#: ``sagedock local train`` exit codes.
EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_STOPPED = 3
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class TrainOptions:
    """How to run a job locally (not part of the SageMaker request)."""

    docker: bool = False
    stop_grace: float = DEFAULT_STOP_GRACE
    """Seconds between SIGTERM and SIGKILL when a job is stopped (SageMaker: 120)."""
    keep_hosts: bool = False
    """Keep the hosts' /opt/ml trees after a successful job (they are always kept on failure)."""
    replace: bool = False
    """Reuse the name of an earlier job that is no longer running (SageMaker refuses)."""
    checkpoint_interval: float = 10.0
    stream: TextIO | None = None
    progress_stream: TextIO | None = None


@dataclass(frozen=True)
class TrainingResult:
    record: dict[str, Any]
    exit_code: int
    job_dir: Path

    @property
    def status(self) -> str:
        return str(self.record["TrainingJobStatus"])

    @property
    def model_artifacts(self) -> str | None:
        artifacts = self.record.get("ModelArtifacts") or {}
        value = artifacts.get("S3ModelArtifacts")
        return str(value) if value else None


def arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:local:000000000000:{kind}/{name.lower()}"


def _decode_hp(value: str) -> Any:
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError):
        return value


def is_script_mode(spec: TrainingJobSpec) -> bool:
    return PROGRAM_HP in spec.hyperparameters or "SAGEMAKER_PROGRAM" in spec.environment


def registered_algorithms() -> list[str]:
    """Names in the ``sagedock.algorithms`` entry-point group."""
    from importlib.metadata import entry_points

    return sorted({ep.name for ep in entry_points(group="sagedock.algorithms")})


def _name_words(name: str) -> list[str]:
    return [word for word in re.split(r"[-_.]", name.lower()) if word]


def algorithm_for_image(image: str) -> str | None:
    """The built-in algorithm an image name stands for, if any: a catalog image that selects
    one (``sagedock/xgboost:latest``, ``sagedock/linear-learner:latest``), or any repository
    whose name holds a registered algorithm's words in a row, whatever the registry: AWS's own
    ``<account>.dkr.ecr.<region>.amazonaws.com/linear-learner:1`` (what the SDK's
    ``image_uris.retrieve("linear-learner", region)`` gives) or ``.../sagemaker-xgboost:1.7-1``."""
    repo = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    words = _name_words(repo)
    try:
        from sagedock.toolkit.images.catalog import CATALOG

        spec = CATALOG.get(repo)
        if spec is not None:
            env = dict(spec.env)
            if "SAGEDOCK_ALGORITHM" in env:
                return env["SAGEDOCK_ALGORITHM"]
    except ImportError:  # pragma: no cover - the catalog ships with the toolkit
        pass
    for name in registered_algorithms():
        wanted = _name_words(name)
        if wanted and any(
            words[start : start + len(wanted)] == wanted
            for start in range(len(words) - len(wanted) + 1)
        ):
            return name
    return None


def job_algorithm(spec: TrainingJobSpec) -> str | None:
    """The built-in algorithm *spec* runs, on either backend: the job's ``SAGEDOCK_ALGORITHM``
    environment, else its AlgorithmName, else what its TrainingImage stands for; None in
    script mode."""
    if is_script_mode(spec):
        return None
    if "SAGEDOCK_ALGORITHM" in spec.environment:
        return spec.environment["SAGEDOCK_ALGORITHM"] or None
    if spec.algorithm_name:
        return spec.algorithm_name
    if spec.image:
        return algorithm_for_image(spec.image)
    return None


def algorithm_metric_definitions(name: str) -> tuple[MetricDefinition, ...]:
    """The MetricDefinitions the built-in algorithm *name* publishes: ``metric_definitions()``
    of its package's ``metrics`` module (``sagedock.containers.<algorithm>.metrics``), found
    through the ``sagedock.algorithms`` entry point. Empty when *name* is not installed or
    publishes none (the module imports numpy at most, never the algorithm's framework)."""
    import importlib
    from importlib.metadata import entry_points

    found = {ep.name: ep.value for ep in entry_points(group="sagedock.algorithms")}
    if name not in found:
        return ()
    module_name = f"{found[name].partition(':')[0]}.metrics"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return ()
    definitions = getattr(module, "metric_definitions", None)
    if not callable(definitions):
        return ()
    return tuple(MetricDefinition(d.name, d.regex) for d in definitions())


def job_metric_definitions(spec: TrainingJobSpec) -> tuple[MetricDefinition, ...]:
    """What the job's FinalMetricDataList is read with: the job's own MetricDefinitions, else
    those of the built-in algorithm it runs (SageMaker publishes a built-in algorithm's
    metrics without the job listing them)."""
    if spec.metric_definitions:
        return spec.metric_definitions
    algorithm = job_algorithm(spec)
    return algorithm_metric_definitions(algorithm) if algorithm else ()


def process_algorithm(spec: TrainingJobSpec) -> str | None:
    """What ``SAGEDOCK_ALGORITHM`` a process-backend host needs (None in script mode or when
    the job's Environment sets it).

    :raises SpecError: when the job names nothing a process can run.
    """
    if is_script_mode(spec) or "SAGEDOCK_ALGORITHM" in spec.environment:
        return None
    if spec.algorithm_name:
        return spec.algorithm_name
    if spec.image:
        found = algorithm_for_image(spec.image)
        if found:
            return found
        raise SpecError(
            f"AlgorithmSpecification.TrainingImage: the process backend cannot run the image "
            f"{spec.image!r}; pass --docker to run it, or name a built-in algorithm "
            "(AlgorithmName / --algorithm)"
        )
    raise SpecError(
        "AlgorithmSpecification: nothing to run; give an AlgorithmName (--algorithm), a "
        "training script (--entry-point, i.e. the sagemaker_program hyperparameter) or a "
        "TrainingImage with --docker"
    )


def docker_image(spec: TrainingJobSpec) -> str:
    """The image the docker backend runs: the TrainingImage, else sagedock's image of the
    algorithm, else sagedock's base image for script mode."""
    if spec.image:
        return spec.image
    if spec.algorithm_name:
        return f"{IMAGE_PREFIX}/{spec.algorithm_name}:latest"
    if is_script_mode(spec):
        return f"{IMAGE_PREFIX}/base:latest"
    raise SpecError(
        "AlgorithmSpecification.TrainingImage: --docker needs an image (--image), an "
        "algorithm (--algorithm) or a training script (--entry-point)"
    )


def free_ports(count: int) -> int:
    """The first of *count* consecutive TCP ports that are free on 127.0.0.1 right now."""
    import socket

    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + count > 65535:
            continue
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise OSError(f"no {count} consecutive free ports found")


def _exit_description(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"


@dataclass
class _Host:
    name: str
    index: int
    dir: Path
    paths: MlPaths
    checkpoint_dir: Path
    run: HostRun | None = None
    pump: LogPump | None = None
    exit_code: int | None = None
    feeders: list[PipeFeeder] = field(default_factory=list)


class TrainingJob:
    """One local training job. Construct, then :meth:`run` (blocking); :meth:`stop` may be
    called from another thread or a signal handler."""

    def __init__(
        self,
        spec: TrainingJobSpec,
        *,
        environ: Mapping[str, str] | None = None,
        options: TrainOptions | None = None,
    ) -> None:
        self.spec = spec
        self.environ = dict(os.environ if environ is None else environ)
        self.options = options or TrainOptions()
        self.backend: ProcessBackend | DockerBackend = (
            DockerBackend() if self.options.docker else ProcessBackend()
        )
        self.sink = LogSink(self.options.stream or sys.stdout)
        self.metrics = MetricCollector(job_metric_definitions(spec))
        self.job_dir = state.entry_dir(state.TRAINING, spec.name, self.environ)
        self.arn = arn("training-job", spec.name)
        self._stop_reason: str | None = None
        self._stop_lock = threading.Lock()
        self._force = threading.Event()
        self._feeder_error: str | None = None
        self.hosts: list[_Host] = []
        self.record: JobRecord | None = None
        self._hosts_started = False
        self._final_message: str | None = None
        # MaxRuntimeInSeconds counts from the job's start, data staging included (set in run()).
        self._deadline = float("inf")

    # -- control --------------------------------------------------------------------------
    def stop(self, *, force: bool = False) -> None:
        """Ask the job to stop like StopTrainingJob (SIGTERM, SIGKILL after the grace
        period); *force* skips the grace period."""
        with self._stop_lock:
            if self._stop_reason is None:
                self._stop_reason = "Stopped"
        if force:
            self._force.set()

    def _say(self, text: str) -> None:
        self.sink.message(text)

    def _stop_cause(self) -> str | None:
        """Why the job must stop now: ``Stopped`` (a stop was asked for),
        ``MaxRuntimeExceeded``, or None to go on."""
        if self._stop_reason is not None:
            return "Stopped"
        if time.monotonic() >= self._deadline:
            return "MaxRuntimeExceeded"
        return None

    def _enter_stopping(self, cause: str, during: str) -> str:
        """Put the job in status Stopping for *cause* (``Stopped``: a stop was requested, or
        ``MaxRuntimeExceeded``), met while *during*; returns the StatusMessage, which the
        job's last status carries too."""
        assert self.record is not None
        why = {
            "Stopped": "a stop was requested",
            "MaxRuntimeExceeded": f"MaxRuntimeInSeconds ({self.spec.max_runtime}) was exceeded",
        }[cause]
        self._final_message = message = f"Training job stopped while {during}: {why}"
        self.record.update(TrainingJobStatus="Stopping")
        self.record.transition("Stopping", message)
        return message

    # -- the run --------------------------------------------------------------------------
    def validate(self) -> None:
        """Everything that can be refused before a job exists (CreateTrainingJob's checks)."""
        if self.options.docker:
            docker_image(self.spec)
            if self.spec.checkpoint_uri and not self.spec.checkpoint_local_path.startswith("/"):
                raise SpecError("CheckpointConfig.LocalPath: must be absolute")
        else:
            process_algorithm(self.spec)
            if self.spec.entrypoint or self.spec.arguments:
                raise SpecError(
                    "AlgorithmSpecification.ContainerEntrypoint: container entry points and "
                    "arguments need the docker backend (--docker)"
                )
        record_path = self.job_dir / RECORD_NAME
        if record_path.exists():
            try:
                old = json.loads(record_path.read_text())
            except (OSError, json.JSONDecodeError):
                old = {}
            pid = (old.get("LocalRun") or {}).get("Pid")
            running = old.get("TrainingJobStatus") in ("InProgress", "Stopping") and (
                isinstance(pid, int) and state.pid_alive(pid)
            )
            if running:
                raise UserError(f"training job {self.spec.name!r} is running already")
            if not self.options.replace:
                raise UserError(
                    f"a training job named {self.spec.name!r} exists already (in "
                    f"{self.job_dir}); give the job a new name (--job-name) or pass --replace"
                )

    def run(self) -> TrainingResult:
        """Run the job to its end; returns the final record and the command's exit code.

        Validation problems raise :class:`SpecError` before anything is created; everything
        after that ends in a record with status Completed, Failed or Stopped.
        """
        self.validate()
        self._deadline = time.monotonic() + self.spec.max_runtime
        if self.job_dir.exists():
            shutil.rmtree(self.job_dir)
        self.job_dir.mkdir(parents=True)
        request = dict(self.spec.request)
        self.record = record = JobRecord.create(
            request, name=self.spec.name, arn=self.arn, path=self.job_dir / RECORD_NAME
        )
        record.update(
            LocalRun={
                "Backend": self.backend.name,
                "Pid": os.getpid(),
                "JobDir": str(self.job_dir),
                "Hosts": list(self.spec.hosts),
            }
        )
        self._say(
            f"{now()} Starting - {self.spec.name}: {self.spec.instance_count} host(s), "
            f"{self.backend.name} backend"
        )
        status, secondary, reason = "Failed", "Failed", None
        try:
            self._prepare_hosts()
            record.transition("Downloading")
            self._say(f"{now()} Downloading - Downloading input data")
            self._stage()
            cause = self._stop_cause()
            if cause is not None:  # stopped while data was being staged: no host ever ran
                status, secondary, reason = "Stopped", cause, None
                message = self._enter_stopping(cause, "downloading input data")
                self._say(f"{now()} Stopping - {message}")
            else:
                record.transition("Training")
                self._say(f"{now()} Training - Training in progress")
                status, secondary, reason = self._train()
            if self._hosts_started:
                # output.tar.gz is published for failed jobs too (it often holds the
                # evidence); model.tar.gz only for jobs that completed or were stopped.
                record.transition("Uploading")
                self._say(f"{now()} Uploading - Uploading generated training model")
                self._upload(with_model=status != "Failed")
        except SagedockError as exc:
            status, secondary, reason = "Failed", "Failed", exc.failure_reason()
        except Exception as exc:  # a bug of ours: still end the job with a record, then raise
            status, secondary = "Failed", "Failed"
            reason = f"AlgorithmError: sagedock local failed: {type(exc).__name__}: {exc}"
            raise
        finally:
            self._teardown_hosts()
            if self.metrics.definitions:
                record.update(FinalMetricDataList=self.metrics.final())
            record.finish(status, secondary, failure_reason=reason, message=self._final_message)
            self._publish_record(record)
            self._cleanup(status)
        final = record.to_dict()
        self._say(
            f"{now()} {secondary} - {final['SecondaryStatusTransitions'][-1]['StatusMessage']}"
        )
        if reason:
            self._say(f"FailureReason: {reason}")
        if final.get("ModelArtifacts"):
            self._say(f"ModelArtifacts: {final['ModelArtifacts']['S3ModelArtifacts']}")
        code = {
            "Completed": EXIT_COMPLETED,
            "Failed": EXIT_FAILED,
        }.get(status, EXIT_STOPPED)
        return TrainingResult(final, code, self.job_dir)

    # -- steps ----------------------------------------------------------------------------
    def _host_checkpoint_dir(self, host_dir: Path) -> tuple[Path, str]:
        """(real directory, path the host sees) of the checkpoint LocalPath."""
        local = self.spec.checkpoint_local_path
        base = self.backend.container_base(host_dir)
        if local == "/opt/ml" or local.startswith("/opt/ml/"):
            rel = local[len("/opt/ml") :].lstrip("/")
            real = host_dir / rel
            return real, (str(real) if base != "/opt/ml" else local)
        real = host_dir / "_checkpoints"
        return real, (str(real) if base != "/opt/ml" else local)

    def _prepare_hosts(self) -> None:
        spec = self.spec
        hosts_root = self.job_dir / "hosts"
        script = is_script_mode(spec)
        for index, host in enumerate(spec.hosts):
            host_dir = hosts_root / host
            paths = MlPaths(host_dir)
            checkpoint_real, checkpoint_seen = self._host_checkpoint_dir(host_dir)
            hyperparameters = dict(spec.hyperparameters)
            if script and SUBMIT_DIR_HP in hyperparameters:
                hyperparameters[SUBMIT_DIR_HP] = self._stage_code(
                    hyperparameters[SUBMIT_DIR_HP], paths
                )
            layout.write_host_tree(
                paths,
                hyperparameters=hyperparameters,
                resource=layout.resource_config(
                    spec, host, network_interface=self.backend.network_interface
                ),
                input_data=layout.input_data_config(spec, host),
                checkpoint=layout.checkpoint_config(spec, checkpoint_seen),
            )
            checkpoint_real.mkdir(parents=True, exist_ok=True)
            self.hosts.append(_Host(host, index, host_dir, paths, checkpoint_real))

    def _stage_code(self, value: str, paths: MlPaths) -> str:
        """Copy a local ``sagemaker_submit_directory`` into the host's code dir and point the
        hyperparameter at it (S3 locations are left for ``train`` to fetch)."""
        from sagedock.toolkit.sources import fetch_code

        decoded = _decode_hp(value)
        if not isinstance(decoded, str) or locations.is_s3(decoded):
            return value
        try:
            local = locations.normalize(decoded)
        except UserError as exc:
            raise SpecError(f"HyperParameters.{SUBMIT_DIR_HP}: {exc.message}") from None
        if not Path(local).exists():
            raise SpecError(f"HyperParameters.{SUBMIT_DIR_HP}: {local} does not exist")
        fetch_code(local, paths.code_dir)
        seen = self.backend.container_base(paths.base)
        return json.dumps(str(Path(seen) / "code"))

    def _stage(self) -> None:
        """Copy File-mode channels into the hosts' trees, download what Pipe mode streams,
        restore checkpoints and prepare the pipes; returns early, between two files, when the
        job must stop (:meth:`_stop_cause`)."""
        spec = self.spec
        cache = ObjectCache(self.job_dir / "cache", self.environ)
        file_plan: list[tuple[_Host, InputChannel, list[Any]]] = []
        prefetch: list[Any] = []
        pipe_plan: list[tuple[InputChannel, list[Any]]] = []
        for channel in spec.channels:
            if channel.data_type == "AugmentedManifestFile":
                units: list[Any] = read_augmented_manifest(
                    channel.location, channel.attribute_names, environ=self.environ
                )
                prefetch += [r for line in units for r in line if r.location]
                pipe_plan.append((channel, units))
                continue
            objects = channel_objects(channel, environ=self.environ)
            if channel.input_mode == "Pipe":
                prefetch += objects
                pipe_plan.append((channel, objects))
            else:
                receivers = spec.hosts_receiving(channel)
                for host in self.hosts:
                    if host.name in receivers:
                        share = share_of(objects, channel, receivers, host.name)
                        file_plan.append((host, channel, share))
        total = sum(o.size or 0 for _, _, share in file_plan for o in share)
        total += sum(getattr(o, "size", None) or 0 for o in prefetch)
        progress = Progress(
            "Downloading input data", total, self.options.progress_stream or sys.stderr
        )

        def must_stop() -> bool:
            return self._stop_cause() is not None

        try:
            for host, channel, share in file_plan:
                stage_files(
                    share, host.paths.channel_dir(channel.name), cache, progress, stop=must_stop
                )
                if must_stop():
                    return
            for item in prefetch:
                if must_stop():
                    return
                cache.local_path(item.location)
                progress.advance(getattr(item, "size", None) or 0)
        finally:
            progress.close()
        for host in self.hosts:
            if must_stop():
                return
            self._restore_checkpoints(host)
            for channel, units in pipe_plan:
                if host.name in spec.hosts_receiving(channel):
                    feeder = self._feeder(host, channel, units, cache)
                    feeder.prepare()
                    host.feeders.append(feeder)

    def _feeder(
        self, host: _Host, channel: InputChannel, units: list[Any], cache: ObjectCache
    ) -> PipeFeeder:
        receivers = self.spec.hosts_receiving(channel)

        def items(epoch: int) -> list[PipeItem]:
            share = share_of(units, channel, receivers, host.name, epoch)
            out: list[PipeItem] = []
            for unit in share:
                if isinstance(unit, list):  # an augmented-manifest line
                    for rec in unit:
                        assert isinstance(rec, AugmentedRecord)
                        if rec.location:
                            out.append(
                                PipeItem(path=cache.local_path(rec.location), name=rec.location)
                            )
                        else:
                            out.append(PipeItem(data=rec.data, name=f"line {rec.line}"))
                else:
                    out.append(PipeItem(path=cache.local_path(unit.location), name=unit.relative))
            return out

        return PipeFeeder(
            host.paths.input_data_dir,
            channel.name,
            items,
            gzip_compressed=channel.compression == "Gzip",
            recordio=channel.record_wrapper == "RecordIO",
            on_error=self._on_feeder_error,
        )

    def _on_feeder_error(self, message: str) -> None:
        if self._feeder_error is None:
            self._feeder_error = message

    def _restore_checkpoints(self, host: _Host) -> None:
        if self.spec.checkpoint_uri is None:
            return
        count = restore(self.spec.checkpoint_uri, host.checkpoint_dir, environ=self.environ)
        if count:
            self._say(
                f"{host.name}: restored {count} checkpoint file(s) from {self.spec.checkpoint_uri}"
            )

    def _host_env(self) -> dict[str, str]:
        spec = self.spec
        if isinstance(self.backend, ProcessBackend):
            env = inherited_environment(self.environ)
            env["SAGEDOCK_HOST_ADDRESSES"] = json.dumps({h: "127.0.0.1" for h in spec.hosts})
            if len(spec.hosts) > 1:
                # Every "host" shares this machine's ports: fixed ones (7777 for torch, 9099
                # for the XGBoost tracker) would clash with other jobs, so each job gets free
                # ones unless its Environment names them.
                env["SAGEDOCK_MASTER_PORT"] = str(free_ports(1))
                env["SAGEDOCK_XGBOOST_TRACKER_PORT"] = str(free_ports(2))
            algorithm = process_algorithm(spec)
            if algorithm:
                env["SAGEDOCK_ALGORITHM"] = algorithm
        else:
            # A container gets only the job's environment, plus AWS credentials, region and
            # S3 endpoint when we have them (an endpoint on this machine's loopback rewritten
            # to the address containers reach it at).
            env = container_aws_environment(self.environ, warn=self._say)
            if spec.algorithm_name and not spec.image:
                env["SAGEDOCK_ALGORITHM"] = spec.algorithm_name
        env.update(spec.environment)
        env["TRAINING_JOB_NAME"] = spec.name
        env["TRAINING_JOB_ARN"] = self.arn
        return env

    def _train(self) -> tuple[str, str, str | None]:
        spec = self.spec
        env = self._host_env()
        self.backend.prepare(spec.name, spec.hosts)
        image = docker_image(spec) if isinstance(self.backend, DockerBackend) else None
        logs_dir = self.job_dir / "logs"
        self._hosts_started = True
        for host in self.hosts:
            mounts: dict[str, str] = {}
            if (
                isinstance(self.backend, DockerBackend)
                and not (spec.checkpoint_local_path.startswith("/opt/ml/"))
                and spec.checkpoint_uri
            ):
                mounts[str(host.checkpoint_dir)] = spec.checkpoint_local_path
            host.run = self.backend.start(
                host.name,
                host.dir,
                env,
                image=image,
                entrypoint=spec.entrypoint,
                arguments=spec.arguments,
                extra_mounts=mounts,
            )
            host.pump = LogPump(
                host.name,
                host.run.stdout,
                self.sink,
                logs_dir / f"{host.name}.log",
                on_line=self.metrics.feed,
            )
            host.pump.start()
            for feeder in host.feeders:
                feeder.start()
        sync = None
        if spec.checkpoint_uri:
            sync = CheckpointSync(
                [h.checkpoint_dir for h in self.hosts],
                spec.checkpoint_uri,
                environ=self.environ,
                interval=self.options.checkpoint_interval,
                on_error=self._say,
            )
            sync.start()
        try:
            outcome = self._supervise()
        finally:
            for host in self.hosts:
                for feeder in host.feeders:
                    feeder.stop()
                if host.pump is not None:
                    host.pump.join(timeout=10)
            if sync is not None:
                try:
                    sync.final_sync()
                except SagedockError as exc:
                    self._say(f"checkpoint sync failed: {exc.message}")
        return outcome

    def _supervise(self) -> tuple[str, str, str | None]:
        failure: tuple[_Host, int] | None = None
        stop_secondary: str | None = None
        while True:
            running = False
            for host in self.hosts:
                assert host.run is not None
                if host.exit_code is None:
                    host.exit_code = host.run.poll()
                if host.exit_code is None:
                    running = True
                elif host.exit_code != 0 and failure is None and stop_secondary is None:
                    failure = (host, host.exit_code)
            if not running:
                break
            if failure is not None or self._feeder_error:
                break
            stop_secondary = self._stop_cause()
            if stop_secondary is not None:
                break
            time.sleep(0.1)

        if any(h.exit_code is None for h in self.hosts):
            why = "another host failed"
            if stop_secondary is not None:
                why = self._enter_stopping(stop_secondary, "training")
            self._say(
                f"{now()} Stopping - {why}; SIGTERM to every host, SIGKILL after "
                f"{self.options.stop_grace:g} s"
            )
            self._stop_hosts()

        if stop_secondary is not None:
            return "Stopped", stop_secondary, None
        if self._feeder_error:
            return "Failed", "Failed", f"ClientError: {self._feeder_error}"
        if failure is not None:
            host, code = failure
            return "Failed", "Failed", self._failure_reason(host, code)
        return "Completed", "Completed", None

    def _stop_hosts(self) -> None:
        for host in self.hosts:
            if host.exit_code is None and host.run is not None:
                host.run.terminate()
        deadline = time.monotonic() + self.options.stop_grace
        while time.monotonic() < deadline and not self._force.is_set():
            for host in self.hosts:
                if host.exit_code is None and host.run is not None:
                    host.exit_code = host.run.poll()
            if all(h.exit_code is not None for h in self.hosts):
                return
            time.sleep(0.1)
        for host in self.hosts:
            if host.exit_code is None and host.run is not None:
                self._say(f"{host.name}: still running after the grace period: SIGKILL")
                host.run.kill()
        for host in self.hosts:
            if host.run is not None:
                for _ in range(300):
                    host.exit_code = host.run.poll()
                    if host.exit_code is not None:
                        break
                    time.sleep(0.1)

    def _failure_reason(self, host: _Host, code: int) -> str:
        failure_file = host.paths.failure_file
        text = ""
        if failure_file.is_file():
            text = failure_file.read_text(encoding="utf-8", errors="replace").strip()
        if not text:
            return (
                f"AlgorithmError: {host.name} {_exit_description(code)} and wrote no failure "
                f"file; see the job logs ({self.job_dir / 'logs' / (host.name + '.log')})"
            )
        if not re.match(r"^[A-Za-z]+Error:", text):
            text = f"AlgorithmError: {text}"
        return text

    def _teardown_hosts(self) -> None:
        for host in self.hosts:
            for feeder in host.feeders:
                feeder.stop()
            if host.run is not None:
                try:
                    host.run.cleanup()
                except SagedockError as exc:
                    self._say(f"{host.name}: cleanup failed: {exc.message}")
        try:
            self.backend.teardown()
        except SagedockError as exc:
            self._say(f"cleanup failed: {exc.message}")

    def _job_output(self, *parts: str) -> str:
        return locations.join(self.spec.output_path, self.spec.name, *parts)

    def _upload(self, *, with_model: bool) -> None:
        assert self.record is not None
        scratch = self.job_dir / "scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        compressed = self.spec.output_compression == "GZIP"
        if with_model:
            dest = self._job_output("output", "model.tar.gz" if compressed else "model")
            published, clashes = publish_merged(
                [(h.name, h.paths.model_dir) for h in self.hosts],
                dest,
                scratch,
                compressed=compressed,
                environ=self.environ,
            )
            for clash in clashes:
                self._say(f"model.tar.gz: hosts wrote different files at {clash}")
            self.record.update(ModelArtifacts={"S3ModelArtifacts": published})
        dest = self._job_output("output", "output.tar.gz" if compressed else "data")
        publish_merged(
            [(h.name, h.paths.output_data_dir) for h in self.hosts],
            dest,
            scratch,
            compressed=compressed,
            environ=self.environ,
        )
        self.record.update(OutputDataArtifact=dest)
        if any(
            h.paths.output_intermediate_dir.is_dir()
            and any(h.paths.output_intermediate_dir.iterdir())
            for h in self.hosts
        ):
            for h in self.hosts:
                if h.paths.output_intermediate_dir.is_dir():
                    prefix = self._job_output("output", "intermediate")
                    if len(self.hosts) > 1:
                        prefix = locations.join(prefix, h.name)
                    locations.publish_tree(
                        h.paths.output_intermediate_dir, prefix, environ=self.environ
                    )
        shutil.rmtree(scratch, ignore_errors=True)

    def _publish_record(self, record: JobRecord) -> None:
        scratch = self.job_dir / RECORD_NAME
        try:
            locations.publish_file(scratch, self._job_output(RECORD_NAME), environ=self.environ)
        except (SagedockError, OSError) as exc:
            self._say(f"could not write the job record beside the outputs: {exc}")

    def _cleanup(self, status: str) -> None:
        hosts_dir = self.job_dir / "hosts"
        shutil.rmtree(self.job_dir / "cache", ignore_errors=True)
        if status == "Completed" and not self.options.keep_hosts:
            shutil.rmtree(hosts_dir, ignore_errors=True)
        elif hosts_dir.exists():
            self._say(f"host trees kept for inspection in {hosts_dir}")


def describe(name_or_location: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The record of a local job: by name (from the state directory), or a record file, a job
    output directory / prefix holding ``training-job.json`` or ``transform-job.json``."""
    from .transform_job import TRANSFORM_RECORD_NAME

    candidates = []
    for kind, record_name in (
        (state.TRAINING, RECORD_NAME),
        (state.TRANSFORM, TRANSFORM_RECORD_NAME),
    ):
        candidates.append(state.entry_dir(kind, name_or_location, environ) / record_name)
    for path in candidates:
        if path.is_file():
            return dict(json.loads(path.read_text(encoding="utf-8")))
    try:
        location = locations.normalize(name_or_location)
    except UserError:
        location = None
    if location:
        options = [location]
        if not location.endswith(".json"):
            options = [
                locations.join(location, RECORD_NAME),
                locations.join(location, TRANSFORM_RECORD_NAME),
            ]
        for option in options:
            if locations.is_s3(option) or Path(option).is_file():
                try:
                    return dict(json.loads(locations.read_bytes(option, environ=environ)))
                except (UserError, json.JSONDecodeError):
                    continue
    raise UserError(
        f"no local job named {name_or_location!r} (looked in {state.local_root(environ)}) and "
        "no job record at that location"
    )


__all__ = [
    "DEFAULT_STOP_GRACE",
    "TrainOptions",
    "TrainingJob",
    "TrainingResult",
    "describe",
]
