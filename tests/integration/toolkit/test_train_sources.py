"""Where the code comes from and what it needs: s3:// source tarballs and requirements.txt."""

from __future__ import annotations

import zipfile
from pathlib import Path

from tests.fixtures.s3 import S3Server

from .jobs import DUMP_SCRIPT, isolated_venv, make_job, make_tarball


def test_s3_sourcedir_tarball_is_downloaded_and_run(tmp_path: Path, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    archive = make_tarball(tmp_path / "sourcedir.tar.gz", {"train.py": DUMP_SCRIPT})
    s3_server.client().upload_file(str(archive), bucket, "job/source/sourcedir.tar.gz")
    uri = f"s3://{bucket}/job/source/sourcedir.tar.gz"
    job = make_job(tmp_path / "ml", hyperparameters={"sagemaker_submit_directory": uri})
    result = job.run(env=s3_server.environ)
    assert result.returncode == 0, result.stderr
    assert (job.code_dir / "train.py").read_text() == DUMP_SCRIPT
    assert job.seen()["env"]["SM_MODULE_DIR"] == uri


def test_missing_s3_sourcedir_fails_naming_the_uri(tmp_path: Path, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    uri = f"s3://{bucket}/nothing/sourcedir.tar.gz"
    job = make_job(tmp_path / "ml", hyperparameters={"sagemaker_submit_directory": uri})
    assert job.run(env=s3_server.environ).returncode != 0
    assert job.failure is not None
    assert uri in job.failure


def _wheel(directory: Path, name: str, module_text: str) -> Path:
    """A minimal pure-Python wheel, built by hand so that no build tool or index is needed."""
    wheel = directory / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{name}.py", module_text)
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        archive.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr(f"{info}/RECORD", "")
    return wheel


def test_requirements_are_installed_with_the_running_interpreter(tmp_path: Path) -> None:
    job = make_job(
        tmp_path / "ml",
        code={
            "train.py": "import localdep, sys\nsys.exit(0 if localdep.ANSWER == 42 else 1)\n",
            "requirements.txt": "--no-index\n./wheels/localdep-1.0-py3-none-any.whl\n",
        },
    )
    (job.code_dir / "wheels").mkdir()
    _wheel(job.code_dir / "wheels", "localdep", "ANSWER = 42\n")
    python = isolated_venv(tmp_path / "venv")
    result = job.run(python=str(python))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert list((tmp_path / "venv").glob("lib/python*/site-packages/localdep.py"))


def test_a_failing_requirements_install_is_a_client_error_with_pips_words(tmp_path: Path) -> None:
    job = make_job(
        tmp_path / "ml",
        code={
            "train.py": DUMP_SCRIPT,
            "requirements.txt": "--no-index\nno-such-package-sagedock-test==1.0\n",
        },
    )
    python = isolated_venv(tmp_path / "venv")
    result = job.run(python=str(python))
    assert result.returncode == 1
    assert job.failure is not None
    assert job.failure.startswith("ClientError: installing the requirements in ")
    assert "no-such-package-sagedock-test" in job.failure[:1024]
    assert not (job.base / "output/data/seen.json").exists()
