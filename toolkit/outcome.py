"""How a training run ends: ``output/success`` or ``output/failure``, and the exit code.

The one place where errors become exit codes and failure reasons:

- the user's program exited non-zero: its own exit code (AWS's toolkit always exits 1), 128 + N
  when signal N killed it; the reason says what failed and ends with its last stderr lines;
- :class:`~sagedock.toolkit.errors.SagedockError`: exit 1, reason the error's own
  :meth:`~sagedock.toolkit.errors.SagedockError.failure_reason` (``ClientError: <message>``
  for user errors, ``AlgorithmError: <message>`` for every other kind, a PlatformError
  included), the wording the local platform's job records use too;
- anything else is our bug: exit 1, ``AlgorithmError: <type>: <message>`` and the traceback.

SageMaker shows the first 1024 characters of the failure file as the job's FailureReason, so
the reason is built to be useful within them. A failure file the user's program wrote itself is
never overwritten.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import SagedockError
from .launch.process import Completed
from .paths import MlPaths
from .signals import TrainingStopped, signal_name

log = logging.getLogger(__name__)

#: How much of the failure file SageMaker reports as FailureReason.
FAILURE_REASON_LIMIT = 1024
OOM_HINT = (
    "Exit code 137 means the process was killed with SIGKILL, most often by the kernel's "
    "out-of-memory killer: use a larger instance or less memory (batch size, data loading)."
)


@dataclass(frozen=True)
class Outcome:
    """The exit code, and the failure reason (``None`` on success)."""

    exit_code: int
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


SUCCESS = Outcome(0)


def fit_reason(headline: str, tail: Sequence[str], limit: int = FAILURE_REASON_LIMIT) -> str:
    """*headline*, then as many of the *last* lines of *tail* as fit in *limit* characters."""
    text = headline
    kept: list[str] = []
    room = limit - len(headline) - 1
    for line in reversed([line for line in tail if line.strip()]):
        if len(line) + 1 > room:
            if not kept and room > 20:
                kept.append("..." + line[-(room - 4) :])
            break
        kept.append(line)
        room -= len(line) + 1
    if kept:
        text += "\n" + "\n".join(reversed(kept))
    return text


def from_completed(completed: Completed) -> Outcome:
    """The outcome of the user's program."""
    if completed.ok:
        return SUCCESS
    name = completed.command.name
    code = completed.exit_code
    if completed.returncode < 0:
        what = f"{name} was killed by {signal_name(-completed.returncode)} (exit code {code})"
    else:
        what = f"{name} exited with code {code}"
    if completed.stop_signal is not None:
        what += f" after the job was asked to stop ({signal_name(completed.stop_signal)})"
    headline = f"ClientError: {what}."
    if code == 137 and completed.stop_signal is None:
        headline += " " + OOM_HINT
    if completed.stderr_tail:
        headline += " Last lines of its stderr:"
    return Outcome(code, fit_reason(headline, completed.stderr_tail))


def from_exception(error: BaseException) -> Outcome:
    """The outcome of an exception raised while preparing or running the job."""
    if isinstance(error, TrainingStopped):
        name = signal_name(error.signum)
        reason = f"ClientError: the job was stopped ({name}) before it finished."
        return Outcome(128 + error.signum, reason)
    if isinstance(error, KeyboardInterrupt):
        return Outcome(130, "ClientError: interrupted (SIGINT) before training finished.")
    if isinstance(error, SagedockError):
        # The first line says what failed; later lines (a tool's output) are kept from the end.
        first, *rest = error.failure_reason().splitlines() or [""]
        return Outcome(1, fit_reason(first, rest))
    trace = traceback.format_exception(error)
    lines = [line.rstrip() for chunk in trace for line in chunk.splitlines()]
    headline = f"AlgorithmError: {type(error).__name__}: {error}"
    return Outcome(1, fit_reason(headline, lines[:-1]))


def clear_previous(paths: MlPaths) -> None:
    """Remove ``success`` / ``failure`` left by an earlier run in the same tree, so that what
    :func:`report` finds afterwards was written by this run (a program's own failure file
    included)."""
    for leftover in (paths.success_file, paths.failure_file):
        if leftover.is_file():
            log.info("removing %s left by an earlier run", leftover)
            leftover.unlink()


def report(outcome: Outcome, paths: MlPaths) -> int:
    """Write ``output/success`` or ``output/failure`` (unless one exists already) and log the
    result; returns the exit code."""
    paths.output_dir.mkdir(parents=True, exist_ok=True)
    if outcome.failure is None:
        paths.success_file.touch()
        log.info("training succeeded: wrote %s", paths.success_file)
        return outcome.exit_code
    log.error("training failed (exit code %d): %s", outcome.exit_code, outcome.failure)
    try:
        with open(paths.failure_file, "x", encoding="utf-8") as handle:
            handle.write(outcome.failure + "\n")
    except FileExistsError:
        log.info("%s exists (written by the program itself): keeping it", paths.failure_file)
    return outcome.exit_code
