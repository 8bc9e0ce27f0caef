"""Shared fixtures. Each fixture family lives in its own module under tests/fixtures/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# Hypothesis profiles: "ci" (the default: hypothesis's own defaults, and the blob to reproduce a
# failure printed) and "thorough" for a longer local hunt, e.g. on the "any bytes" properties
# of tests/fuzz.py: SAGEDOCK_HYPOTHESIS_PROFILE=thorough .venv/bin/pytest tests/unit -k any_bytes
settings.register_profile("ci", print_blob=True)
settings.register_profile("thorough", max_examples=5000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("SAGEDOCK_HYPOTHESIS_PROFILE", "ci"))

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.images",
    "tests.fixtures.xgboost",
    "tests.fixtures.serving",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
# Small real datasets, kept in the repository so that every clone runs the tests that read them
# (tests/data/xgboost/README.md says where each file comes from).
TESTDATA = REPO_ROOT / "tests" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_testdata() -> Path:
    """tests/data: the test files the team shares, laid out as ``xgboost/...``.

    Never a skip: the files are part of the repository, so a missing one is a broken checkout.
    """
    return TESTDATA
