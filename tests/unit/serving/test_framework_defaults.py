from __future__ import annotations

import ast
import pickle
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import sagedock.serving as sagedock_serving
from sagedock.serving.framework_defaults import mxnet, tensorflow, torch_pickle
from sagedock.serving.handler import DEFAULTS_GROUP, Handler, default_defaults
from sagedock.toolkit.errors import UserError


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_framework_defaults_are_registered_through_the_entry_point() -> None:
    names = default_defaults().names
    for name in ("onnx", "torchscript", "tensorflow", "torch-pickle", "mxnet", "xgboost"):
        assert names.count(name) == 1


def test_the_xgboost_default_comes_from_the_containers_through_the_entry_point() -> None:
    declared = {ep.name: ep.value for ep in entry_points(group=DEFAULTS_GROUP)}
    assert declared["xgboost"] == "sagedock.containers.xgboost.inference:script_mode_defaults"


def test_serving_never_imports_the_containers() -> None:
    # Dependencies point containers -> serving: the containers reach serving by entry points.
    root = Path(sagedock_serving.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("sagedock.contain")]
    assert offenders == []


def test_saved_model_at_the_top_of_the_model_dir_is_found(tmp_path: Path) -> None:
    _touch(tmp_path / "saved_model.pb")
    assert tensorflow.saved_model_dir(tmp_path) == tmp_path


def test_the_highest_numeric_version_wins_like_tensorflow_serving(tmp_path: Path) -> None:
    for version in ("1", "2", "10"):
        _touch(tmp_path / version / "saved_model.pb")
    _touch(tmp_path / "code" / "inference.py")
    assert tensorflow.saved_model_dir(tmp_path) == tmp_path / "10"


def test_a_single_named_model_with_versions_is_found(tmp_path: Path) -> None:
    _touch(tmp_path / "resnet" / "3" / "saved_model.pb")
    assert tensorflow.saved_model_dir(tmp_path) == tmp_path / "resnet" / "3"


def test_two_named_models_are_ambiguous_and_not_detected(tmp_path: Path) -> None:
    _touch(tmp_path / "a" / "1" / "saved_model.pb")
    _touch(tmp_path / "b" / "1" / "saved_model.pb")
    assert not tensorflow.detect(tmp_path)


def test_mxnet_export_uses_the_latest_epoch(tmp_path: Path) -> None:
    _touch(tmp_path / "net-symbol.json")
    _touch(tmp_path / "net-0000.params")
    _touch(tmp_path / "net-0012.params")
    _touch(tmp_path / "other-0099.params")
    found = mxnet.export_files(tmp_path)
    assert found is not None
    assert found.params.name == "net-0012.params"


def test_mxnet_without_params_or_with_two_symbols_is_not_detected(tmp_path: Path) -> None:
    _touch(tmp_path / "net-symbol.json")
    assert not mxnet.detect(tmp_path)
    _touch(tmp_path / "net-0000.params")
    _touch(tmp_path / "b-symbol.json")
    assert not mxnet.detect(tmp_path)


def _onnx_linear(path: Path) -> None:
    """A tiny ONNX model: y = x @ [[1], [1]] + 0.5."""
    import numpy as np

    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        initializer=[
            numpy_helper.from_array(np.ones((2, 1), np.float32), "w"),
            numpy_helper.from_array(np.array([0.5], np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_onnx_defaults_load_from_the_str_model_dir_the_handler_passes(tmp_path: Path) -> None:
    _onnx_linear(tmp_path / "model.onnx")
    predictor = Handler([], frameworks=default_defaults()).load(tmp_path)
    assert predictor.sources["model_fn"] == "onnx defaults"
    assert predictor.invoke(b"[[1, 2]]", "application/json", None).body == b"[[3.5]]"


torch = pytest.importorskip("torch")


def test_a_state_dict_is_refused_with_what_to_write_instead(tmp_path: Path) -> None:
    torch.save(torch.nn.Linear(2, 1).state_dict(), tmp_path / "model.pth")
    assert torch_pickle.detect(tmp_path)
    with pytest.raises(UserError, match=r"state dict.*model_fn in code/inference.py"):
        torch_pickle.model_fn(tmp_path)


def test_torchscript_is_left_to_the_torchscript_defaults(tmp_path: Path) -> None:
    torch.jit.script(torch.nn.Linear(2, 1)).save(str(tmp_path / "model.pt"))
    assert not torch_pickle.detect(tmp_path)


def test_a_pickled_module_whose_class_lives_in_code_is_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "tinynet_for_test.py").write_text(
        textwrap.dedent(
            """
            import torch
            class TinyNet(torch.nn.Module):
                def forward(self, x):
                    return x.sum(dim=1, keepdim=True) + 0.5
            """
        )
    )
    monkeypatch.syspath_prepend(str(code))
    import tinynet_for_test  # type: ignore[import-not-found]

    torch.save(tinynet_for_test.TinyNet(), tmp_path / "model.pt")
    del sys.modules["tinynet_for_test"]
    model = torch_pickle.model_fn(tmp_path)
    assert torch_pickle.predict_fn([[1.0, 2.0]], model).tolist() == [[3.5]]


def test_a_pickled_module_whose_class_is_gone_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As when the class was defined in the training script: not importable at serving time.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "gone_module_for_test.py").write_text(
        "import torch\nclass Net(torch.nn.Module):\n    def forward(self, x):\n        return x\n"
    )
    monkeypatch.syspath_prepend(str(elsewhere))
    import gone_module_for_test  # type: ignore[import-not-found]

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    torch.save(gone_module_for_test.Net(), model_dir / "model.pt")
    del sys.modules["gone_module_for_test"]
    monkeypatch.syspath_prepend(str(model_dir))  # sys.path no longer finds the class
    (elsewhere / "gone_module_for_test.py").unlink()
    with pytest.raises(UserError, match=r"cannot be imported.*torch\.jit\.script"):
        torch_pickle.model_fn(model_dir)


def test_torchscript_defaults_load_from_the_str_model_dir_the_handler_passes(
    tmp_path: Path,
) -> None:
    class AddHalf(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.sum(dim=1, keepdim=True) + 0.5

    torch.jit.script(AddHalf()).save(str(tmp_path / "model.pt"))
    predictor = Handler([], frameworks=default_defaults()).load(tmp_path)
    assert predictor.sources["model_fn"] == "torchscript defaults"
    assert predictor.invoke(b"[[1, 2]]", "application/json", None).body == b"[[3.5]]"


def _xgboost_models(folder: Path, *formats: str) -> Path:
    xgboost = pytest.importorskip("xgboost")
    import numpy as np

    folder.mkdir(parents=True)
    x = np.random.default_rng(0).normal(size=(30, 3))
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(x, label=x[:, 0]), 2)
    for i, fmt in enumerate(formats):
        if fmt == "pickle":
            (folder / f"xgboost-model-{i}").write_bytes(pickle.dumps(booster))
        else:
            booster.save_model(str(folder / f"member-{i}.{fmt}"))
    return folder


def test_each_model_directory_is_recognised_by_exactly_one_framework(tmp_path: Path) -> None:
    dirs: dict[str, Path] = {}
    _onnx_linear(_touch(tmp_path / "onnx" / "model.onnx"))
    dirs["onnx"] = tmp_path / "onnx"
    (tmp_path / "torchscript").mkdir()
    torch.jit.script(torch.nn.Linear(2, 1)).save(str(tmp_path / "torchscript" / "model.pt"))
    dirs["torchscript"] = tmp_path / "torchscript"
    (tmp_path / "pickle").mkdir()
    torch.save(torch.nn.Linear(2, 1).state_dict(), tmp_path / "pickle" / "model.pth")
    dirs["torch-pickle"] = tmp_path / "pickle"
    dirs["tensorflow"] = _touch(tmp_path / "tf" / "1" / "saved_model.pb").parent.parent
    _touch(tmp_path / "mx" / "net-symbol.json")
    dirs["mxnet"] = _touch(tmp_path / "mx" / "net-0001.params").parent
    dirs["xgboost"] = _xgboost_models(tmp_path / "xgb", "pickle", "json", "ubj")
    _touch(dirs["xgboost"] / "code" / "inference.py")  # folders are not models
    registry = default_defaults()
    for name, folder in dirs.items():
        assert [f.name for f in registry.matching(folder)] == [name], folder


def test_an_xgboost_directory_with_another_file_is_not_guessed(tmp_path: Path) -> None:
    folder = _xgboost_models(tmp_path / "xgb", "json")
    (folder / "scaler.json").write_text('{"mean": [0, 1]}')
    assert default_defaults().matching(folder) == []


def test_sagemakers_legacy_binary_and_pickled_models_are_recognised(
    shared_testdata: Path,
) -> None:
    registry = default_defaults()
    for name in ("saved_booster", "pickled_model"):
        folder = shared_testdata / "xgboost" / "models" / name
        assert [f.name for f in registry.matching(folder)] == ["xgboost"]
