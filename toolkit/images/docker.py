"""A thin layer over the ``docker`` command line (no SDK): engine checks, builds, inspection.

Every function runs the docker CLI found on PATH and raises :class:`PlatformError` naming the
command and docker's last words when it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import PlatformError

#: How long a quick query (info, inspect) may take before the engine counts as unresponsive.
QUERY_TIMEOUT = 30.0


def cli() -> str:
    """The path of the docker CLI; PlatformError when it is not installed."""
    found = shutil.which("docker")
    if not found:
        raise PlatformError(
            "the docker command is not installed (on Debian/Ubuntu: apt-get install docker.io)"
        )
    return found


def _run(
    args: Sequence[str], *, timeout: float | None = QUERY_TIMEOUT, check: bool = True
) -> subprocess.CompletedProcess[str]:
    cmd = [cli(), *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PlatformError(f"`docker {' '.join(args)}` did not answer in {timeout:.0f} s") from exc
    if check and done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise PlatformError(f"`docker {' '.join(args)}` failed: " + " | ".join(tail))
    return done


def engine_problem() -> str | None:
    """``None`` when a Docker engine answers; otherwise one sentence saying why it cannot run."""
    if not shutil.which("docker"):
        return "the docker command is not installed"
    try:
        done = _run(["info", "--format", "{{.ServerVersion}}"], check=False)
    except PlatformError as exc:
        return exc.message
    if done.returncode != 0 or not done.stdout.strip():
        last = (done.stderr or "no answer").strip().splitlines()[-1:]
        return f"no Docker engine answers ({' '.join(last)})"
    return None


def buildkit_available() -> bool:
    """True when ``docker buildx`` is installed, so ``docker build`` may use BuildKit."""
    try:
        return _run(["buildx", "version"], check=False).returncode == 0
    except PlatformError:
        return False


def image_exists(ref: str) -> bool:
    """True when the engine holds an image called *ref*."""
    return _run(["image", "inspect", ref], check=False).returncode == 0


@dataclass(frozen=True)
class ImageInfo:
    """What ``docker image inspect`` says about one image."""

    ref: str
    id: str
    size: int
    created: str
    labels: Mapping[str, str]
    env: tuple[str, ...]
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]


def inspect(ref: str) -> ImageInfo:
    """The metadata of image *ref* (PlatformError when it does not exist)."""
    done = _run(["image", "inspect", ref])
    data = json.loads(done.stdout)[0]
    config = data.get("Config") or {}
    return ImageInfo(
        ref=ref,
        id=data["Id"],
        size=int(data.get("Size", 0)),
        created=data.get("Created", ""),
        labels=dict(config.get("Labels") or {}),
        env=tuple(config.get("Env") or ()),
        entrypoint=tuple(config.get("Entrypoint") or ()),
        cmd=tuple(config.get("Cmd") or ()),
    )


def layer_sizes(ref: str) -> list[tuple[int, str]]:
    """``(bytes, created_by)`` for each layer of *ref*, newest first (``docker history``)."""
    done = _run(["history", "--no-trunc", "--human=false", "--format", "{{json .}}", ref])
    layers = []
    for line in done.stdout.splitlines():
        if line.strip():
            row = json.loads(line)
            layers.append((int(row.get("Size") or 0), str(row.get("CreatedBy", ""))))
    return layers


def build(
    context: Path,
    *,
    tags: Sequence[str],
    build_args: Mapping[str, str] | None = None,
    dockerfile: Path | None = None,
    on_line: Callable[[str], None] | None = None,
    buildkit: bool | None = None,
) -> None:
    """``docker build`` *context* with *tags*; streams docker's output to *on_line*.

    BuildKit is used when ``docker buildx`` is installed (``buildkit=None``), else the classic
    builder; the Dockerfiles work with both. PlatformError with the last lines on failure.
    """
    args = [cli(), "build", "--rm", "--force-rm"]
    for tag in tags:
        args += ["-t", tag]
    for key, value in (build_args or {}).items():
        args += ["--build-arg", f"{key}={value}"]
    if dockerfile is not None:
        args += ["-f", str(dockerfile)]
    use_buildkit = buildkit_available() if buildkit is None else buildkit
    if use_buildkit:
        args += ["--progress", "plain"]
    args.append(str(context))
    env = dict(os.environ, DOCKER_BUILDKIT="1" if use_buildkit else "0")
    tail: list[str] = []
    with subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail = [*tail[-19:], line]
            if on_line is not None:
                on_line(line)
        code = proc.wait()
    if code != 0:
        raise PlatformError(
            f"docker build of {tags[0] if tags else context} failed (exit {code}):\n"
            + "\n".join(tail)
        )


def import_tarball(tarball: Path, ref: str, changes: Sequence[str] = ()) -> str:
    """``docker import`` a root file system tarball as image *ref*; returns the image id."""
    args = ["import"]
    for change in changes:
        args += ["--change", change]
    done = _run([*args, str(tarball), ref], timeout=600)
    return done.stdout.strip()


def pull(ref: str, timeout: float = 120.0) -> str | None:
    """Try ``docker pull``; ``None`` on success, else docker's reason (never raises)."""
    try:
        done = _run(["pull", ref], timeout=timeout, check=False)
    except PlatformError as exc:
        return exc.message
    if done.returncode == 0:
        return None
    return ((done.stderr or done.stdout).strip().splitlines() or ["pull failed"])[-1]


def list_images(reference: str) -> list[dict[str, str]]:
    """Rows of ``docker image ls --filter reference=REFERENCE`` (Repository, Tag, ID, Size...)."""
    done = _run(["image", "ls", "--filter", f"reference={reference}", "--format", "{{json .}}"])
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
