"""``sagedock images build`` from the README's quickstart venv: ``python -m venv`` has an old
setuptools (65 on 3.11; none from 3.12) and no ``wheel``, so the sagedock wheel must not be
built in place there."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from sagedock.toolkit.images.wheelhouse import build_sagedock_wheel

REPO = Path(__file__).resolve().parents[3]

BUILD_IN_PLAIN_VENV = """
import sys
from pathlib import Path
from sagedock.toolkit.images.wheelhouse import build_requirements_met, build_sagedock_wheel
source, dest = Path(sys.argv[1]), Path(sys.argv[2])
print("in-place:", build_requirements_met(source / "pyproject.toml"))
print(build_sagedock_wheel(source, dest))
"""


def _run(*command: str | Path) -> str:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    return done.stdout


def _members(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return sorted(archive.namelist())


def test_the_sagedock_wheel_builds_from_a_plain_python_m_venv(tmp_path: Path) -> None:
    reference = build_sagedock_wheel(REPO, tmp_path / "reference")
    plain = tmp_path / "plain"
    _run(sys.executable, "-m", "venv", plain)
    python = plain / "bin" / "python"
    _run(python, "-m", "pip", "install", "--quiet", "--no-deps", reference)

    out = _run(python, "-c", BUILD_IN_PLAIN_VENV, REPO, tmp_path / "built")

    # the case the fix is for: this venv cannot build in place (checked, so the test cannot
    # pass vacuously where venvs one day ship a new setuptools)
    assert "in-place: False" in out
    built = Path(out.strip().splitlines()[-1])
    assert built.is_file()
    assert built.name == reference.name
    assert _members(built) == _members(reference)
