"""The user's entry point: what kind of program it is and how one process runs it.

The kinds follow AWS's toolkit, plus ``pyproject.toml`` packages:

- a name ending ``.sh``: a shell script. One that starts with ``#!`` is made executable and
  run directly, so the interpreter it names runs it (``#!/bin/bash`` matters where ``/bin/sh``
  is dash); one without runs as ``/bin/sh <script> args...``, as a shell would run it;
- a code dir with ``setup.py`` or a ``pyproject.toml`` that declares a project or build
  system: a package, installed with pip and run as ``python -m <name without .py>``;
- a name ending ``.py``: a Python script, ``python <script> args...``;
- anything else: an executable in the code dir, run directly (made executable first, as AWS's
  toolkit does).

Programs that run directly get the owner's execute bit added (their other mode bits are kept)
and are started by absolute path with an argv list; no shell string is ever built.
"""

from __future__ import annotations

import enum
import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError


class EntryKind(enum.Enum):
    PYTHON_SCRIPT = "python script"
    PYTHON_PACKAGE = "python package"
    SHELL_SCRIPT = "shell script"
    EXECUTABLE = "executable"


def is_package_dir(code_dir: Path) -> bool:
    """Whether *code_dir* is an installable Python project (``setup.py`` / ``pyproject.toml``)."""
    if (code_dir / "setup.py").is_file():
        return True
    pyproject = code_dir / "pyproject.toml"
    if not pyproject.is_file():
        return False
    try:
        document = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{pyproject} is not valid TOML: {exc}") from None
    # A pyproject.toml that only configures tools (ruff, black) does not make a package.
    return "project" in document or "build-system" in document


def classify(code_dir: Path, entry: str) -> EntryKind:
    """The kind of *entry* (a file name relative to *code_dir*, or a module for packages)."""
    if entry.endswith(".sh"):
        return EntryKind.SHELL_SCRIPT
    if is_package_dir(code_dir):
        return EntryKind.PYTHON_PACKAGE
    if entry.endswith(".py"):
        return EntryKind.PYTHON_SCRIPT
    return EntryKind.EXECUTABLE


@dataclass(frozen=True)
class Program:
    """The user's program in the code dir."""

    entry: str
    """As the user named it (``SAGEMAKER_PROGRAM`` / ``sagemaker_program``): ``train.py``."""
    kind: EntryKind
    code_dir: Path
    has_shebang: bool = False
    """Whether the file starts with ``#!`` (read by :meth:`find`)."""

    @classmethod
    def find(cls, code_dir: Path, entry: str) -> Program:
        """The program *entry* in *code_dir*.

        :raises UserError: the entry point is not there (the message lists what is).
        """
        kind = classify(code_dir, entry)
        path = code_dir / entry
        if kind is not EntryKind.PYTHON_PACKAGE and not path.is_file():
            present = sorted(p.name for p in code_dir.iterdir()) if code_dir.is_dir() else []
            raise UserError(
                f"the entry point {entry!r} is not in the code directory {code_dir} "
                f"(it holds: {', '.join(present) or 'nothing'}); check sagemaker_program / "
                "SAGEMAKER_PROGRAM and sagemaker_submit_directory"
            )
        shebang = kind is EntryKind.SHELL_SCRIPT and _starts_with_shebang(path)
        return cls(entry=entry, kind=kind, code_dir=code_dir, has_shebang=shebang)

    @property
    def path(self) -> Path:
        return self.code_dir / self.entry

    @property
    def module(self) -> str:
        """The module a package entry runs as (``train.py`` -> ``train``)."""
        return self.entry[:-3] if self.entry.endswith(".py") else self.entry

    @property
    def runs_directly(self) -> bool:
        """Whether the program is executed itself: an executable, or a ``#!`` shell script."""
        return self.kind is EntryKind.EXECUTABLE or (
            self.kind is EntryKind.SHELL_SCRIPT and self.has_shebang
        )

    def command_argv(self) -> list[str]:
        """How a shell script or executable starts (no Python, no arguments): the file itself
        when it runs directly, else ``/bin/sh <script>``."""
        if self.runs_directly:
            return [str(self.path)]
        return ["/bin/sh", self.entry]

    def argv(self, python: str, args: list[str]) -> list[str]:
        """The command that runs the program once, in the code dir, with *args*."""
        if self.kind is EntryKind.PYTHON_PACKAGE:
            return [python, "-m", self.module, *args]
        if self.kind is EntryKind.PYTHON_SCRIPT:
            return [python, self.entry, *args]
        return [*self.command_argv(), *args]

    def make_executable(self) -> None:
        """Add the owner's execute bit to a program that runs directly, keeping its other bits.

        :raises UserError: it is not executable and its mode cannot be changed (a read-only
            mount, a file owned by another user).
        """
        if not self.runs_directly or os.access(self.path, os.X_OK):
            return
        try:
            self.path.chmod(self.path.stat().st_mode | stat.S_IXUSR)
        except OSError as exc:
            raise UserError(
                f"the entry point {self.entry!r} is not executable and cannot be made so "
                f"({exc.strerror}); set its execute bit in the image or source tarball"
            ) from None


def _starts_with_shebang(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == b"#!"
