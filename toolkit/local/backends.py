"""How a host of a local job runs: a process on this machine, or a Docker container.

Both give a :class:`HostRun` with the host's merged stdout/stderr, ``poll()``, ``terminate()``
(SIGTERM, what SageMaker sends on a stop) and ``kill()`` (SIGKILL, after the grace period).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import urlsplit, urlunsplit

from sagedock.toolkit.errors import PlatformError

#: Variables of the caller's environment never handed to a host: they describe *this* process
#: (a base dir, a job of its own) and would contradict the job's.
_PRIVATE_PREFIXES = ("SM_", "SAGEMAKER_", "SAGEDOCK_", "TRAINING_JOB_")


def inherited_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment minus SageMaker/sagedock variables of its own."""
    return {k: v for k, v in environ.items() if not k.startswith(_PRIVATE_PREFIXES)}


#: The caller's AWS variables a container gets (the SDK's local mode passes the same ones):
#: credentials, region, and the S3 endpoint, without which a container's own S3 reads (an
#: ``s3://`` ``sagemaker_submit_directory``, say) would go to AWS instead of the endpoint the
#: job's data came from.
CONTAINER_AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
)
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")

#: The name under which a container reaches this machine (Docker Desktop's spelling; the
#: docker backend maps it to the job network's gateway with ``--add-host``).
HOST_ALIAS = "host.docker.internal"


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() == "localhost" or hostname.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def container_endpoint(url: str) -> str:
    """*url* as a container sees this machine: a loopback host (``127.0.0.1``, ``localhost``,
    ``[::1]``) becomes :data:`HOST_ALIAS`, since inside a container the loopback address is
    the container itself; any other URL is returned as it is."""
    parts = urlsplit(url)
    if not parts.hostname or not _is_loopback(parts.hostname):
        return url
    netloc = HOST_ALIAS if parts.port is None else f"{HOST_ALIAS}:{parts.port}"
    if "@" in parts.netloc:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def container_aws_environment(
    environ: Mapping[str, str], *, warn: Callable[[str], None] | None = None
) -> dict[str, str]:
    """The :data:`CONTAINER_AWS_VARIABLES` set in *environ*, endpoints rewritten with
    :func:`container_endpoint`; *warn* is told of each rewrite, since the server behind it is
    reached at the job network's gateway, which a server bound to 127.0.0.1 does not answer."""
    env = {k: environ[k] for k in CONTAINER_AWS_VARIABLES if environ.get(k)}
    for key in _ENDPOINT_VARIABLES:
        if key in env:
            seen = container_endpoint(env[key])
            if seen != env[key] and warn is not None:
                warn(
                    f"warning: {key}={env[key]} is this machine's loopback, so containers get "
                    f"{seen} ({HOST_ALIAS} is the job network's gateway): the S3 server must "
                    "listen on 0.0.0.0 or the gateway's address, not on 127.0.0.1 only"
                )
            env[key] = seen
    return env


class HostRun(Protocol):
    host: str

    @property
    def stdout(self) -> IO[bytes]: ...

    def poll(self) -> int | None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def cleanup(self) -> None: ...


# -- processes ------------------------------------------------------------------------------
@dataclass
class ProcessHost:
    """One host as ``sagedock train`` in its own session (so a Ctrl-C in the terminal reaches
    only us, and we stop the hosts the way SageMaker does)."""

    host: str
    popen: subprocess.Popen[bytes]

    @property
    def stdout(self) -> IO[bytes]:
        assert self.popen.stdout is not None
        return self.popen.stdout

    def poll(self) -> int | None:
        return self.popen.poll()

    def terminate(self) -> None:
        # Like `docker stop`: SIGTERM to the container's PID 1 only; `train` forwards it.
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        # Like the end of a container: everything in it dies.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def cleanup(self) -> None:
        self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL does not fail
            self.popen.wait(timeout=10)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


@dataclass
class ProcessBackend:
    """Each host is ``python -m sagedock.toolkit train`` with ``SAGEMAKER_BASE_DIR`` at its
    own tree, and ``SAGEDOCK_HOST_ADDRESSES`` mapping every ``algo-N`` to 127.0.0.1."""

    name: str = "process"
    network_interface: str = "lo"
    python: str = sys.executable

    def container_base(self, host_dir: Path) -> str:
        return str(host_dir)

    def prepare(self, job_name: str, hosts: Sequence[str]) -> None:
        pass

    def start(
        self,
        host: str,
        host_dir: Path,
        env: Mapping[str, str],
        *,
        image: str | None = None,
        entrypoint: Sequence[str] = (),
        arguments: Sequence[str] = (),
        extra_mounts: Mapping[str, str] | None = None,
    ) -> HostRun:
        full_env = dict(env)
        full_env["SAGEMAKER_BASE_DIR"] = str(host_dir)
        full_env["PYTHONUNBUFFERED"] = "1"
        cmd = [self.python, "-m", "sagedock.toolkit", "train"]
        try:
            popen = subprocess.Popen(
                cmd,
                env=full_env,
                cwd=str(host_dir),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise PlatformError(f"cannot start {host}: {exc}") from exc
        return ProcessHost(host, popen)

    def teardown(self) -> None:
        pass


# -- docker ---------------------------------------------------------------------------------
def docker_problem() -> str | None:
    """None when a Docker engine answers, else why not."""
    from sagedock.toolkit.images.docker import engine_problem

    return engine_problem()


def _docker(
    *args: str, timeout: float = 60.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    from sagedock.toolkit.images.docker import cli

    try:
        done = subprocess.run(
            [cli(), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PlatformError(
            f"`docker {' '.join(args[:2])}` did not answer in {timeout:g} s"
        ) from exc
    if check and done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise PlatformError(f"`docker {' '.join(args[:2])}` failed: {' | '.join(tail)}")
    return done


@dataclass
class ContainerHost(ProcessHost):
    """One host as a ``docker run`` client process; stop signals go to the container."""

    container: str = ""

    def terminate(self) -> None:
        if self.popen.poll() is None:
            _docker("kill", "--signal", "TERM", self.container, check=False)

    def kill(self) -> None:
        _docker("kill", self.container, check=False)

    def cleanup(self) -> None:
        _docker("rm", "--force", self.container, check=False)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
        if self.popen.stdout is not None:
            self.popen.stdout.close()


@dataclass
class DockerBackend:
    """Each host is ``docker run IMAGE train`` on a user-defined network where the container
    answers to its host name, with the host's tree mounted under ``/opt/ml`` folder by folder."""

    name: str = "docker"
    network_interface: str = "eth0"
    network: str | None = None
    gateway: str | None = None
    """This machine's address on the job's network (what :data:`HOST_ALIAS` resolves to)."""
    addresses: dict[str, str] = field(default_factory=dict)
    containers: list[str] = field(default_factory=list)
    _suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    def container_base(self, host_dir: Path) -> str:
        return "/opt/ml"

    def prepare(self, job_name: str, hosts: Sequence[str]) -> None:
        """Create the job's network with a subnet of its own, so that every host gets a fixed
        address: each container also finds the others in ``/etc/hosts``, which keeps a name
        resolvable after its container has exited (Docker's DNS forgets stopped containers,
        and a host that finishes early must not leave the others waiting for its name)."""
        problem = docker_problem()
        if problem:
            raise PlatformError(f"--docker needs a Docker engine: {problem}")
        name = f"sagedock-{job_name[:40]}-{self._suffix}"
        rng = random.Random(self._suffix)
        last = ""
        for _ in range(8):
            prefix = f"10.{rng.randint(100, 254)}.{rng.randint(0, 255)}"
            done = _docker(
                "network",
                "create",
                "--subnet",
                f"{prefix}.0/24",
                "--gateway",
                f"{prefix}.1",
                name,
                check=False,
            )
            if done.returncode == 0:
                self.network = name
                self.gateway = f"{prefix}.1"
                self.addresses = {h: f"{prefix}.{10 + i}" for i, h in enumerate(hosts)}
                return
            last = (done.stderr or done.stdout).strip()
        raise PlatformError(f"cannot create a Docker network for the job: {last}")

    def start(
        self,
        host: str,
        host_dir: Path,
        env: Mapping[str, str],
        *,
        image: str | None = None,
        entrypoint: Sequence[str] = (),
        arguments: Sequence[str] = (),
        extra_mounts: Mapping[str, str] | None = None,
    ) -> HostRun:
        from sagedock.toolkit.images.docker import cli

        cmd = self.run_arguments(
            host,
            host_dir,
            env,
            image=image,
            entrypoint=entrypoint,
            arguments=arguments,
            extra_mounts=extra_mounts,
        )
        name = self.container_name(host)
        try:
            popen = subprocess.Popen(
                [cli(), *cmd],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise PlatformError(f"cannot start {host}: {exc}") from exc
        self.containers.append(name)
        return ContainerHost(host, popen, container=name)

    def _job_network(self) -> str:
        assert self.network is not None, "prepare() first"
        return self.network

    def container_name(self, host: str) -> str:
        return f"{self._job_network()}-{host}"

    def run_arguments(
        self,
        host: str,
        host_dir: Path,
        env: Mapping[str, str],
        *,
        image: str | None = None,
        entrypoint: Sequence[str] = (),
        arguments: Sequence[str] = (),
        extra_mounts: Mapping[str, str] | None = None,
    ) -> list[str]:
        """The ``docker`` arguments (``run ...``) that start *host* (after :meth:`prepare`)."""
        if not image:
            raise PlatformError("the docker backend needs an image")
        cmd = [
            "run",
            "--name",
            self.container_name(host),
            "--network",
            self._job_network(),
            "--network-alias",
            host,
            "--hostname",
            host,
        ]
        for source, target in _contract_mounts(host_dir):
            cmd += ["--volume", f"{source}:{target}"]
        if host in self.addresses:
            cmd += ["--ip", self.addresses[host]]
        for peer, address in self.addresses.items():
            if peer != host:
                cmd += ["--add-host", f"{peer}:{address}"]
        if self.gateway:
            cmd += ["--add-host", f"{HOST_ALIAS}:{self.gateway}"]
        for outside, inside in (extra_mounts or {}).items():
            cmd += ["--volume", f"{outside}:{inside}"]
        for key, value in env.items():
            cmd += ["--env", f"{key}={value}"]
        if entrypoint:
            cmd += ["--entrypoint", entrypoint[0], image, *entrypoint[1:], *arguments]
        elif arguments:
            cmd += [image, *arguments]
        else:
            cmd += [image, "train"]
        return cmd

    def teardown(self) -> None:
        for name in self.containers:
            _docker("rm", "--force", name, check=False)
        if self.network:
            _docker("network", "rm", self.network, check=False)


def _contract_mounts(host_dir: Path) -> list[tuple[Path, str]]:
    """One bind mount per folder of the host's tree (``input``, ``model``, ``output``, ...),
    as SageMaker mounts them: mounting the whole tree at ``/opt/ml`` would hide what the image
    keeps there, such as code baked into ``/opt/ml/code``. An empty ``code`` folder is left out
    for the same reason."""
    mounts = []
    for child in sorted(host_dir.iterdir()):
        if not child.is_dir() or (child.name == "code" and not any(child.iterdir())):
            continue
        mounts.append((child, f"/opt/ml/{child.name}"))
    return mounts
