"""The image cache is per user (it outlives a fresh clone, as CI makes for every run) and stays
correct when several checkouts share it: each builds and ships its own sagedock wheel."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from sagedock.toolkit.images.build import BuildOptions, default_cache, prepare_context
from sagedock.toolkit.images.catalog import CATALOG
from sagedock.toolkit.images.wheelhouse import (
    DIST_FILES,
    DIST_PACKAGES,
    Lock,
    build_sagedock_wheel,
)

REPO = Path(__file__).resolve().parents[3]


def test_the_cache_defaults_to_the_users_xdg_cache_home(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    assert default_cache(env) == tmp_path / "xdg" / "sagedock" / "images"


def test_without_xdg_cache_home_the_cache_is_under_home_dot_cache(tmp_path: Path) -> None:
    assert default_cache({"HOME": str(tmp_path)}) == tmp_path / ".cache" / "sagedock" / "images"
    # a relative XDG_CACHE_HOME is invalid by the XDG rules and ignored
    env = {"HOME": str(tmp_path), "XDG_CACHE_HOME": "relative/cache"}
    assert default_cache(env) == tmp_path / ".cache" / "sagedock" / "images"


def test_sagedock_images_cache_overrides_the_default(tmp_path: Path) -> None:
    env = {"SAGEDOCK_IMAGES_CACHE": str(tmp_path / "mine"), "XDG_CACHE_HOME": str(tmp_path)}
    assert default_cache(env) == tmp_path / "mine"


def test_the_default_is_not_inside_the_checkout(tmp_path: Path) -> None:
    cache = default_cache({"HOME": str(tmp_path)})
    assert REPO not in cache.parents


def test_checkouts_sharing_a_cache_share_wheels_but_not_their_own_parts(tmp_path: Path) -> None:
    one = BuildOptions(source=tmp_path / "a" / "sagedock", cache=tmp_path / "cache")
    two = BuildOptions(source=tmp_path / "b" / "sagedock", cache=tmp_path / "cache")
    assert one.wheels == two.wheels  # downloads are shared
    assert one.local != two.local
    assert one.context("base") != two.context("base")
    assert one.constraints("base") != two.constraints("base")
    # stable: the same checkout finds its folders again in the next run
    again = BuildOptions(source=tmp_path / "a" / "sagedock", cache=tmp_path / "cache")
    assert again.local == one.local


def _checkout(root: Path, marker: str) -> Path:
    """A copy of this checkout's distribution files with *marker* in one module."""
    root.mkdir(parents=True)
    for name in DIST_FILES:
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, root / name)
    for name in (*DIST_PACKAGES, "Dockerfiles"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "toolkit" / "checkout_marker.py").write_text(f"MARKER = {marker!r}\n")
    return root


def _marker_in(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read("sagedock/toolkit/checkout_marker.py").decode()


def test_a_checkout_never_ships_the_sagedock_wheel_another_checkout_built(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = BuildOptions(source=_checkout(tmp_path / "a" / "repo", "a"), cache=cache)
    second = BuildOptions(source=_checkout(tmp_path / "b" / "repo", "b"), cache=cache)
    wheel_a = build_sagedock_wheel(first.source, first.local)
    # the other checkout builds the same version into the same cache afterwards
    build_sagedock_wheel(second.source, second.local)
    assert "'a'" in _marker_in(wheel_a)
    context = prepare_context(
        CATALOG["base"],
        source=first.source,
        dest=first.context("base"),
        lock=Lock(()),
        parent_lock=None,
        sagedock_wheel=wheel_a,
    )
    (shipped,) = (context / "sagedock").iterdir()
    assert "'a'" in _marker_in(shipped)
