"""Helpers for image tests: /opt/ml trees, ``docker run``, detached containers, HTTP."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

TEST_LABEL = "org.sagedock.test=1"


def write_tree(
    root: Path,
    *,
    hyperparameters: Mapping[str, object] | None = None,
    channels: Mapping[str, Mapping[str, bytes]] | None = None,
    content_types: Mapping[str, str] | None = None,
    code: Mapping[str, str] | None = None,
) -> Path:
    """Lay out an /opt/ml tree under *root* as SageMaker does before ``train``.

    Hyperparameter values are JSON-encoded strings, as the SageMaker SDK writes them.
    """
    config = root / "input" / "config"
    config.mkdir(parents=True)
    hps = {key: json.dumps(value) for key, value in (hyperparameters or {}).items()}
    (config / "hyperparameters.json").write_text(json.dumps(hps))
    resource = {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}
    (config / "resourceconfig.json").write_text(json.dumps(resource))
    data_config = {}
    for channel, files in (channels or {}).items():
        folder = root / "input" / "data" / channel
        folder.mkdir(parents=True)
        for name, body in files.items():
            (folder / name).write_bytes(body)
        spec = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}
        if content_types and channel in content_types:
            spec["ContentType"] = content_types[channel]
        data_config[channel] = spec
    (config / "inputdataconfig.json").write_text(json.dumps(data_config))
    for sub in ("model", "output", "code"):
        (root / sub).mkdir(exist_ok=True)
    for name, text in (code or {}).items():
        (root / "code" / name).write_text(text)
    return root


def docker(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; never raises on a non-zero exit."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def run_args(
    *,
    volumes: Mapping[Path, str] | None = None,
    env: Mapping[str, str] | None = None,
    ports: Mapping[int, int] | None = None,
    name: str | None = None,
) -> list[str]:
    args = ["--label", TEST_LABEL]
    if name:
        args += ["--name", name]
    for host, inside in (volumes or {}).items():
        args += ["-v", f"{host}:{inside}"]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    for host_port, container_port in (ports or {}).items():
        args += ["-p", f"127.0.0.1:{host_port}:{container_port}"]
    return args


def run_container(
    image: str,
    *command: str,
    volumes: Mapping[Path, str] | None = None,
    env: Mapping[str, str] | None = None,
    network: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``docker run --rm`` to completion: what SageMaker does for a training job.
    ``network="none"`` runs it with no network at all (as in a VPC without egress)."""
    args = ["run", "--rm", *run_args(volumes=volumes, env=env)]
    if network is not None:
        args += ["--network", network]
    return docker(*args, image, *command, timeout=timeout)


@dataclass
class Container:
    """A detached container started by :func:`detached`."""

    name: str
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        out = docker("logs", self.name, timeout=30)
        return out.stdout + out.stderr

    def state(self) -> dict[str, object]:
        out = docker("inspect", "-f", "{{json .State}}", self.name, timeout=30)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def stop(self, grace: int = 30) -> int:
        """``docker stop -t GRACE`` (SIGTERM, SIGKILL after *grace* s); the exit code."""
        docker("stop", "-t", str(grace), self.name, timeout=grace + 60)
        return int(self.state().get("ExitCode", -1))  # type: ignore[call-overload]


@contextlib.contextmanager
def detached(
    image: str,
    *command: str,
    volumes: Mapping[Path, str] | None = None,
    env: Mapping[str, str] | None = None,
    container_port: int | None = None,
) -> Iterator[Container]:
    """``docker run -d``; the container is removed afterwards whatever happened."""
    name = f"sagedock-test-{uuid.uuid4().hex[:12]}"
    port = free_port() if container_port is not None else None
    ports = {port: container_port} if port is not None and container_port is not None else None
    args = ["run", "-d", *run_args(volumes=volumes, env=env, ports=ports, name=name)]
    started = docker(*args, image, *command, timeout=120)
    assert started.returncode == 0, started.stderr
    container = Container(name=name, port=port)
    try:
        yield container
    finally:
        docker("rm", "-f", name, timeout=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str


def http(
    url: str,
    *,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> Response:
    """One HTTP request; error statuses are returned, not raised."""
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return Response(resp.status, resp.read(), resp.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.read(), exc.headers.get("Content-Type", ""))


def wait_for_ping(container: Container, timeout: float = 180) -> None:
    """Poll ``/ping`` until 200; fails with the container's logs if it never comes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http(container.url + "/ping", timeout=2).status == 200:
                return
        except OSError:
            pass
        if container.state().get("Running") is False:
            break
        time.sleep(0.5)
    raise AssertionError(f"/ping never answered 200; container logs:\n{container.logs()[-4000:]}")


def wait_for_log_line(container: Container, prefix: str, timeout: float = 120) -> None:
    """Poll the container's log until a line starts with *prefix*; fails with the log if the
    line never comes or the container ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = container.logs()
        if any(line.startswith(prefix) for line in logs.splitlines()):
            return
        if container.state().get("Running") is False:
            break
        time.sleep(0.3)
    raise AssertionError(f"no log line starting {prefix!r}; log:\n{container.logs()[-4000:]}")


def wait_for_file(path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} never appeared")


def image_algorithms(image: str) -> Sequence[str]:
    """The ``sagedock.algorithms`` entry points installed in *image*."""
    code = (
        "from importlib.metadata import entry_points; "
        "print(' '.join(e.name for e in entry_points(group='sagedock.algorithms')))"
    )
    out = run_container(image, "python", "-c", code, timeout=120)
    return out.stdout.split()
