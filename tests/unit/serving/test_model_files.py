"""Default model_fns find the model in the folder SDK local mode serves: ``model.tar.gz`` and
``output.tar.gz`` beside what was extracted from the first (``_prepare_serving_volumes``)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from sagedock.serving import model_files
from sagedock.serving.errors import ModelError
from sagedock.serving.handler import Handler, default_defaults


def _tar_gz(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))


def sdk_local_layout(model_dir: Path) -> Path:
    """Turn *model_dir* (what a training job wrote) into what SDK 2.x local mode mounts at
    /opt/ml/model: the archive of the model, extracted in place, and the job's output archive."""
    files = {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()}
    _tar_gz(model_dir / "model.tar.gz", files)
    _tar_gz(model_dir / "output.tar.gz", {"success": b""})
    return model_dir


def _xgboost_model(model_dir: Path, name: str = "xgboost-model") -> np.ndarray:
    xgboost = pytest.importorskip("xgboost")
    rng = np.random.default_rng(0)
    x = rng.random((50, 3)).astype(np.float32)
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(x, label=x.sum(axis=1)), 3)
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / name))
    return np.asarray(booster.predict(xgboost.DMatrix(x[:2])))


def test_xgboost_model_is_found_beside_the_archives_sdk_local_mode_leaves(tmp_path: Path) -> None:
    from sagedock.containers.xgboost.inference import model_fn

    expected = _xgboost_model(tmp_path)
    sdk_local_layout(tmp_path)
    (tmp_path / "code").mkdir()
    served = model_fn(str(tmp_path))
    assert [b.name for b in served.model.boosters] == ["xgboost-model"]
    x = np.random.default_rng(0).random((50, 3)).astype(np.float32)[:2]
    np.testing.assert_allclose(served.model.predict(x), expected, rtol=1e-6)


def test_xgboost_script_mode_defaults_detect_a_model_dir_with_archives(tmp_path: Path) -> None:
    from sagedock.containers.xgboost.model import is_model_dir

    _xgboost_model(tmp_path)
    sdk_local_layout(tmp_path)
    assert is_model_dir(tmp_path)


def test_an_xgboost_model_under_another_name_is_found_among_other_files(tmp_path: Path) -> None:
    from sagedock.containers.xgboost.model import find_model_files

    _xgboost_model(tmp_path, "booster.json")
    (tmp_path / "metrics.txt").write_text("rmse 0.1\n")
    sdk_local_layout(tmp_path)
    assert [p.name for p in find_model_files(tmp_path)] == ["booster.json"]


def test_no_xgboost_model_names_the_files_seen_and_the_name_wanted(tmp_path: Path) -> None:
    from sagedock.containers.xgboost.model import load_model

    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "metrics.txt").write_text("rmse 0.1")
    sdk_local_layout(tmp_path)
    with pytest.raises(ModelError) as caught:
        load_model(tmp_path)
    message = caught.value.message
    assert "xgboost-model" in message
    for name in ("metrics.txt", "notes.txt", "model.tar.gz", "output.tar.gz"):
        assert name in message
    assert "cannot choose" in message


def test_an_archive_alone_is_never_taken_for_the_model(tmp_path: Path) -> None:
    from sagedock.containers.xgboost.model import load_model

    _tar_gz(tmp_path / "model.tar.gz", {"xgboost-model": b"{}"})
    with pytest.raises(ModelError, match=r"no model in .*expected xgboost-model.*model\.tar\.gz"):
        load_model(tmp_path)


def test_pick_one_prefers_the_model_name_among_several() -> None:
    a, b = Path("/m/extra.onnx"), Path("/m/model.onnx")
    assert model_files.pick_one([a, b]) == b
    assert model_files.pick_one([a]) == a
    assert model_files.pick_one([a, Path("/m/other.onnx")]) is None
    assert model_files.pick_one([]) is None


def test_archives_are_not_candidates(tmp_path: Path) -> None:
    for name in ("model.tar.gz", "output.TGZ", "x.tar", "model.onnx", ".hidden.onnx"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "code").mkdir()
    assert [p.name for p in model_files.candidates(tmp_path)] == ["model.onnx"]


def test_onnx_model_beside_archives_and_a_second_onnx_file(tmp_path: Path) -> None:
    from tests.unit.serving.test_framework_defaults import _onnx_linear

    _onnx_linear(tmp_path / "model.onnx")
    sdk_local_layout(tmp_path)
    _onnx_linear(tmp_path / "previous.onnx")
    predictor = Handler([], frameworks=default_defaults()).load(tmp_path)
    assert predictor.sources["model_fn"] == "onnx defaults"
    assert predictor.invoke(b"[[1, 2]]", "application/json", None).body == b"[[3.5]]"


def test_two_onnx_files_without_model_onnx_are_named_in_the_error(tmp_path: Path) -> None:
    from sagedock.serving.framework_defaults import onnx

    for name in ("a.onnx", "b.onnx"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ModelError, match=r"cannot choose .* among a\.onnx, b\.onnx.*model\.onnx"):
        onnx.model_fn(tmp_path)


def test_torch_state_dict_beside_archives_loads_through_build_model(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from sagedock.serving.framework_defaults import torch_pickle

    torch.manual_seed(0)
    net = torch.nn.Linear(2, 1)
    torch.save(net.state_dict(), tmp_path / "model.pth")
    sdk_local_layout(tmp_path)
    torch.save(torch.nn.Linear(2, 1).state_dict(), tmp_path / "checkpoint.pth")

    def build_model(model_dir: str, context: object) -> object:
        return torch.nn.Linear(2, 1)

    model = torch_pickle.model_fn(tmp_path, build_model=(build_model, "inference.py"))
    assert torch.equal(model.weight, net.weight)


def test_torchscript_missing_lists_the_directory(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from sagedock.serving.framework_defaults import torchscript

    sdk_local_layout(tmp_path)
    with pytest.raises(ModelError, match=r"no model in .*model\.pt or model\.pth.*model\.tar\.gz"):
        torchscript.model_fn(tmp_path)
