from __future__ import annotations

from pathlib import Path

from sagedock.toolkit.images.build import build_args, dockerfile_in, prepare_context
from sagedock.toolkit.images.catalog import CATALOG
from sagedock.toolkit.images.wheelhouse import Lock, Pin

REPO = Path(__file__).resolve().parents[3]


def _lock(folder: Path, *items: tuple[str, str]) -> Lock:
    pins = []
    for name, version in items:
        wheel = folder / f"{name}-{version}-py3-none-any.whl"
        wheel.write_bytes(name.encode())
        pins.append(Pin(name, version, wheel))
    return Lock(tuple(pins))


def test_a_base_context_holds_dependencies_and_the_sagedock_wheel_apart(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    lock = _lock(wheels, ("flask", "3.1"), ("sagedock", "0.1.0"))
    own = wheels / "sagedock-0.1.0-py3-none-any.whl"
    ctx = prepare_context(
        CATALOG["base"],
        source=REPO,
        dest=tmp_path / "ctx",
        lock=lock,
        parent_lock=None,
        sagedock_wheel=own,
    )
    # the repository's layout, as in an online `docker build` from the checkout
    assert dockerfile_in(ctx, CATALOG["base"]) == ctx / "Dockerfiles" / "base" / "Dockerfile"
    assert dockerfile_in(ctx, CATALOG["base"]).is_file()
    # files linked between image folders are real files in the context, not links
    linked = ctx / "Dockerfiles" / "xgboost" / "Dockerfile.dockerignore"
    assert linked.is_file() and not linked.is_symlink()
    assert sorted(p.name for p in (ctx / "wheelhouse").iterdir()) == [
        "flask-3.1-py3-none-any.whl",
        "requirements.txt",
    ]
    assert (ctx / "wheelhouse" / "requirements.txt").read_text() == "flask==3.1\n"
    assert [p.name for p in (ctx / "sagedock").iterdir()] == [own.name]


def test_a_child_context_holds_only_new_wheels_but_pins_the_whole_image(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    parent = _lock(wheels, ("flask", "3.1"), ("sagedock", "0.1.0"))
    child = _lock(wheels, ("flask", "3.1"), ("sagedock", "0.1.0"), ("xgboost-cpu", "3.0.5"))
    ctx = prepare_context(
        CATALOG["xgboost"],
        source=REPO,
        dest=tmp_path / "ctx",
        lock=child,
        parent_lock=parent,
        sagedock_wheel=wheels / "sagedock-0.1.0-py3-none-any.whl",
    )
    assert sorted(p.name for p in (ctx / "wheelhouse").iterdir()) == [
        "requirements.txt",
        "xgboost-cpu-3.0.5-py3-none-any.whl",
    ]
    pinned = (ctx / "wheelhouse" / "requirements.txt").read_text().split()
    assert pinned == ["flask==3.1", "sagedock==0.1.0", "xgboost-cpu==3.0.5"]
    assert not (ctx / "sagedock").exists()


def test_offline_build_args_name_the_context_folders_so_no_index_is_used() -> None:
    assert build_args(CATALOG["base"], base_image="debian:bookworm-slim") == {
        "BASE_IMAGE": "debian:bookworm-slim",
        "WHEELHOUSE": "wheelhouse",
        "SAGEDOCK_WHEELS": "sagedock",
    }
    # a child gets sagedock from its parent: only its own wheelhouse
    assert build_args(CATALOG["xgboost"], base_image="sagedock/base:0.1.0") == {
        "BASE_IMAGE": "sagedock/base:0.1.0",
        "WHEELHOUSE": "wheelhouse",
    }
