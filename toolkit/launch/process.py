"""Run one child process: argv list (never a shell), its own process group, output streamed.

The child's stdout and stderr are copied to ours line by line as they come (so logs are live
in CloudWatch or a terminal), and the last lines of its stderr are kept for the failure
reason. Waiting is done by :class:`~sagedock.toolkit.signals.ChildSupervisor`, which forwards
SIGTERM/SIGINT to the child's process group.
"""

from __future__ import annotations

import collections
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import UserError
from ..signals import DEFAULT_GRACE_SECONDS, ChildSupervisor, kill_group

log = logging.getLogger(__name__)

#: How many trailing stderr lines :class:`Completed` keeps.
TAIL_LINES = 40
_MAX_LINE = 64 * 1024


@dataclass(frozen=True)
class Command:
    """A process to start: argv, working directory, complete environment."""

    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    name: str
    """What to call it in logs and failure reasons (``train.py``, ``pip``)."""

    def display(self) -> str:
        """The argv as one shell-quoted line, for logs only."""
        return shlex.join(self.argv)


@dataclass(frozen=True)
class Completed:
    """How a :class:`Command` ended."""

    command: Command
    returncode: int
    """As :class:`subprocess.Popen` reports it: negative when killed by a signal."""
    stderr_tail: tuple[str, ...]
    stop_signal: int | None = None
    """The stop signal we forwarded while it ran, if the job was asked to stop."""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def exit_code(self) -> int:
        """The shell-style exit status: the code itself, or 128 + signal number."""
        return 128 - self.returncode if self.returncode < 0 else self.returncode


def _pump(source: BinaryIO, sink: BinaryIO, tail: collections.deque[str] | None) -> None:
    with source:
        while line := source.readline(_MAX_LINE):
            try:
                sink.write(line)
                sink.flush()
            except (OSError, ValueError):
                pass  # our own stdout is gone; keep draining so the child never blocks
            if tail is not None:
                tail.append(line.decode("utf-8", "replace").rstrip("\r\n"))


def run(
    command: Command,
    *,
    grace_period: float = DEFAULT_GRACE_SECONDS,
    stdout: BinaryIO | None = None,
    stderr: BinaryIO | None = None,
    tail_lines: int = TAIL_LINES,
) -> Completed:
    """Run *command* to completion, streaming its output to *stdout*/*stderr* (default: ours).

    :raises UserError: the program cannot be started (missing, not executable, bad format).
    """
    out = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr.buffer
    log.info("running %s", command.display())
    try:
        proc = subprocess.Popen(
            list(command.argv),
            cwd=command.cwd,
            env=dict(command.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise UserError(
            f"cannot start {command.name} ({command.display()}): {_start_failure(exc, command)}"
        ) from None
    supervisor = ChildSupervisor(grace_period=grace_period)
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            threading.Thread(target=_pump, args=(proc.stdout, out, None), daemon=True),
            threading.Thread(target=_pump, args=(proc.stderr, err, tail), daemon=True),
        ]
        for pump in pumps:
            pump.start()
        returncode = supervisor.wait(proc)
    except BaseException:
        # Stopped (or failed) before the supervisor took over or while it waited: never leave
        # the child's process group running behind us.
        kill_group(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    for pump in pumps:
        # A grandchild that left the process group may still hold the pipes; do not hang on it.
        pump.join(timeout=5.0)
    return Completed(
        command=command,
        returncode=returncode,
        stderr_tail=tuple(tail),
        stop_signal=supervisor.stop_signal,
    )


def _start_failure(exc: OSError, command: Command) -> str:
    """Why the program did not start; for a file that exists yet is "not found", what is."""
    program = Path(command.cwd, command.argv[0])
    if isinstance(exc, FileNotFoundError) and program.is_file():
        try:
            with program.open("rb") as handle:
                first = handle.readline(256).strip().decode("utf-8", "replace")
        except OSError:
            first = ""
        if first.startswith("#!"):
            return f"the interpreter on its first line ({first}) does not exist"
        return f"{exc.strerror} (the file exists: its interpreter or loader does not)"
    return str(exc)


def child_environ(
    base: Mapping[str, str], extra: Mapping[str, str], code_dir: Path
) -> dict[str, str]:
    """The user program's environment: *base*, then *extra* (``SM_*`` ...), unbuffered Python
    output and the code dir first on ``PYTHONPATH``."""
    env = {**base, **extra, "PYTHONUNBUFFERED": "1"}
    inherited = base.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(code_dir), inherited) if p)
    return env
