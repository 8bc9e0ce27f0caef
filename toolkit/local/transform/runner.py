"""Running a batch transform against a model server that is already up.

:func:`transform_stream` is the core (split -> InputFilter -> mini-batches -> concurrent
requests -> outputs assembled in input order); :func:`run_transform` applies it to every input
file of a :class:`~sagedock.toolkit.local.spec.TransformJobSpec` and publishes the ``.out``
files only once every file has succeeded, and withdraws the ones published already when a
later one cannot be, so a failure leaves no partial output. A :class:`StopRequest` stops either
at a safe point (:mod:`.stopping`).
"""

from __future__ import annotations

import functools
import gzip
import queue
import shutil
import signal
import tempfile
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, TypeVar

from sagedock.toolkit.errors import SagedockError, UserError
from sagedock.toolkit.local import http, locations
from sagedock.toolkit.local.locations import DataObject
from sagedock.toolkit.local.manifests import read_manifest
from sagedock.toolkit.local.spec.transform import TransformJobSpec

from .batch import Batch, Record, make_batches
from .dataprocessing import DataProcessing
from .split import split_records
from .stopping import StopRequest, TransformStopped

DEFAULT_MAX_PAYLOAD_MB = 6
DEFAULT_MAX_CONCURRENT = 1
DEFAULT_STRATEGY = "MultiRecord"

T = TypeVar("T")
R = TypeVar("R")


class TransformError(UserError):
    """A transform failed; the message names the file and the records."""


# -- settings -------------------------------------------------------------------------------
def normalize_strategy(value: object) -> str | None:
    """``MultiRecord``/``MULTI_RECORD``/``multi_record`` -> ``MultiRecord`` (same for single);
    anything else -> None."""
    if not isinstance(value, str):
        return None
    key = value.replace("_", "").replace("-", "").lower()
    return {"multirecord": "MultiRecord", "singlerecord": "SingleRecord"}.get(key)


@dataclass(frozen=True)
class TransformSettings:
    batch_strategy: str
    max_payload_mb: int  # 0 = no limit
    max_concurrent: int

    @property
    def env_strategy(self) -> str:
        return "MULTI_RECORD" if self.batch_strategy == "MultiRecord" else "SINGLE_RECORD"


def _positive_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def resolve_settings(
    spec: TransformJobSpec, container: Mapping[str, object] | None
) -> TransformSettings:
    """Each setting from the request if set there, else from the container's
    ``/execution-parameters`` (either spelling of the strategy), else the defaults
    (MultiRecord, 6 MB, 1 concurrent request)."""
    container = container or {}
    strategy = (
        spec.batch_strategy
        or normalize_strategy(container.get("BatchStrategy"))
        or DEFAULT_STRATEGY
    )
    payload = spec.max_payload_mb
    if payload is None:
        payload = _positive_int(container.get("MaxPayloadInMB"))
    if payload is None:
        payload = DEFAULT_MAX_PAYLOAD_MB
    concurrent = spec.max_concurrent or _positive_int(container.get("MaxConcurrentTransforms"))
    return TransformSettings(strategy, payload, max(1, concurrent or DEFAULT_MAX_CONCURRENT))


def transform_environment(spec: TransformJobSpec) -> dict[str, str]:
    """The container environment of a transform job: the request's ``Environment`` plus what
    SageMaker adds (the last three only when set in the request)."""
    env = dict(spec.environment)
    env["SAGEMAKER_BATCH"] = "true"
    if spec.max_payload_mb is not None:
        env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(spec.max_payload_mb)
    if spec.batch_strategy is not None:
        env["SAGEMAKER_BATCH_STRATEGY"] = (
            "MULTI_RECORD" if spec.batch_strategy == "MultiRecord" else "SINGLE_RECORD"
        )
    if spec.max_concurrent:
        env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(spec.max_concurrent)
    return env


# -- the core -------------------------------------------------------------------------------
#: How often a wait for a response looks at the stop request.
STOP_POLL_SECONDS = 0.05


class _Workers:
    """Threads that run the calls put in their queue, in order.

    They are daemons: the interpreter joins ThreadPoolExecutor's threads at exit, so a stopped
    job's process would wait for every slow answer (and retry) it abandoned. Once a call fails,
    the calls queued behind it are skipped: their results would be dropped anyway.
    """

    def __init__(self, count: int) -> None:
        self._tasks: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._failed = threading.Event()
        self._count = count
        for number in range(count):
            threading.Thread(target=self._run, name=f"transform-{number}", daemon=True).start()

    def submit(self, call: Callable[[], R]) -> Future[R]:
        future: Future[R] = Future()
        self._tasks.put((future, call))
        return future

    def shutdown(self) -> None:
        """End every thread once its current call returns (without waiting for that)."""
        for _ in range(self._count):
            self._tasks.put(None)

    def _run(self) -> None:
        while (task := self._tasks.get()) is not None:
            future, call = task
            if self._failed.is_set():
                future.cancel()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:  # handed to the caller, a stop included
                self._failed.set()
                future.set_exception(exc)


def _result(future: Future[R], stop: StopRequest | None) -> R:
    if stop is None:
        return future.result()
    while True:
        try:
            return future.result(timeout=STOP_POLL_SECONDS)
        except TimeoutError:
            stop.check()


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    *,
    stop: StopRequest | None = None,
) -> Iterator[R]:
    """``map(fn, items)`` with up to *workers* calls at once, results in input order, and at
    most ``2 * workers`` items in flight (so memory stays bounded).

    With *stop*, the calls run in worker threads even for one worker, and a stop request
    raises :class:`TransformStopped` within :data:`STOP_POLL_SECONDS`, waiting for no call
    still running (its result is dropped; nothing queued behind it starts). Without *stop*
    and with one worker, the calls run in the caller's thread.
    """
    if workers <= 1 and stop is None:
        for item in items:
            yield fn(item)
        return
    pool = _Workers(max(1, workers))
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            if stop is not None:
                stop.check()
            pending.append(pool.submit(functools.partial(fn, item)))
            if len(pending) >= 2 * workers:
                yield _result(pending.popleft(), stop)
        while pending:
            yield _result(pending.popleft(), stop)
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown()


@dataclass(frozen=True)
class StreamStats:
    records: int
    requests: int


def transform_stream(
    stream: BinaryIO,
    out: IO[bytes],
    send: Callable[[Batch], bytes],
    *,
    split_type: str,
    settings: TransformSettings,
    assemble_with: str = "None",
    processing: DataProcessing | None = None,
    source: str = "input",
    stop: StopRequest | None = None,
) -> StreamStats:
    """Transform one input *stream* into *out*.

    *send* gets each mini-batch and returns the response body (raising on failure). Output is
    written in input order whatever order responses arrive in. A *stop* request raises
    :class:`TransformStopped` between two mini-batches, or while a response is awaited.
    """
    dp = processing
    counter = {"records": 0, "requests": 0}

    def records() -> Iterator[Record]:
        for index, raw in enumerate(split_records(stream, split_type, source=source)):
            payload = dp.filter_input(raw, f"{source} record {index + 1}") if dp else raw
            counter["records"] += 1
            yield Record(index, raw, payload)

    batches = make_batches(
        records(),
        strategy=settings.batch_strategy if split_type != "None" else "SingleRecord",
        max_payload_mb=settings.max_payload_mb,
        source=source,
    )

    def call(batch: Batch) -> tuple[Batch, bytes]:
        return batch, send(batch)

    for batch, body in ordered_map(call, batches, settings.max_concurrent, stop=stop):
        if stop is not None:
            stop.check()
        counter["requests"] += 1
        if dp is not None and dp.per_record_output:
            where = f"{source} {batch.describe()}"
            outputs = dp.split_response(body, len(batch.records), where)
            for record, output in zip(batch.records, outputs, strict=True):
                out.write(dp.join(record.raw, output, f"{source} record {record.index + 1}"))
        else:
            out.write(body)
            if assemble_with == "Line" and not body.endswith(b"\n"):
                out.write(b"\n")
    return StreamStats(counter["records"], counter["requests"])


# -- requests -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Invoker:
    """Sends mini-batches to ``/invocations`` with the job's timeout and retries; once *stop*
    is requested it sends nothing more (no retry either) and raises
    :class:`TransformStopped`."""

    url: str
    content_type: str | None
    accept: str | None
    timeout: float = 600.0
    retries: int = 3
    backoff: float = 0.2
    stop: StopRequest | None = None

    def send(self, batch: Batch, source: str) -> bytes:
        where = f"{source} {batch.describe()}"
        body = batch.body
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._pause(min(self.backoff * 2 ** (attempt - 1), 2.0))
            if self.stop is not None:
                self.stop.check()
            try:
                resp = http.invoke(
                    self.url,
                    body,
                    content_type=self.content_type,
                    accept=self.accept,
                    timeout=self.timeout,
                )
            except http.ConnectionFailed as exc:
                last = exc.message
                continue
            if resp.ok:
                return resp.body
            last = f"the model answered {resp.status}: {resp.error_message()}"
            if resp.status < 500:
                raise TransformError(f"{where}: {last}")
        attempts = self.retries + 1
        raise TransformError(f"{where}: failed after {attempts} attempt(s): {last}")

    def _pause(self, seconds: float) -> None:
        if self.stop is None:
            time.sleep(seconds)
        else:
            self.stop.wait(seconds)  # a stop ends the pause early; the check after it raises


# -- a whole job ----------------------------------------------------------------------------
@dataclass(frozen=True)
class FileResult:
    source: str
    output: str
    records: int
    requests: int


@dataclass(frozen=True)
class TransformResult:
    files: tuple[FileResult, ...]
    settings: TransformSettings
    seconds: float

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)


def list_inputs(
    spec: TransformJobSpec, *, environ: Mapping[str, str] | None = None
) -> list[DataObject]:
    """The input files of *spec*, in order, each with its path relative to the input prefix."""
    if spec.input_data_type == "ManifestFile":
        return read_manifest(spec.input_location, environ=environ)
    return locations.list_objects(spec.input_location, environ=environ)


def _send_from(invoker: Invoker, source: str, batch: Batch) -> bytes:
    return invoker.send(batch, source)


def _open_input(path: Path, compression: str, source: str) -> BinaryIO:
    if compression == "Gzip":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def publish_outputs(
    staged: list[tuple[Path, str]],
    output_location: str,
    *,
    environ: Mapping[str, str] | None = None,
    log: Callable[[str], None] | None = None,
    stop: StopRequest | None = None,
) -> None:
    """Publish each ``(local file, destination)`` of *staged*, all or none: when one fails, or
    the job is stopped (*stop*, checked before each file) or interrupted meanwhile, the ones
    this call already published are deleted again (best effort: what cannot be deleted is
    logged), then the error goes on. A stop or interrupt after which some outputs could not be
    deleted goes on as :class:`TransformStopped` naming them
    (:attr:`~TransformStopped.still_published`). Once the last file is published, a stop
    changes nothing: the job is done."""
    say = log or (lambda _msg: None)
    published: list[str] = []
    # Local directories created for the outputs go again with them: pruning stops at the
    # nearest one that existed before.
    keep: Path | None = None
    if not locations.is_s3(output_location):
        root = Path(output_location)
        keep = next((p for p in (root, *root.parents) if p.exists()), root.parent)
    dest = output_location
    try:
        for out_path, dest in staged:
            if stop is not None:
                stop.check()
            try:
                locations.publish_file(out_path, dest, environ=environ)
            except OSError as exc:
                raise TransformError(f"cannot write {dest}: {exc.strerror or exc}") from exc
            published.append(dest)
            say(f"  published {dest}")
    except BaseException as exc:
        if published:
            if isinstance(exc, Exception):
                why = exc.message if isinstance(exc, SagedockError) else repr(exc)
                what = f"publishing {dest} failed ({why})"
            elif isinstance(exc, TransformStopped):
                what = f"stopped ({signal.Signals(exc.signum).name}) while publishing"
            else:
                what = f"interrupted ({type(exc).__name__}) while publishing"
            say(f"{what}: removing the {len(published)} output(s) published already")
        left: list[str] = []
        for done in reversed(published):
            try:
                locations.remove(
                    done, environ=environ, prune_below=None if keep is None else str(keep)
                )
            except (SagedockError, OSError) as cleanup:
                say(f"  could not remove {done}: {cleanup}")
                left.insert(0, done)
        if left and isinstance(exc, KeyboardInterrupt):
            signum = exc.signum if isinstance(exc, TransformStopped) else signal.SIGINT
            raise TransformStopped(signum, still_published=left) from exc
        raise


def run_transform(
    spec: TransformJobSpec,
    url: str,
    *,
    environ: Mapping[str, str] | None = None,
    work_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
    settings: TransformSettings | None = None,
    stop: StopRequest | None = None,
) -> TransformResult:
    """Transform every input file of *spec* through the server at *url*.

    Outputs ``<output>/<relative input path>.out`` for every input file, published only after
    all files succeeded.

    :raises TransformError: naming the file and record range of the first failure.
    :raises TransformStopped: when *stop* is requested before the last output is published
        (what was published is withdrawn again).
    """
    started = time.monotonic()
    say = log or (lambda _msg: None)
    if settings is None:
        settings = resolve_settings(spec, http.execution_parameters(url))
    processing = DataProcessing.create(
        input_filter=spec.input_filter,
        output_filter=spec.output_filter,
        join_source=spec.join_source,
        content_type=spec.content_type,
        accept=spec.accept,
    )
    processing.check_formats()
    dp = processing if processing.active else None
    invoker = Invoker(
        url,
        spec.content_type,
        spec.accept,
        timeout=float(spec.invocation_timeout),
        retries=spec.invocation_retries,
        stop=stop,
    )
    inputs = list_inputs(spec, environ=environ)
    say(
        f"transform {spec.name}: {len(inputs)} file(s), SplitType {spec.split_type}, "
        f"{settings.batch_strategy}, MaxPayloadInMB {settings.max_payload_mb}, "
        f"MaxConcurrentTransforms {settings.max_concurrent}"
    )
    owns_work = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="sagedock-transform-")) if owns_work else Path(work_dir)  # type: ignore[arg-type]
    results: list[FileResult] = []
    staged: list[tuple[Path, str]] = []
    try:
        for i, obj in enumerate(inputs):
            if stop is not None:
                stop.check()
            name = obj.location
            if locations.is_s3(obj.location):
                local = locations.fetch(obj.location, work / "in" / f"{i}", environ=environ)
            else:
                local = Path(obj.location)
            out_path = work / "out" / f"{i}.out"
            out_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with (
                    _open_input(local, spec.compression, name) as stream,
                    open(out_path, "wb") as out,
                ):
                    stats = transform_stream(
                        stream,
                        out,
                        functools.partial(_send_from, invoker, name),
                        split_type=spec.split_type,
                        settings=settings,
                        assemble_with=spec.assemble_with,
                        processing=dp,
                        source=name,
                        stop=stop,
                    )
            except (OSError, EOFError, zlib.error) as exc:
                if isinstance(exc, gzip.BadGzipFile | EOFError | zlib.error):
                    raise TransformError(f"{name}: not valid gzip data ({exc})") from exc
                raise
            except UserError as exc:
                raise TransformError(exc.message) from exc
            dest = locations.join(spec.output_location, obj.relative + ".out")
            staged.append((out_path, dest))
            results.append(FileResult(obj.location, dest, stats.records, stats.requests))
            say(f"  {obj.relative}: {stats.records} record(s) in {stats.requests} request(s)")
        publish_outputs(staged, spec.output_location, environ=environ, log=say, stop=stop)
    finally:
        if owns_work:
            shutil.rmtree(work, ignore_errors=True)
        else:
            shutil.rmtree(work / "in", ignore_errors=True)
            shutil.rmtree(work / "out", ignore_errors=True)
    return TransformResult(tuple(results), settings, time.monotonic() - started)
