"""Installing the user's dependencies with the interpreter that will run their code.

``requirements.txt`` in the code dir is installed with ``python -m pip install -r`` (the running
interpreter, so the packages land where the script will import them); a code dir that is a
package (``setup.py`` / ``pyproject.toml``) is installed with ``pip install .``, together with
its requirements. pip's output is streamed live; a failure is a UserError with pip's last lines.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from .errors import UserError
from .launch.process import Command, Completed, run

#: pip's own chatter that is noise in a training log.
_PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


def _pip(
    args: list[str], *, cwd: Path, python: str, environ: Mapping[str, str] | None
) -> Completed:
    base = os.environ if environ is None else environ
    command = Command(
        argv=(python, "-m", "pip", "install", *args),
        cwd=cwd,
        env={**base, **_PIP_ENV},
        name="pip",
    )
    return run(command)


def _failure(what: str, completed: Completed) -> UserError:
    tail = "\n".join(completed.stderr_tail[-15:])
    return UserError(
        f"installing {what} failed (pip exited with code {completed.exit_code}); "
        f"fix the requirements and retry. pip said:\n{tail}"
    )


def install_requirements(
    requirements: Path, *, python: str = sys.executable, environ: Mapping[str, str] | None = None
) -> None:
    """``python -m pip install -r requirements`` in the file's directory.

    :raises UserError: pip failed; the message names the file and ends with pip's last lines.
    """
    completed = _pip(
        ["-r", requirements.name], cwd=requirements.parent, python=python, environ=environ
    )
    if not completed.ok:
        raise _failure(f"the requirements in {requirements}", completed)


def install_package(
    package_dir: Path, *, python: str = sys.executable, environ: Mapping[str, str] | None = None
) -> None:
    """``python -m pip install . [-r requirements.txt]`` in *package_dir*.

    :raises UserError: pip failed, naming the package directory.
    """
    args = ["."]
    if (package_dir / "requirements.txt").is_file():
        args += ["-r", "requirements.txt"]
    completed = _pip(args, cwd=package_dir, python=python, environ=environ)
    if not completed.ok:
        raise _failure(f"the package in {package_dir} and its requirements", completed)
