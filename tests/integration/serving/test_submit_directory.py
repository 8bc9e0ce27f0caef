"""SAGEMAKER_SUBMIT_DIRECTORY: the user code from a directory, a file:// URI, a local tarball or
an s3:// tarball (a real S3 API: moto's server), instead of <model dir>/code."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.fixtures.s3 import S3Server
from tests.fixtures.serving import ServeFactory, write_model

CODE = {
    "inference.py": "from helper import WORD\n"
    "def model_fn(model_dir): return WORD\n"
    "def predict_fn(data, model): return {'word': model}\n",
    "helper.py": "WORD = 'fetched'\n",
}


def code_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in CODE.items():
        (root / name).write_text(text)
    return root


def tarball(source: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(source.iterdir()):
            archive.add(path, arcname=path.name)
    return buffer.getvalue()


@pytest.mark.parametrize("form", ["dir", "file-uri", "tarball"])
def test_local_submit_directory(serve_model: ServeFactory, tmp_path: Path, form: str) -> None:
    source = code_dir(tmp_path / "src")
    if form == "dir":
        uri = str(source)
    elif form == "file-uri":
        uri = f"file://{source}"
    else:
        archive = tmp_path / "sourcedir.tar.gz"
        archive.write_bytes(tarball(source))
        uri = str(archive)
    model = write_model(tmp_path / "model", files={"weights": "x"})
    server = serve_model(
        model, env={"SAGEMAKER_SUBMIT_DIRECTORY": uri, "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    )
    assert server.invoke("[1]").json() == {"word": "fetched"}


def test_s3_submit_directory(
    serve_model: ServeFactory, tmp_path: Path, s3_server: S3Server
) -> None:
    bucket = s3_server.new_bucket()
    s3_server.client().put_object(
        Bucket=bucket, Key="jobs/sourcedir.tar.gz", Body=tarball(code_dir(tmp_path / "src"))
    )
    model = write_model(tmp_path / "model", files={"weights": "x"})
    env = {
        **s3_server.environ,
        "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{bucket}/jobs/sourcedir.tar.gz",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
    }
    server = serve_model(model, env=env)
    assert server.invoke("[1]").json() == {"word": "fetched"}


def test_missing_s3_submit_directory_stops_serve(
    serve_model: ServeFactory, tmp_path: Path, s3_server: S3Server
) -> None:
    bucket = s3_server.new_bucket()
    model = write_model(tmp_path / "model", files={"weights": "x"})
    env = {**s3_server.environ, "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{bucket}/nope.tar.gz"}
    server = serve_model(model, env=env, wait=False)
    assert server.wait(60) != 0
    assert "ClientError" in server.log
    assert "nope.tar.gz" in server.log
