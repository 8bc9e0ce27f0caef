"""The online path of the Dockerfiles: a plain ``docker build`` from the checkout, no build
args, installs from a package index (and sagedock from the source tree).

This machine's builds cannot reach the public index, so the index here is one this test
serves on the Docker bridge from the wheel cache the fixture's build filled (the layout pip
expects of an index: ``/simple/<project>/`` listing the files). What it shows: the Dockerfile
takes the online branch without build args, reads the requirements from pyproject.toml and
builds a working image from an index over HTTP. What it cannot show: that the public index
serves what pyproject.toml asks for on the day.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sagedock.toolkit.images.build import default_cache
from sagedock.toolkit.images.wheelhouse import DIST_FILES, DIST_PACKAGES, normalise
from sagedock.toolkit.version import __version__
from tests.fixtures.images import REPO, ImageSet
from tests.images.support import docker, run_container

pytestmark = [pytest.mark.docker, pytest.mark.slow]


class _Index(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _bridge_gateway(image: str) -> str:
    """The host's address on the default Docker network, as a build container sees it."""
    out = run_container(image, "cat", "/proc/net/route", timeout=120)
    for line in out.stdout.splitlines()[1:]:
        fields = line.split()
        if fields[1] == "00000000":  # the default route
            raw = bytes.fromhex(fields[2])[::-1]  # little-endian
            return ".".join(str(b) for b in raw)
    raise AssertionError(f"no default route in the container:\n{out.stdout}")


@pytest.fixture
def index_on_the_bridge(sagedock_images: ImageSet, tmp_path: Path) -> Iterator[str]:
    """``http://HOST:PORT/simple`` serving every wheel of the image cache."""
    gateway = _bridge_gateway(sagedock_images.tag("base"))
    root = tmp_path / "index"
    for wheel in sorted((default_cache() / "wheels").glob("*.whl")):
        project = root / "simple" / normalise(wheel.name.split("-")[0])
        project.mkdir(parents=True, exist_ok=True)
        shutil.copy2(wheel, project / wheel.name)
    handler = functools.partial(_Index, directory=str(root))
    server = http.server.ThreadingHTTPServer((gateway, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{gateway}:{server.server_port}/simple"
    finally:
        server.shutdown()
        server.server_close()


def _clean_checkout(dest: Path) -> Path:
    """What a fresh clone holds of the files an image uses (no .venv, caches or build
    leftovers: the legacy builder here ignores Dockerfile.dockerignore)."""
    dest.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "wheelhouse", "sagedock")
    for name in DIST_FILES:
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, dest / name)
    for name in (*DIST_PACKAGES, "Dockerfiles"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    return dest


@pytest.mark.timeout(1200)
def test_a_plain_docker_build_of_base_from_the_checkout_installs_from_the_index(
    index_on_the_bridge: str, tmp_path: Path
) -> None:
    checkout = _clean_checkout(tmp_path / "checkout")
    host = index_on_the_bridge.split("/")[2].split(":")[0]
    tag = "sagedock-test/online-base:latest"
    built = docker(
        "build", "-t", tag, "-f", str(checkout / "Dockerfiles" / "base" / "Dockerfile"),
        "--build-arg", f"PIP_INDEX_URL={index_on_the_bridge}",
        "--build-arg", f"PIP_TRUSTED_HOST={host}",
        str(checkout),
        timeout=1100,
    )  # fmt: skip
    try:
        assert built.returncode == 0, (built.stdout + built.stderr)[-4000:]
        # the dependencies came from the index, sagedock was built from the source tree
        assert f"Looking in indexes: {index_on_the_bridge}" in built.stdout
        assert "Building wheel for sagedock" in built.stdout
        probe = "sagedock --version && pip check && python -c 'import flask, boto3, orjson'"
        out = run_container(tag, "sh", "-c", probe, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert __version__ in out.stdout
        out = run_container(tag, "sh", "-c", "echo $$; command -v train; command -v serve")
        bin_dir = "/opt/sagedock/venv/bin"
        assert out.stdout.split() == ["1", f"{bin_dir}/train", f"{bin_dir}/serve"]
    finally:
        docker("rmi", "-f", tag, timeout=60)
