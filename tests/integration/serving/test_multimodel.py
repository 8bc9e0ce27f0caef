"""Multi-model endpoints (SAGEMAKER_MULTI_MODEL=true): the /models API, target-model
invocations, and the per-worker least-recently-used cache under its memory budget."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from tests.fixtures.serving import ServeFactory, ServeProcess, write_model

MME_CODE = """
    import os
    from pathlib import Path
    import numpy as np

    LOADS = Path(os.environ["TEST_LOADS"])

    def model_fn(model_dir, context):
        model_dir = Path(model_dir)
        with open(LOADS, "a") as log:
            log.write(context.model_name + "\\n")
        size_file = model_dir / "size_mb"
        size_mb = int(size_file.read_text()) if size_file.exists() else 0
        ballast = np.ones(size_mb * 1024 * 1024 // 8)  # resident memory the model takes
        return {"name": (model_dir / "name").read_text(), "ballast": ballast}

    def predict_fn(data, model, context):
        return {"model": model["name"], "target": context.target_model, "input": data}
"""


def make_models(root: Path, names: list[str], size_mb: int = 0) -> Path:
    models = root / "models"
    write_model(models, MME_CODE)
    for name in names:
        write_model(models / name / "model", files={"name": name, "size_mb": str(size_mb)})
    return models


def loads(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def start(serve_model: ServeFactory, tmp_path: Path, models: Path, **env: str) -> ServeProcess:
    return serve_model(
        models,
        env={
            "SAGEMAKER_MULTI_MODEL": "true",
            "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
            "TEST_LOADS": str(tmp_path / "loads.log"),
            **env,
        },
    )


def test_load_list_describe_invoke_unload(serve_model: ServeFactory, tmp_path: Path) -> None:
    models = make_models(tmp_path, ["alpha", "beta"])
    server = start(serve_model, tmp_path, models)
    assert server.get("/ping").status_code == 200
    assert server.get("/models").json() == {"models": []}

    url = str(models / "alpha" / "model")
    response = server.post("/models", json={"model_name": "alpha", "url": url})
    assert response.status_code == 200, response.text
    assert server.get("/models").json() == {"models": [{"modelName": "alpha", "modelUrl": url}]}
    assert server.get("/models/alpha").json() == {"modelName": "alpha", "modelUrl": url}

    response = server.post(
        "/models/alpha/invoke", data="[1]", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json()["model"] == "alpha"

    response = server.delete("/models/alpha")
    assert response.status_code == 200
    assert response.json() == {"status": 'Model "alpha" unregistered'}
    assert server.get("/models").json() == {"models": []}
    assert server.post("/models/alpha/invoke", data="[1]").status_code == 404


def test_model_api_errors_are_404_409_and_400(serve_model: ServeFactory, tmp_path: Path) -> None:
    models = make_models(tmp_path, ["alpha"])
    server = start(serve_model, tmp_path, models)
    url = str(models / "alpha" / "model")
    assert server.post("/models", json={"model_name": "a", "url": url}).status_code == 200
    conflict = server.post("/models", json={"model_name": "a", "url": url})
    assert conflict.status_code == 409
    assert conflict.json()["type"] == "ModelAlreadyLoaded"
    missing = server.post("/models", json={"model_name": "b", "url": str(models / "nope")})
    assert missing.status_code == 404
    assert server.get("/models/b").status_code == 404
    assert server.delete("/models/b").status_code == 404
    assert server.post("/models", data="not json").status_code == 400
    outside = server.post("/models", json={"model_name": "c", "url": "/etc"})
    assert outside.status_code == 404


def test_invocations_with_a_target_model_load_it_on_first_use(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    models = make_models(tmp_path, ["alpha", "beta"])
    with tarfile.open(models / "gamma.tar.gz", "w:gz") as archive:
        gamma = write_model(tmp_path / "gamma", files={"name": "gamma"})
        archive.add(gamma / "name", arcname="name")
    server = start(serve_model, tmp_path, models)
    for target in ("alpha", "beta", "alpha", "gamma.tar.gz"):
        response = server.invoke("[1]", **{"X-Amzn-SageMaker-Target-Model": target})
        assert response.status_code == 200, response.text
        assert response.json()["target"] == target
    assert loads(tmp_path / "loads.log") == ["alpha", "beta", "gamma.tar.gz"]  # cached
    listed = [m["modelName"] for m in server.get("/models").json()["models"]]
    assert listed == ["alpha", "beta", "gamma.tar.gz"]
    missing = server.invoke("[1]", **{"X-Amzn-SageMaker-Target-Model": "delta"})
    assert missing.status_code == 404
    assert "delta" in missing.json()["message"]
    escape = server.invoke("[1]", **{"X-Amzn-SageMaker-Target-Model": "../../etc"})
    assert escape.status_code == 404
    assert server.invoke("[1]").status_code == 400  # a multi-model endpoint needs a target


def test_least_recently_used_models_are_unloaded_to_stay_in_budget(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    models = make_models(tmp_path, ["a", "b", "c"], size_mb=40)
    server = start(serve_model, tmp_path, models, SAGEDOCK_MODEL_CACHE_MB="100")

    def call(name: str) -> str:
        response = server.invoke("[0]", **{"X-Amzn-SageMaker-Target-Model": name})
        assert response.status_code == 200, response.text
        return str(response.json()["model"])

    assert [call("a"), call("b"), call("a"), call("c")] == ["a", "b", "a", "c"]
    # c did not fit beside a and b: b (least recently used) was unloaded, a stayed.
    assert loads(tmp_path / "loads.log") == ["a", "b", "c"]
    call("a")
    assert loads(tmp_path / "loads.log") == ["a", "b", "c"]
    call("b")  # loaded again
    assert loads(tmp_path / "loads.log") == ["a", "b", "c", "b"]
    assert "unloading least recently used model b" in server.log


def test_a_model_larger_than_the_budget_is_507(serve_model: ServeFactory, tmp_path: Path) -> None:
    models = make_models(tmp_path, ["huge"], size_mb=80)
    server = start(serve_model, tmp_path, models, SAGEDOCK_MODEL_CACHE_MB="30")
    response = server.post(
        "/models", json={"model_name": "huge", "url": str(models / "huge" / "model")}
    )
    assert response.status_code == 507
    assert "SAGEDOCK_MODEL_CACHE_MB" in response.json()["message"]
    assert server.get("/models").json() == {"models": []}  # not left registered
    assert json.loads(server.get("/ping").text or "{}") == {}


def test_a_target_model_larger_than_the_budget_is_507_and_not_left_listed(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    models = make_models(tmp_path, ["huge", "small"], size_mb=0)
    (models / "huge" / "model" / "size_mb").write_text("80")
    server = start(serve_model, tmp_path, models, SAGEDOCK_MODEL_CACHE_MB="30")
    response = server.invoke("[1]", **{"X-Amzn-SageMaker-Target-Model": "huge"})
    assert response.status_code == 507, response.text
    assert "SAGEDOCK_MODEL_CACHE_MB" in response.json()["message"]
    assert server.get("/models").json() == {"models": []}
    assert server.get("/models/huge").status_code == 404
    response = server.invoke("[1]", **{"X-Amzn-SageMaker-Target-Model": "small"})
    assert response.status_code == 200, response.text
    assert [m["modelName"] for m in server.get("/models").json()["models"]] == ["small"]


def test_bad_model_archives_and_names_that_are_not_text_are_400s_that_say_why(
    serve_model: ServeFactory, tmp_path: Path
) -> None:
    models = make_models(tmp_path, ["alpha"])
    (models / "junk.tar.gz").write_bytes(b"not a tarball\n" * 10)
    with tarfile.open(models / "escape.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("../../escape.txt")
        archive.addfile(info, None)
    with tarfile.open(models / "cut.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("weights.bin")
        data = bytes(range(256)) * 4096
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    (models / "cut.tar.gz").write_bytes((models / "cut.tar.gz").read_bytes()[:2000])
    server = start(serve_model, tmp_path, models)
    reasons = {
        "junk.tar.gz": "is not a readable tar archive",
        "escape.tar.gz": "unsafe archive member '../../escape.txt'",
        "cut.tar.gz": "is truncated or damaged",
    }
    for target, reason in reasons.items():
        response = server.invoke("[1]", **{"X-Amzn-SageMaker-Target-Model": target})
        assert response.status_code == 400, response.text
        assert response.json()["type"] == "BadRequest"
        assert str(models / target) in response.json()["message"]
        assert reason in response.json()["message"]
    assert not list(tmp_path.rglob("escape.txt"))
    assert server.get("/models").json() == {"models": []}

    not_text = b'{"model_name": "caf\xe9", "url": "alpha/model"}'
    response = server.post("/models", data=not_text, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith('"model_name" is not valid text')
    surrogate = b'{"model_name": "\\udc80", "url": "alpha/model"}'
    assert server.post("/models", data=surrogate).status_code == 400
    assert server.get("/ping").status_code == 200
