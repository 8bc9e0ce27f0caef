"""``sagedock local serve``: a model served as SageMaker hosts it, on this machine.

:class:`LocalEndpoint` unpacks the model (a ``model.tar.gz`` at a path, ``file://`` or
``s3://`` URI, or a model directory) into a fresh ``/opt/ml/model``, starts ``serve`` as a
process (default) or a container, waits for ``GET /ping`` to answer 200 and exposes the URL.
Stopping sends SIGTERM and, after 30 s (SageMaker's endpoint grace), SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO

from sagedock.toolkit import s3
from sagedock.toolkit.errors import PlatformError, UserError

from . import http, locations, state
from .backends import docker_problem, inherited_environment
from .spec.model import ModelSpec

ENDPOINT_RECORD = "endpoint.json"
DEFAULT_STARTUP_TIMEOUT = 120.0
DEFAULT_PORT = 8080
STOP_GRACE = 30.0
IMAGE_PREFIX = "sagedock"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def prepare_model_dir(
    model: ModelSpec, dest: Path, *, environ: Mapping[str, str] | None = None
) -> Path:
    """Fill *dest* (emptied first) with the model's artifacts, extracted safely."""
    from sagedock.toolkit.sources import safe_extract

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    data = model.model_data
    if data is None:
        return dest
    if not model.model_data_compressed:
        if locations.is_s3(data):
            s3.download_prefix(data, dest, environ=environ)
        elif Path(data).is_dir():
            shutil.copytree(data, dest, symlinks=True, dirs_exist_ok=True)
        else:
            raise UserError(f"model data {data} is not a directory")
        return dest
    if locations.is_s3(data):
        archive = locations.fetch(data, dest.parent / "model.tar.gz", environ=environ)
    else:
        archive = Path(data)
        if not archive.is_file():
            raise UserError(f"model data {data}: no such file")
    try:
        safe_extract(archive, dest)
    finally:
        if locations.is_s3(data):
            archive.unlink(missing_ok=True)
    return dest


def serving_algorithm(model: ModelSpec, algorithm: str | None) -> str | None:
    """The ``SAGEDOCK_ALGORITHM`` for a process-backend server, if any."""
    if algorithm:
        return algorithm
    if "SAGEDOCK_ALGORITHM" in model.environment:
        return None
    if model.image:
        from .training import algorithm_for_image

        return algorithm_for_image(model.image)
    return None


@dataclass(frozen=True)
class ServeOptions:
    docker: bool = False
    port: int = DEFAULT_PORT
    """Port on 127.0.0.1; 0 picks a free one."""
    startup_timeout: float | None = None
    algorithm: str | None = None
    image: str | None = None
    detach: bool = False
    stop_grace: float = STOP_GRACE
    stream: TextIO | None = None


class LocalEndpoint:
    """A running model server. Use as a context manager, or :meth:`start` / :meth:`stop`."""

    def __init__(
        self,
        model: ModelSpec,
        *,
        name: str | None = None,
        environ: Mapping[str, str] | None = None,
        options: ServeOptions | None = None,
        extra_env: Mapping[str, str] | None = None,
        directory: Path | None = None,
    ) -> None:
        self.model = model
        self.name = name or model.name
        self.environ = dict(os.environ if environ is None else environ)
        self.options = options or ServeOptions()
        self.extra_env = dict(extra_env or {})
        self.dir = directory or state.entry_dir(state.ENDPOINTS, self.name, self.environ)
        self.port = 0
        self.popen: subprocess.Popen[bytes] | None = None
        self.container: str | None = None
        self._pump: threading.Thread | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.dir / "serve.log"

    def __enter__(self) -> LocalEndpoint:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- start ----------------------------------------------------------------------------
    def _check_not_running(self) -> None:
        old = read_endpoint_record(self.dir)
        if old is not None and is_running(old):
            raise UserError(
                f"endpoint {self.name!r} is running already at {old.get('Url')}; stop it with "
                f"`sagedock local stop {self.name}` or pick another --name"
            )

    def start(self) -> str:
        """Unpack the model, start the server, wait for ``/ping``; returns the URL."""
        self._check_not_running()
        self.dir.mkdir(parents=True, exist_ok=True)
        port = self.options.port
        if port == 0:
            port = free_port()
        elif port_in_use(port):
            raise UserError(f"port {port} is in use on 127.0.0.1; pick another with --port")
        self.port = port
        model_dir = prepare_model_dir(self.model, self.dir / "model", environ=self.environ)
        env = dict(self.model.environment)
        env.update(self.extra_env)
        if self.model.multi_model:
            env.setdefault("SAGEMAKER_MULTI_MODEL", "true")
        if self.options.docker:
            self._start_container(model_dir, env)
        else:
            self._start_process(env)
        timeout = (
            self.options.startup_timeout or self.model.startup_timeout or DEFAULT_STARTUP_TIMEOUT
        )
        try:
            http.wait_until_healthy(self.url, timeout=float(timeout), alive=self.alive)
        except PlatformError as exc:
            tail = self._log_tail()
            self.stop()
            raise PlatformError(f"{exc.message}{tail}") from None
        self._write_record("InService")
        return self.url

    def _start_process(self, model_env: Mapping[str, str]) -> None:
        env = inherited_environment(self.environ)
        algorithm = serving_algorithm(self.model, self.options.algorithm)
        if algorithm:
            env["SAGEDOCK_ALGORITHM"] = algorithm
        env.update(model_env)
        env["SAGEMAKER_BASE_DIR"] = str(self.dir)
        env["SAGEMAKER_BIND_TO_PORT"] = str(self.port)
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [sys.executable, "-m", "sagedock.toolkit", "serve"]
        self._spawn(cmd, env)

    def _image(self) -> str:
        if self.options.image:
            return self.options.image
        if self.model.image:
            return self.model.image
        if self.options.algorithm:
            return f"{IMAGE_PREFIX}/{self.options.algorithm}:latest"
        return f"{IMAGE_PREFIX}/base:latest"

    def _start_container(self, model_dir: Path, model_env: Mapping[str, str]) -> None:
        from sagedock.toolkit.images.docker import cli

        problem = docker_problem()
        if problem:
            raise PlatformError(f"--docker needs a Docker engine: {problem}")
        self.container = f"sagedock-endpoint-{self.name[:40]}-{os.urandom(3).hex()}"
        cmd = [
            cli(),
            "run",
            "--name",
            self.container,
            "--publish",
            f"127.0.0.1:{self.port}:8080",
            "--volume",
            f"{model_dir}:/opt/ml/model",
        ]
        env = dict(model_env)
        if self.options.algorithm and not self.model.image and not self.options.image:
            env.setdefault("SAGEDOCK_ALGORITHM", self.options.algorithm)
        for key, value in env.items():
            cmd += ["--env", f"{key}={value}"]
        cmd += [self._image(), "serve"]
        self._spawn(cmd, None)

    def _spawn(self, cmd: list[str], env: Mapping[str, str] | None) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        if self.options.detach:
            with open(self.log_file, "ab") as log:
                self.popen = subprocess.Popen(
                    cmd,
                    env=dict(env) if env is not None else None,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            return
        self.popen = subprocess.Popen(
            cmd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._log = open(self.log_file, "ab")  # noqa: SIM115 - closed in stop()
        self._pump = threading.Thread(target=self._copy_logs, name="serve-logs", daemon=True)
        self._pump.start()

    def _copy_logs(self) -> None:
        assert self.popen is not None and self.popen.stdout is not None
        out = self.options.stream
        for raw in iter(self.popen.stdout.readline, b""):
            if self._log is not None:
                self._log.write(raw)
                self._log.flush()
            if out is not None:
                try:
                    out.write(raw.decode("utf-8", errors="replace"))
                    out.flush()
                except (OSError, ValueError):
                    pass

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        tail = text.strip().splitlines()[-lines:]
        return ("\nlast lines of the server log:\n  " + "\n  ".join(tail)) if tail else ""

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def _write_record(self, status: str) -> None:
        state.write_json_atomic(
            self.dir / ENDPOINT_RECORD,
            {
                "EndpointName": self.name,
                "Status": "InService" if status == "InService" else status,
                "Url": self.url,
                "Port": self.port,
                "Pid": self.popen.pid if self.popen else None,
                "Container": self.container,
                "Backend": "docker" if self.options.docker else "process",
                "ModelDataUrl": self.model.model_data,
                "LogFile": str(self.log_file),
            },
        )

    # -- stop -----------------------------------------------------------------------------
    def stop(self) -> None:
        """SIGTERM, then SIGKILL after the grace period; removes the container if any."""
        if self.popen is not None:
            stop_server(self.popen.pid, self.container, grace=self.options.stop_grace)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=10)
            if self.popen.stdout is not None:
                self.popen.stdout.close()
        if self._pump is not None:
            self._pump.join(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.dir.exists():
            self._write_record("Stopped")


def stop_server(pid: int | None, container: str | None, *, grace: float = STOP_GRACE) -> None:
    """Stop a server started by :class:`LocalEndpoint` (maybe by another process)."""
    if container:
        from .backends import _docker

        _docker("stop", "--time", str(int(grace)), container, check=False, timeout=grace + 30)
        _docker("rm", "--force", container, check=False)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = 0 if state.pid_alive(pid) else pid
        if done == pid or not state.pid_alive(pid):
            break
        time.sleep(0.1)
    # The whole session: nginx and gunicorn workers too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def read_endpoint_record(directory: Path) -> dict[str, Any] | None:
    """The ``endpoint.json`` of the endpoint in *directory*, or None when there is none (or
    it cannot be read)."""
    try:
        record = json.loads((directory / ENDPOINT_RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def is_running(record: Mapping[str, Any]) -> bool:
    """Whether the endpoint of *record* is in service: its status says so and its server
    process is alive."""
    pid = record.get("Pid")
    return record.get("Status") == "InService" and isinstance(pid, int) and state.pid_alive(pid)


def _named_endpoint(name: str, environ: Mapping[str, str] | None) -> tuple[Path, dict[str, Any]]:
    """The directory and record of the endpoint *name* started with ``sagedock local serve``."""
    directory = state.entry_dir(state.ENDPOINTS, name, environ)
    record = read_endpoint_record(directory)
    if record is None:
        raise UserError(
            f"no local endpoint named {name!r} (start one with `sagedock local serve --name "
            f"{name}`)"
        )
    return directory, record


def endpoint_url(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The URL of the running endpoint *name* (started with ``sagedock local serve``)."""
    _, record = _named_endpoint(name, environ)
    if not is_running(record):
        raise UserError(f"endpoint {name!r} is not running (status {record.get('Status')})")
    return str(record["Url"])


def stop_endpoint(name: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Stop the endpoint *name* started with ``--detach``; returns its record."""
    directory, record = _named_endpoint(name, environ)
    # The status alone decides: a server that died without stopping is marked Stopped too.
    if record.get("Status") != "InService":
        raise UserError(f"endpoint {name!r} is not running (status {record.get('Status')})")
    pid = record.get("Pid")
    stop_server(pid if isinstance(pid, int) else None, record.get("Container"))
    record["Status"] = "Stopped"
    state.write_json_atomic(directory / ENDPOINT_RECORD, record)
    return dict(record)
