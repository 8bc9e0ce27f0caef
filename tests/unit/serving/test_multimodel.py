from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

from sagedock.serving.errors import InsufficientStorage, ModelAlreadyLoaded, ModelNotFound
from sagedock.serving.handler import Handler, HookLayer
from sagedock.serving.multimodel import MIB, ModelManager, ModelRegistry

MODEL_SIZES = {"a": 40, "b": 40, "c": 40, "huge": 200}


class FakeMemory:
    """Resident memory that grows by the model's size when it loads, shrinks when dropped."""

    def __init__(self) -> None:
        self.used = 0

    def __call__(self) -> int:
        return self.used


def setup(tmp_path: Path, budget_mb: int) -> tuple[ModelManager, list[str]]:
    memory = FakeMemory()
    loads: list[str] = []

    def model_fn(model_dir: str, context: Any) -> Any:
        name = Path(model_dir).name
        loads.append(context.model_name)
        memory.used += MODEL_SIZES[name] * MIB
        return name

    handler = Handler(
        [
            HookLayer(
                "m", types.MappingProxyType({"model_fn": model_fn, "predict_fn": lambda d, m: m})
            )
        ]
    )
    models = tmp_path / "models"
    for name in MODEL_SIZES:
        (models / name).mkdir(parents=True)
    manager = ModelManager(
        handler,
        ModelRegistry(tmp_path / "registry"),
        models,
        budget_bytes=budget_mb * MIB,
        measure=memory,
    )
    return manager, loads


def test_registry_is_shared_through_files(tmp_path: Path) -> None:
    one, two = ModelRegistry(tmp_path), ModelRegistry(tmp_path)
    before = two.version()
    one.register("m/1", "/x")
    assert two.get("m/1") is not None and two.version() != before
    with pytest.raises(ModelAlreadyLoaded):
        two.register("m/1", "/y")
    assert [m.to_json() for m in two.all()] == [{"modelName": "m/1", "modelUrl": "/x"}]
    two.unregister("m/1")
    with pytest.raises(ModelNotFound):
        one.unregister("m/1")


def test_least_recently_used_models_make_room(tmp_path: Path) -> None:
    manager, loads = setup(tmp_path, budget_mb=100)
    for name in ("a", "b", "a", "c"):
        assert manager.for_target(name).model == name
    assert loads == ["a", "b", "c"]
    assert manager.loaded_names == ["a", "c"]  # b was the least recently used
    manager.for_target("b")
    assert loads == ["a", "b", "c", "b"]
    assert manager.loaded_names == ["c", "b"]


def test_a_model_too_big_for_the_budget_is_507_and_not_registered(tmp_path: Path) -> None:
    manager, _ = setup(tmp_path, budget_mb=100)
    with pytest.raises(InsufficientStorage, match="SAGEDOCK_MODEL_CACHE_MB"):
        manager.load("huge", str(tmp_path / "models" / "huge"))
    assert manager.registry.all() == []


def test_a_target_model_that_fails_its_first_load_is_not_left_registered(
    tmp_path: Path,
) -> None:
    manager, _ = setup(tmp_path, budget_mb=100)
    with pytest.raises(InsufficientStorage, match="SAGEDOCK_MODEL_CACHE_MB"):
        manager.for_target("huge")
    assert manager.registry.all() == []
    assert manager.list_page(None, None) == {"models": []}


def test_unregistering_elsewhere_unloads_here(tmp_path: Path) -> None:
    manager, _ = setup(tmp_path, budget_mb=1000)
    manager.load("a", str(tmp_path / "models" / "a"))
    ModelRegistry(tmp_path / "registry").unregister("a")  # another worker's DELETE
    with pytest.raises(ModelNotFound):
        manager.get("a")
    assert manager.loaded_names == []


def test_targets_and_urls_must_stay_inside_the_models_directory(tmp_path: Path) -> None:
    manager, _ = setup(tmp_path, budget_mb=1000)
    (tmp_path / "outside").mkdir()
    with pytest.raises(ModelNotFound, match="outside the models directory"):
        manager.load("x", str(tmp_path / "outside"))
    with pytest.raises(ModelNotFound):
        manager.for_target("../outside")
    with pytest.raises(ModelNotFound, match="does not exist"):
        manager.load("x", str(tmp_path / "models" / "nope"))


def test_model_list_pages(tmp_path: Path) -> None:
    manager, _ = setup(tmp_path, budget_mb=1000)
    for name in ("a", "b", "c"):
        manager.registry.register(name, name)
    first = manager.list_page(None, "2")
    assert [m["modelName"] for m in first["models"]] == ["a", "b"]
    second = manager.list_page(first["nextPageToken"], "2")
    assert [m["modelName"] for m in second["models"]] == ["c"]
    assert "nextPageToken" not in second
