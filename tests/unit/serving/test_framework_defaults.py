from __future__ import annotations

import ast
import json
import pickle
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

import pytest

import sagedock.serving as sagedock_serving
from sagedock.serving.framework_defaults import mxnet, tensorflow, torch_pickle
from sagedock.serving.handler import (
    DEFAULTS_GROUP,
    CodeLocation,
    Handler,
    HookFailed,
    Predictor,
    build_handler,
    default_defaults,
)
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


@pytest.fixture
def torch() -> ModuleType:
    """torch, for the tests that take it: they skip where torch is not installed, and only
    they do (the tests above and below need no torch)."""
    return pytest.importorskip("torch")


TINY_NET = textwrap.dedent(
    """
    import torch

    class TinyNet(torch.nn.Module):
        def __init__(self, hidden=3):
            super().__init__()
            self.hidden = torch.nn.Linear(2, hidden)
            self.out = torch.nn.Linear(hidden, 1)

        def forward(self, x):
            return self.out(torch.relu(self.hidden(x)))
    """
)


@pytest.fixture
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The handler imports the user module (as ``inference``, or as SAGEMAKER_PROGRAM names
    it) and puts its folder on sys.path: undo both after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("SAGEMAKER_PROGRAM", raising=False)
    before = set(sys.modules)
    yield
    for name in ("inference", "serving_module"):
        if name not in before:
            sys.modules.pop(name, None)


def _state_dict_model(tmp_path: Path, inference: str | None, hidden: int = 3) -> Path:
    """A model dir as a BYOS train.py leaves it: ``model.pth`` holding a TinyNet state dict
    and, when given, ``code/inference.py``; returns the model dir."""
    import torch  # only the torch tests call this

    model_dir = tmp_path / "model"
    code = model_dir / "code"
    code.mkdir(parents=True)
    namespace: dict[str, object] = {}
    exec(TINY_NET, namespace)
    torch.manual_seed(0)
    net = namespace["TinyNet"](hidden)  # type: ignore[operator]
    torch.save(net.state_dict(), model_dir / "model.pth")
    if inference is not None:
        (code / "inference.py").write_text(inference)
    return model_dir


def _expected(model_dir: Path, rows: list[list[float]], hidden: int = 3) -> list[float]:
    """What the saved TinyNet answers for *rows* (one output each), computed directly."""
    import torch  # only the torch tests call this

    namespace: dict[str, object] = {}
    exec(TINY_NET, namespace)
    net = namespace["TinyNet"](hidden)  # type: ignore[operator]
    net.load_state_dict(torch.load(model_dir / "model.pth", weights_only=True))
    with torch.no_grad():
        return net(torch.tensor(rows)).flatten().tolist()  # type: ignore[no-any-return]


def _load(model_dir: Path) -> Predictor:
    handler = build_handler(CodeLocation(model_dir / "code", "inference.py"), None)
    return handler.load(model_dir)


def test_a_state_dict_is_served_through_the_user_modules_build_model(
    torch: ModuleType, tmp_path: Path, isolated_imports: None
) -> None:
    model_dir = _state_dict_model(
        tmp_path, TINY_NET + "\ndef build_model():\n    return TinyNet()\n"
    )
    predictor = _load(model_dir)
    assert predictor.sources["model_fn"] == "torch-pickle defaults"
    assert predictor.model.training is False  # eval mode
    rows = [[1.0, 2.0], [-0.5, 3.0]]
    got = json.loads(predictor.invoke(json.dumps(rows).encode(), "application/json", None).body)
    assert [row[0] for row in got] == pytest.approx(_expected(model_dir, rows), abs=1e-6)


def test_build_model_may_take_the_model_dir_to_read_the_architecture(
    torch: ModuleType, tmp_path: Path, isolated_imports: None
) -> None:
    factory = textwrap.dedent(
        """
        import json, os
        def build_model(model_dir):
            with open(os.path.join(model_dir, "arch.json")) as f:
                return TinyNet(**json.load(f))
        """
    )
    model_dir = _state_dict_model(tmp_path, TINY_NET + factory, hidden=5)
    (model_dir / "arch.json").write_text('{"hidden": 5}')
    predictor = _load(model_dir)
    got = json.loads(predictor.invoke(b"[[1, 2]]", "application/json", None).body)
    assert [row[0] for row in got] == pytest.approx(
        _expected(model_dir, [[1.0, 2.0]], hidden=5), abs=1e-6
    )


def test_the_module_sagemaker_program_names_provides_build_model(
    torch: ModuleType, tmp_path: Path, isolated_imports: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = _state_dict_model(tmp_path, None)
    (model_dir / "code" / "serving_module.py").write_text(
        TINY_NET + "\ndef build_model():\n    return TinyNet()\n"
    )
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "serving_module.py")
    code = CodeLocation(model_dir / "code", "serving_module.py", required=True)
    handler = build_handler(code, None)
    got = json.loads(handler.load(model_dir).invoke(b"[[1, 2]]", "application/json", None).body)
    assert [row[0] for row in got] == pytest.approx(_expected(model_dir, [[1.0, 2.0]]), abs=1e-6)


def test_build_model_comes_from_the_module_the_handler_imported_whatever_the_environment(
    torch: ModuleType, tmp_path: Path, isolated_imports: None
) -> None:
    # The handler's CodeLocation names serving_module.py while SAGEMAKER_PROGRAM is unset, and
    # another model's "inference" module (a different architecture) is imported already.
    other = _state_dict_model(
        tmp_path / "other", "import torch\ndef build_model():\n    return torch.nn.Linear(2, 1)\n"
    )
    build_handler(CodeLocation(other / "code", "inference.py"), None)
    assert "inference" in sys.modules
    model_dir = _state_dict_model(tmp_path, None)
    (model_dir / "code" / "serving_module.py").write_text(
        TINY_NET + "\ndef build_model():\n    return TinyNet()\n"
    )
    code = CodeLocation(model_dir / "code", "serving_module.py", required=True)
    predictor = build_handler(code, None).load(model_dir)
    got = json.loads(predictor.invoke(b"[[1, 2]]", "application/json", None).body)
    assert [row[0] for row in got] == pytest.approx(_expected(model_dir, [[1.0, 2.0]]), abs=1e-6)


def test_build_model_is_called_as_a_hook_and_may_take_the_context(
    torch: ModuleType, tmp_path: Path, isolated_imports: None
) -> None:
    factory = textwrap.dedent(
        """
        seen = []
        def build_model(model_dir, context):
            seen.append((model_dir, context.worker_id, context.model_dir))
            return TinyNet()
        """
    )
    model_dir = _state_dict_model(tmp_path, TINY_NET + factory)
    handler = build_handler(CodeLocation(model_dir / "code", "inference.py"), None, worker_id=1)
    handler.load(model_dir)
    assert sys.modules["inference"].seen == [(str(model_dir), 1, model_dir)]
    (model_dir / "code" / "inference.py").write_text(
        TINY_NET + "\ndef build_model(a, b, c):\n    return TinyNet()\n"
    )
    sys.modules.pop("inference")
    with pytest.raises(HookFailed, match=r"build_model from .*inference.py takes 3 arguments"):
        _load(model_dir)


def test_a_state_dict_without_build_model_says_exactly_what_to_add(
    torch: ModuleType, tmp_path: Path, isolated_imports: None
) -> None:
    model_dir = _state_dict_model(tmp_path, None)
    assert torch_pickle.detect(model_dir)
    with pytest.raises(HookFailed, match=r"state dict.*define build_model\(\) in code/inference"):
        _load(model_dir)
    # an inference.py with other hooks but no factory: the same message
    (model_dir / "code" / "inference.py").write_text("def input_fn(body, content_type):\n    ...\n")
    sys.modules.pop("inference", None)
    with pytest.raises(HookFailed, match=r"define build_model\(\)"):
        _load(model_dir)


def test_a_state_dict_that_does_not_fit_build_models_architecture_is_refused(
    torch: ModuleType, tmp_path: Path, isolated_imports: None
) -> None:
    # strict loading: a missing layer is an error, not a half-initialised model
    model_dir = _state_dict_model(
        tmp_path, "import torch\ndef build_model():\n    return torch.nn.Linear(2, 1)\n"
    )
    fits = r"does not fit the model build_model\(\).*Missing key\(s\) in state_dict"
    with pytest.raises(HookFailed, match=fits):
        _load(model_dir)


def test_build_model_must_return_a_module(
    torch: ModuleType, tmp_path: Path, isolated_imports: None
) -> None:
    model_dir = _state_dict_model(tmp_path, "def build_model():\n    return {'w': 1}\n")
    with pytest.raises(HookFailed, match=r"build_model\(\) in .*inference.py returned a dict"):
        _load(model_dir)


class _RunsCode:
    """Unpickling this runs code: it writes a marker file (as a hostile pickle would)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return _touch_marker, (str(self.marker), "unpickled")


def _touch_marker(path: str, text: str) -> None:
    Path(path).write_text(text)


def test_with_build_model_defined_nothing_but_weights_is_ever_unpickled(
    torch: ModuleType, tmp_path: Path, isolated_imports: None
) -> None:
    model_dir = _state_dict_model(
        tmp_path, TINY_NET + "\ndef build_model():\n    return TinyNet()\n"
    )
    marker = tmp_path / "ran"
    torch.save(_RunsCode(marker), model_dir / "model.pth")
    with pytest.raises(HookFailed, match=r"not a state dict"):
        _load(model_dir)
    assert not marker.exists()


def test_torchscript_is_left_to_the_torchscript_defaults(torch: ModuleType, tmp_path: Path) -> None:
    torch.jit.script(torch.nn.Linear(2, 1)).save(str(tmp_path / "model.pt"))
    assert not torch_pickle.detect(tmp_path)


def test_a_pickled_module_whose_class_lives_in_code_is_served(
    torch: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
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
    torch: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
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
    torch: ModuleType,
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


def test_each_model_directory_is_recognised_by_exactly_one_framework(
    torch: ModuleType, tmp_path: Path
) -> None:
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
