"""Shared fixtures. Each fixture family lives in its own module under tests/fixtures/."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.images",
    "tests.fixtures.xgboost",
    "tests.fixtures.serving",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
# Small real datasets shared by the team; tests that need them skip when the folder is absent.
SHARED_TESTDATA = REPO_ROOT.parent / "shared" / "testdata"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_testdata() -> Path:
    if not SHARED_TESTDATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_TESTDATA}")
    return SHARED_TESTDATA
