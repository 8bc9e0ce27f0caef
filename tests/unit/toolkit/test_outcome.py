"""Outcome: exit codes, failure reasons useful within 1024 characters, files never clobbered."""

from __future__ import annotations

from pathlib import Path

from sagedock.toolkit.errors import AlgorithmError, PlatformError, UserError
from sagedock.toolkit.launch.process import Command, Completed
from sagedock.toolkit.outcome import SUCCESS, fit_reason, from_completed, from_exception, report
from sagedock.toolkit.paths import MlPaths
from sagedock.toolkit.signals import TrainingStopped

COMMAND = Command(argv=("python", "train.py"), cwd=Path("/"), env={}, name="train.py")


def _completed(returncode: int, tail: tuple[str, ...] = (), stop: int | None = None) -> Completed:
    return Completed(COMMAND, returncode, tail, stop)


def test_the_scripts_exit_code_is_passed_through() -> None:
    outcome = from_completed(_completed(3, ("Traceback", "ValueError: bad lr")))
    assert outcome.exit_code == 3
    assert outcome.failure == (
        "ClientError: train.py exited with code 3. Last lines of its stderr:\n"
        "Traceback\nValueError: bad lr"
    )


def test_killed_by_sigkill_is_137_with_an_out_of_memory_hint() -> None:
    outcome = from_completed(_completed(-9))
    assert outcome.exit_code == 137
    assert outcome.failure is not None
    assert outcome.failure.startswith("ClientError: train.py was killed by SIGKILL (exit code 137)")
    assert "out-of-memory" in outcome.failure


def test_a_stopped_job_says_so_instead_of_blaming_memory() -> None:
    outcome = from_completed(_completed(-9, stop=15))
    assert outcome.failure is not None
    assert "after the job was asked to stop (SIGTERM)" in outcome.failure
    assert "out-of-memory" not in outcome.failure


def test_reason_keeps_the_last_lines_within_1024_chars() -> None:
    tail = [f"line {i} " + "x" * 80 for i in range(100)] + ["ValueError: the cause"]
    reason = fit_reason("ClientError: train.py exited with code 1.", tail)
    assert len(reason) <= 1024
    assert reason.startswith("ClientError: train.py exited with code 1.")
    assert reason.endswith("ValueError: the cause")


def test_one_huge_last_line_is_cut_from_the_front() -> None:
    reason = fit_reason("ClientError: x.", ["y" * 5000 + " the end"])
    assert len(reason) <= 1024 and reason.endswith("the end")


def test_errors_map_to_prefixes() -> None:
    assert from_exception(UserError("bad hp 'lr'")).failure == "ClientError: bad hp 'lr'"
    assert from_exception(AlgorithmError("bug")).failure == "AlgorithmError: bug"
    unexpected = from_exception(KeyError("k"))
    assert unexpected.exit_code == 1
    assert unexpected.failure is not None
    assert unexpected.failure.startswith("AlgorithmError: KeyError: 'k'")
    stopped = from_exception(TrainingStopped(15))
    assert stopped.exit_code == 143


def test_a_platform_error_is_reported_as_an_algorithm_error_with_exit_code_1() -> None:
    # SageMaker's own failure reasons start ClientError or AlgorithmError, never PlatformError.
    error = PlatformError("host 'algo-2' did not resolve within 900 s")
    outcome = from_exception(error)
    assert outcome.failure == "AlgorithmError: host 'algo-2' did not resolve within 900 s"
    assert outcome.exit_code == 1
    assert error.describe().startswith("PlatformError: ")  # logs and CLI messages keep the kind


def test_the_failure_reason_wording_is_the_errors_own() -> None:
    # What output/failure and a local job record's FailureReason say, for every kind.
    assert PlatformError("dns").failure_reason() == "AlgorithmError: dns"
    assert UserError("bad hp").failure_reason() == "ClientError: bad hp"
    assert AlgorithmError("bug").failure_reason() == "AlgorithmError: bug"
    assert from_exception(PlatformError("dns")).failure == PlatformError("dns").failure_reason()


def test_report_writes_success_or_failure(tmp_path: Path) -> None:
    paths = MlPaths(tmp_path)
    assert report(SUCCESS, paths) == 0
    assert paths.success_file.exists()
    assert report(from_completed(_completed(4)), paths) == 4
    assert paths.failure_file.read_text().startswith("ClientError: train.py exited with code 4")


def test_report_never_overwrites_a_failure_file(tmp_path: Path) -> None:
    paths = MlPaths(tmp_path)
    paths.output_dir.mkdir(parents=True)
    paths.failure_file.write_text("the script's own reason")
    assert report(from_completed(_completed(2)), paths) == 2
    assert paths.failure_file.read_text() == "the script's own reason"
