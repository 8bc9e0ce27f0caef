"""Image tests skip without a Docker engine, except where SAGEDOCK_REQUIRE_DOCKER (CI) says they
must run: then they fail, so a CI run cannot go green without them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.images import REQUIRE_ENV, docker_required

REPO = Path(__file__).resolve().parents[3]
# Any test using the docker_engine fixture; it never gets to run here.
IMAGE_TEST = "tests/images/test_base_image.py::test_the_command_given_to_docker_run_becomes_pid_1"


def _run_image_test_without_docker(tmp_path: Path, require: str | None) -> str:
    # A PATH with no docker on it: the fixture's "not installed" branch, reached for real.
    env = {k: v for k, v in os.environ.items() if k != REQUIRE_ENV}
    env["PATH"] = str(tmp_path)
    if require is not None:
        env[REQUIRE_ENV] = require
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", IMAGE_TEST],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout + done.stderr


def test_without_an_engine_image_tests_skip_saying_why(tmp_path: Path) -> None:
    out = _run_image_test_without_docker(tmp_path, None)
    assert "1 skipped" in out, out[-2000:]
    assert "no Docker engine can run here: the docker command is not installed" in out


def test_with_sagedock_require_docker_a_missing_engine_fails_the_image_tests(
    tmp_path: Path,
) -> None:
    out = _run_image_test_without_docker(tmp_path, "1")
    assert "1 error" in out, out[-2000:]
    assert "skipped" not in out
    assert f"{REQUIRE_ENV} is set, so the image tests must run" in out


@pytest.mark.parametrize(
    ("value", "required"),
    [("1", True), ("true", True), ("yes", True), ("", False), ("0", False), ("false", False)],
)
def test_the_variable_reads_like_a_boolean(value: str, required: bool) -> None:
    assert docker_required({REQUIRE_ENV: value}) is required
    assert docker_required({}) is False


def test_ci_sets_the_variable_before_make_test() -> None:
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert f"export {REQUIRE_ENV}=1" in lines
    assert lines.index(f"export {REQUIRE_ENV}=1") < lines.index("make test")
