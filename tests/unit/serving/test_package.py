"""What ``sagedock.serving`` itself offers: the public API, re-exported without weight."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sagedock.serving as serving
from sagedock.serving import errors, handler


def test_the_documented_imports_come_from_the_package_root() -> None:
    from sagedock.serving import NO_CONTENT, InferenceContext, InferenceError

    assert InferenceError is errors.InferenceError
    assert NO_CONTENT is handler.NO_CONTENT
    assert InferenceContext is handler.InferenceContext


@pytest.mark.parametrize("name", serving.__all__)
def test_every_public_name_is_the_defining_modules_object(name: str) -> None:
    value = getattr(serving, name)
    assert value is getattr(errors, name, None) or value is getattr(handler, name, None)
    assert name in dir(serving)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        serving.NoSuchThing  # noqa: B018


def test_importing_the_package_and_its_errors_stays_light() -> None:
    probe = (
        "import sys\n"
        "import sagedock.serving\n"
        "from sagedock.serving import BadRequest, InferenceError\n"
        "heavy = [m for m in ('flask', 'werkzeug', 'numpy', 'gunicorn') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == ""
