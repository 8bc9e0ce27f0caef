"""``sagedock images build|list|bootstrap-base`` end to end against a real engine.

They build only ``base``, after the fixture has built it this run: the wheel cache is full and
Docker's layer cache holds every layer, so the command's own build takes seconds.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from sagedock.toolkit.images import bootstrap
from sagedock.toolkit.images import docker as engine
from sagedock.toolkit.images.build import default_cache
from sagedock.toolkit.version import __version__
from tests.fixtures.images import ImageSet
from tests.images.support import docker

pytestmark = pytest.mark.docker


def _sagedock_images(
    *argv: str, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sagedock.toolkit", "images", *argv],
        env=env if env is not None else dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class _IndexRecorder(http.server.BaseHTTPRequestHandler):
    """A package index that has nothing and remembers what pip asked it for."""

    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.asked.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recording_index() -> Iterator[tuple[dict[str, str], list[str]]]:
    """An environment whose only package index is a recorder on 127.0.0.1 (no pip
    configuration files, no find-links), and the paths pip asked it for."""
    _IndexRecorder.asked = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _IndexRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = dict(os.environ)
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_INDEX_URL=f"http://127.0.0.1:{server.server_port}/simple",
        PIP_FIND_LINKS="",
        PIP_EXTRA_INDEX_URL="",
    )
    try:
        yield env, _IndexRecorder.asked
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def prefix() -> Iterator[str]:
    """A tag prefix of this test alone; its tags are removed afterwards (the layers stay)."""
    name = f"sagedock-test-{uuid.uuid4().hex[:8]}"
    yield name
    for tag in (f"{name}/base:{__version__}", f"{name}/base:latest"):
        docker("rmi", tag, timeout=60)


def test_offline_build_with_a_prefix_tags_prints_the_table_and_writes_the_report(
    sagedock_images: ImageSet,
    prefix: str,
    tmp_path: Path,
    recording_index: tuple[dict[str, str], list[str]],
) -> None:
    base = sagedock_images.tag("base")  # the fixture's build: caches full
    env, asked = recording_index
    report = tmp_path / "report.json"
    done = _sagedock_images(
        "build", "base", "--offline", "--tag", prefix, "--report", str(report), "-q", env=env
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert asked == []  # --offline: the host's pip never asked an index for anything
    versioned, latest = f"{prefix}/base:{__version__}", f"{prefix}/base:latest"
    info = engine.inspect(versioned)
    assert engine.inspect(latest).id == info.id
    # the dependencies' layer is the fixture's, from Docker's cache (same wheelhouse)
    assert _venv_layer(versioned) == _venv_layer(base)
    table = done.stdout.splitlines()[-2:]
    assert table[0].split() == ["IMAGE", "SIZE", "BUILD", "WHEELS"]
    row = table[1].split()
    assert row[0] == versioned
    assert row[1:3] == [f"{info.size / 1e6:.0f}", "MB"]
    assert float(row[3]) > 0 and row[4] == "s"
    (entry,) = json.loads(report.read_text())
    assert entry["name"] == "base"
    assert entry["tags"] == [versioned, latest]
    assert entry["size_bytes"] == info.size
    assert entry["build_seconds"] == pytest.approx(float(row[3]), abs=0.06)
    assert entry["wheels"] > 0 and entry["wheel_bytes"] > 0
    assert entry["layers"] and all("created_by" in layer for layer in entry["layers"])


def test_without_offline_the_host_pip_refreshes_the_wheel_cache_from_the_index(
    sagedock_images: ImageSet, prefix: str, recording_index: tuple[dict[str, str], list[str]]
) -> None:
    # What --offline avoids. The cache already holds every wheel, so the build still works.
    sagedock_images.tag("base")
    env, asked = recording_index
    done = _sagedock_images("build", "base", "--tag", prefix, "-q", env=env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert any(path.startswith("/simple/flask") for path in asked), asked


def _venv_layer(ref: str) -> str:
    """The id of the layer that copies the dependencies' venv into *ref*."""
    out = docker("history", "--no-trunc", "--format", "{{.ID}} {{.CreatedBy}}", ref)
    for line in out.stdout.splitlines():
        layer, _, created_by = line.partition(" ")
        if "COPY dir:" in created_by and "/opt/sagedock/venv " in created_by + " ":
            return layer
    raise AssertionError(f"no venv layer in {ref}:\n{out.stdout}")


def test_list_shows_the_built_base_with_its_size(sagedock_images: ImageSet) -> None:
    info = engine.inspect(sagedock_images.tag("base"))
    done = _sagedock_images("list", timeout=120)
    assert done.returncode == 0, done.stderr
    (row,) = [r for r in done.stdout.splitlines() if r.startswith(f"sagedock/base:{__version__}")]
    assert row.split()[1] == info.created[:10]
    assert f"{info.size / 1e6:.0f} MB" in row
    assert "(no engine" not in done.stderr


def test_bootstrap_base_finds_the_debian_base_present(sagedock_images: ImageSet) -> None:
    sagedock_images.tag("base")  # its build made sure debian:bookworm-slim is there
    done = _sagedock_images("bootstrap-base", "--no-pull", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "bootstrap-base: debian:bookworm-slim is present" in done.stdout


def test_bootstrap_imports_the_cached_root_file_system_under_a_new_name(
    sagedock_images: ImageSet,
) -> None:
    # The no-registry path without touching the real base: import under a name of this test.
    sagedock_images.tag("base")
    cache = default_cache()
    ref = f"sagedock-test-{uuid.uuid4().hex[:8]}/debian:bookworm-slim"
    lines: list[str] = []
    try:
        how = bootstrap.bootstrap_base(cache, ref=ref, try_pull=False, log=lines.append)
        assert how == "bootstrapped", lines
        info = engine.inspect(ref)
        assert info.labels.get("org.sagedock.base.origin") == "debootstrap-minbase"
        out = docker("run", "--rm", ref, "sh", "-c", ". /etc/os-release; echo $VERSION_CODENAME")
        assert out.stdout.strip() == "bookworm", out.stderr
    finally:
        docker("rmi", "-f", ref, timeout=60)
