from __future__ import annotations

from pathlib import Path

from sagedock.toolkit.images.wheelhouse import (
    Lock,
    Pin,
    build_requirements_met,
    normalise,
    platform_args,
)


def _lock(*items: tuple[str, str]) -> Lock:
    return Lock(tuple(Pin(n, v, Path(f"/w/{n}-{v}.whl")) for n, v in items))


def test_names_are_normalised_like_pep_503() -> None:
    assert normalise("Flask") == "flask"
    assert normalise("xgboost_cpu") == "xgboost-cpu"
    assert normalise("zope.interface") == "zope-interface"


def test_platform_args_select_binary_wheels_for_the_image_python() -> None:
    args = platform_args("3.11", machine="x86_64")
    assert "--only-binary=:all:" in args
    assert args[args.index("--python-version") + 1] == "3.11"
    assert "cp311" in args
    platforms = {args[i + 1] for i, a in enumerate(args) if a == "--platform"}
    # bookworm's glibc is 2.36: nothing newer may be chosen
    assert "manylinux_2_36_x86_64" in platforms
    assert "manylinux_2_17_x86_64" in platforms
    assert "manylinux_2_39_x86_64" not in platforms


def test_a_child_wheelhouse_holds_only_what_its_parent_lacks() -> None:
    parent = _lock(("numpy", "2.0"), ("flask", "3.1"))
    child = _lock(("numpy", "2.0"), ("flask", "3.1"), ("scipy", "1.17"))
    assert [p.name for p in child.minus(parent)] == ["scipy"]
    assert child.minus(None) == list(child.pins)


def test_requirements_text_pins_every_distribution_sorted() -> None:
    lock = _lock(("scipy", "1.17"), ("flask", "3.1"))
    assert lock.requirements_text() == "flask==3.1\nscipy==1.17\n"


def _pyproject(tmp_path: Path, *requires: str) -> Path:
    path = tmp_path / "pyproject.toml"
    listed = ", ".join(f'"{r}"' for r in requires)
    path.write_text(f'[build-system]\nrequires = [{listed}]\nbuild-backend = "x"\n')
    return path


def test_build_requirements_are_met_only_when_every_minimum_is_installed(
    tmp_path: Path,
) -> None:
    assert build_requirements_met(_pyproject(tmp_path, "setuptools>=1", "pip >= 1.0"))
    assert not build_requirements_met(_pyproject(tmp_path, "setuptools>=1", "pip>=9999"))
    assert not build_requirements_met(_pyproject(tmp_path, "no-such-dist-xyz>=1"))
    # forms we do not evaluate count as unmet: pip's isolated build handles them
    assert not build_requirements_met(_pyproject(tmp_path, "setuptools"))
    assert not build_requirements_met(_pyproject(tmp_path, "setuptools>=1; python_version<'4'"))


def test_a_missing_or_broken_pyproject_means_an_isolated_build(tmp_path: Path) -> None:
    assert not build_requirements_met(tmp_path / "absent.toml")
    broken = tmp_path / "pyproject.toml"
    broken.write_text("[build-system\n")
    assert not build_requirements_met(broken)
