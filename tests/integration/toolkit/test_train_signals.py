"""Stopping a job: SIGTERM reaches the user's script, SIGKILL follows the grace period, and
`train` works as PID 1 (reaps the zombies reparented to it)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from .jobs import make_job

TRAPPING_SCRIPT = textwrap.dedent(
    """\
    import signal, sys, time
    def on_term(signum, frame):
        print("handler ran for", signal.Signals(signum).name, flush=True)
        sys.exit(7)
    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)
    time.sleep(120)
    """
)

IGNORING_SCRIPT = textwrap.dedent(
    """\
    import signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    time.sleep(120)
    """
)


def _wait_for_ready(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.strip() == "ready":
            return lines
    raise AssertionError(f"the script never became ready: {lines}")


def test_sigterm_is_forwarded_and_the_scripts_handler_runs(tmp_path: Path) -> None:
    job = make_job(tmp_path / "ml", code={"train.py": TRAPPING_SCRIPT})
    proc = job.popen()
    try:
        _wait_for_ready(proc)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "handler ran for SIGTERM" in out
    assert proc.returncode == 7
    assert job.failure is not None
    assert "exited with code 7 after the job was asked to stop (SIGTERM)" in job.failure


def test_sigkill_follows_the_grace_period(tmp_path: Path) -> None:
    job = make_job(tmp_path / "ml", code={"train.py": IGNORING_SCRIPT})
    proc = job.popen(env={"SAGEDOCK_STOP_GRACE_SECONDS": "0.5"})
    try:
        _wait_for_ready(proc)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 137
    assert job.failure is not None
    assert job.failure.startswith("ClientError: train.py was killed by SIGKILL (exit code 137)")
    assert "out-of-memory" not in job.failure  # we killed it, not the kernel


def test_a_script_killed_with_sigkill_gets_the_out_of_memory_hint(tmp_path: Path) -> None:
    script = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"
    job = make_job(tmp_path / "ml", code={"train.py": script})
    assert job.run().returncode == 137
    assert job.failure is not None
    assert "out-of-memory" in job.failure


ORPHANING_SCRIPT = textwrap.dedent(
    """\
    import os, signal, sys, time
    # Leave an orphan: the middle process exits, the grandchild is reparented to PID 1 (us).
    middle = os.fork()
    if middle == 0:
        if os.fork() == 0:
            time.sleep(0.2)
            os._exit(0)
        os._exit(0)
    os.waitpid(middle, 0)

    def zombies():
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = open(f"/proc/{entry}/stat").read()
                except OSError:
                    continue
                if stat.rsplit(")", 1)[1].split()[0] == "Z":
                    found.append(entry)
        return found

    deadline = time.monotonic() + 20
    time.sleep(0.5)
    while zombies() and time.monotonic() < deadline:
        time.sleep(0.1)
    print("pid1 is", open("/proc/1/cmdline").read().split("\\0")[2:4], flush=True)
    print("zombies left:", zombies(), flush=True)

    def on_term(signum, frame):
        print("handler ran", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)
    time.sleep(120)
    """
)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_as_pid_1_it_reaps_orphans_and_still_forwards_sigterm(tmp_path: Path) -> None:
    job = make_job(tmp_path / "ml", code={"train.py": ORPHANING_SCRIPT})
    argv = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", *job.command()]
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], check=False)
    if probe.returncode != 0:
        pytest.skip("cannot create a PID namespace here (needs root)")
    proc = subprocess.Popen(
        argv, env=job.environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = _wait_for_ready(proc)
        pid1 = _child_of(proc.pid)  # `train`, PID 1 inside the namespace
        subprocess.run(["kill", "-TERM", str(pid1)], check=True)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    text = "".join(lines) + out
    assert "pid1 is ['sagedock.toolkit', 'train']" in text
    assert "zombies left: []" in text
    assert "handler ran" in text
    assert job.succeeded


def _child_of(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_sigint_is_forwarded_too(tmp_path: Path) -> None:
    script = TRAPPING_SCRIPT.replace("signal.SIGTERM, on_term", "signal.SIGINT, on_term")
    job = make_job(tmp_path / "ml", code={"train.py": script})
    proc = job.popen()
    try:
        _wait_for_ready(proc)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "handler ran for SIGINT" in out
    assert proc.returncode == 7
