"""Build /opt/ml trees in temporary directories and run `sagedock train` on them as a platform
would: a separate process with SAGEMAKER_BASE_DIR pointing at the tree."""

from __future__ import annotations

import io
import json
import os
import site
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: A user script that records what it was given, then exits with $EXIT_CODE (default 0).
DUMP_SCRIPT = textwrap.dedent(
    """\
    import json, os, sys
    seen = {
        "argv": sys.argv[1:],
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "stdout_is_unbuffered": os.environ.get("PYTHONUNBUFFERED"),
    }
    os.makedirs(os.environ["SM_OUTPUT_DATA_DIR"], exist_ok=True)
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "seen.json"), "w") as f:
        json.dump(seen, f)
    print("dump script ran")
    sys.exit(int(os.environ.get("EXIT_CODE", "0")))
    """
)


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without contract variables that could leak into a job, nor
    PYTHONUNBUFFERED (``train`` must set it for the script itself)."""
    prefixes = (
        "SM_", "SAGEMAKER_", "SAGEDOCK_", "TRAINING_JOB_NAME", "CUDA_VISIBLE_DEVICES",
        "PYTHONUNBUFFERED",
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**env, **extra}


@dataclass
class Job:
    base: Path

    @property
    def config_dir(self) -> Path:
        return self.base / "input" / "config"

    @property
    def code_dir(self) -> Path:
        return self.base / "code"

    @property
    def failure(self) -> str | None:
        path = self.base / "output" / "failure"
        return path.read_text() if path.exists() else None

    @property
    def succeeded(self) -> bool:
        return (self.base / "output" / "success").exists()

    def seen(self) -> dict[str, Any]:
        """What DUMP_SCRIPT recorded."""
        return json.loads((self.base / "output" / "data" / "seen.json").read_text())

    def write_config(self, name: str, document: Any) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / name).write_text(json.dumps(document))

    def environ(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        return clean_environ(SAGEMAKER_BASE_DIR=str(self.base), **(env or {}))

    def command(self, python: str = sys.executable, *args: str) -> list[str]:
        return [python, "-m", "sagedock.toolkit", "train", *args]

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(python, *args),
            env=self.environ(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(sys.executable, *args),
            env=self.environ(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def make_job(
    base: Path,
    *,
    program: str | None = "train.py",
    code: Mapping[str, str] | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    channels: Mapping[str, Mapping[str, str]] | None = None,
    resource_config: Mapping[str, Any] | None = None,
) -> Job:
    """A job tree under *base*.

    *code* files go into the code dir; hyperparameters are JSON-encoded value by value, as the
    SageMaker SDK writes them; each channel gets an inputdataconfig entry and its files.
    """
    job = Job(base)
    hps = dict(hyperparameters or {})
    if program is not None:
        hps.setdefault("sagemaker_program", program)
    job.write_config("hyperparameters.json", {k: json.dumps(v) for k, v in hps.items()})
    job.write_config(
        "resourceconfig.json",
        resource_config or {"current_host": "algo-1", "hosts": ["algo-1"]},
    )
    channels = channels or {}
    job.write_config(
        "inputdataconfig.json", {name: {"TrainingInputMode": "File"} for name in channels}
    )
    for name, files in channels.items():
        for rel, content in files.items():
            path = base / "input" / "data" / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    for rel, content in (code or {}).items():
        path = job.code_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return job


def make_tarball(archive: Path, files: Mapping[str, str]) -> Path:
    """A gzipped tarball of regular files (name -> text)."""
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def isolated_venv(path: Path) -> Path:
    """A venv whose own site-packages receive pip installs, but which sees this venv's packages
    (sagedock, pip) through a .pth file: installing into it leaves the shared venv untouched.
    Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    target = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    # addsitedir, not a plain path line, so that the parent's own .pth files (the editable
    # sagedock install) are processed too.
    lines = [f"import site; site.addsitedir({p!r})" for p in parents]
    Path(target, "parent-venv.pth").write_text("\n".join(lines) + "\n")
    return python
