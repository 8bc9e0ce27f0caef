"""The wheelhouse an image is built from: a wheel of the checkout plus its pinned requirements.

Images install Python packages only from a wheelhouse (``pip install --no-index``), never from
an index: builds work air-gapped and behind proxies that break TLS inside ``docker build``.
:func:`build_sagedock_wheel` makes a wheel of the checkout; :func:`resolve` fills a shared
wheel cache with ``pip download`` (unless offline) and resolves the image's requirements
against it for the image's Python and platform (``pip install --dry-run --report``), giving a
:class:`Lock` of exact files. The cache lives on the host, so a second build downloads
nothing.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import PlatformError, UserError

#: Files of the checkout that make up the sagedock distribution.
DIST_FILES = ("setup.py", "pyproject.toml", "README.md", "LICENSE")
DIST_PACKAGES = ("toolkit", "serving", "containers", "templates")

#: Deterministic wheel timestamps, so an unchanged checkout gives a byte-identical wheel and
#: Docker's layer cache stays valid.
SOURCE_DATE_EPOCH = "315532800"


@dataclass(frozen=True)
class Pin:
    """One resolved distribution: its normalised name, version and wheel file."""

    name: str
    version: str
    wheel: Path

    @property
    def line(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Lock:
    """The exact set of wheels one image installs."""

    pins: tuple[Pin, ...]

    def names(self) -> set[str]:
        return {pin.name for pin in self.pins}

    def requirements_text(self) -> str:
        """A requirements file pinning every distribution (``name==version`` per line)."""
        return "".join(f"{pin.line}\n" for pin in sorted(self.pins, key=lambda p: p.name))

    def minus(self, other: Lock | None) -> list[Pin]:
        """The pins of this lock whose exact wheel *other* does not already install."""
        if other is None:
            return list(self.pins)
        have = {(p.name, p.version) for p in other.pins}
        return [pin for pin in self.pins if (pin.name, pin.version) not in have]


def normalise(name: str) -> str:
    """PEP 503 normalised distribution name."""
    out = name.lower()
    for ch in "_.":
        out = out.replace(ch, "-")
    while "--" in out:
        out = out.replace("--", "-")
    return out


def platform_args(python: str, machine: str | None = None) -> list[str]:
    """pip options selecting wheels for CPython *python* on glibc 2.36 (bookworm) Linux."""
    arch = (machine or platform.machine()).lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
    abi = "cp" + python.replace(".", "")
    args = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp"]
    args += ["--abi", abi, "--abi", "abi3", "--abi", "none"]
    plats = [f"manylinux_2_{minor}_{arch}" for minor in range(36, 16, -1)]
    plats += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    for plat in plats:
        args += ["--platform", plat]
    return args


def source_root_of_package() -> Path | None:
    """The checkout the running sagedock was installed from (editable install), if any."""
    here = Path(__file__).resolve().parent.parent.parent  # toolkit/images -> repo
    if (here / "pyproject.toml").is_file() and (here / "Dockerfiles").is_dir():
        return here
    return None


def _pip(python: str = sys.executable) -> list[str]:
    return [python, "-m", "pip"]


def _run_pip(args: Sequence[str], *, what: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [*_pip(), *args], capture_output=True, text=True, env=env or dict(os.environ)
    )
    if done.returncode != 0:
        lines = [
            line
            for line in (done.stderr + done.stdout).strip().splitlines()
            if "is ignored: it is neither a file nor a directory" not in line
        ]
        raise UserError(f"{what} failed (pip exit {done.returncode}): " + " | ".join(lines[-6:]))
    return done.stdout


def build_sagedock_wheel(source: Path, dest: Path) -> Path:
    """A wheel of the checkout at *source*, written into an emptied *dest*; its path.

    The checkout is copied first, so building leaves nothing (``build/``, egg-info) in it.
    """
    if not (source / "pyproject.toml").is_file():
        raise UserError(f"{source} is not a sagedock checkout (no pyproject.toml)")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".mypy_cache")
    with tempfile.TemporaryDirectory(prefix="sagedock-src-") as tmp:
        work = Path(tmp) / "src"
        work.mkdir()
        for name in DIST_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, work / name)
        for name in DIST_PACKAGES:
            if (source / name).is_dir():
                shutil.copytree(source / name, work / name, ignore=ignore)
        args = ["wheel", "--no-deps", "--quiet", "-w", str(dest), str(work)]
        if build_requirements_met(source / "pyproject.toml"):
            # The local backend will do: no index is needed (air-gapped hosts).
            args.insert(1, "--no-build-isolation")
        env = dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH)
        _run_pip(args, what="building the sagedock wheel", env=env)
    wheels = sorted(dest.glob("sagedock-*.whl"))
    if len(wheels) != 1:
        raise PlatformError(f"expected one sagedock wheel in {dest}, found {len(wheels)}")
    return wheels[0]


def build_requirements_met(pyproject: Path) -> bool:
    """Whether this interpreter has every ``[build-system] requires`` of *pyproject*.

    A plain ``python -m venv`` has an older setuptools (65 on Python 3.11) than the build
    needs; pip's isolated build then fetches the right one, where building in place would fail.
    Only ``name>=version`` requirements are understood; anything else counts as unmet.
    """
    try:
        requires = tomllib.loads(pyproject.read_text())["build-system"]["requires"]
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError):
        return False
    return all(_installed_at_least(str(requirement)) for requirement in requires)


def _installed_at_least(requirement: str) -> bool:
    name, sep, minimum = requirement.replace(" ", "").partition(">=")
    if not sep or not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        return False
    if not re.fullmatch(r"\d+(\.\d+)*", minimum):
        return False
    try:
        installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return _release(installed) >= tuple(int(part) for part in minimum.split("."))


def _release(version: str) -> tuple[int, ...]:
    """The leading numeric release of *version* (``70.1.0.post1`` -> ``(70, 1, 0)``)."""
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(part) for part in match.group().split(".")) if match else ()


def download(
    requirements: Iterable[str],
    *,
    cache: Path,
    local: Path,
    python: str,
    constraints: Path | None = None,
) -> None:
    """``pip download`` *requirements* (and their dependencies) into *cache*.

    *local* holds the freshly built sagedock wheel; it is found there and never copied into
    *cache*, so a stale sagedock wheel can never be picked up later.
    """
    cache.mkdir(parents=True, exist_ok=True)
    for stale in cache.glob("sagedock-*.whl"):
        stale.unlink()
    args = ["download", "--quiet", "-d", str(cache), "--find-links", str(local)]
    args += ["--find-links", str(cache), *platform_args(python)]
    if constraints is not None:
        args += ["-c", str(constraints)]
    args += list(requirements)
    try:
        _run_pip(args, what="downloading wheels (pip download)")
    finally:
        for stale in cache.glob("sagedock-*.whl"):
            stale.unlink()


def resolve(
    requirements: Iterable[str],
    *,
    cache: Path,
    local: Path,
    python: str,
    constraints: Path | None = None,
    offline: bool = False,
) -> Lock:
    """The exact wheels *requirements* need for *python*, from *cache* and *local* only.

    Unless *offline*, :func:`download` refreshes the cache first. In offline mode a wheel
    missing from the cache is a UserError that names it.
    """
    requirements = list(requirements)
    if not offline:
        download(requirements, cache=cache, local=local, python=python, constraints=constraints)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sagedock-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        args = ["install", "--dry-run", "--ignore-installed", "--quiet", "--no-index"]
        args += ["--find-links", str(local), "--find-links", str(cache)]
        args += ["--target", str(Path(tmp) / "target"), "--report", str(report)]
        args += platform_args(python)
        if constraints is not None:
            args += ["-c", str(constraints)]
        args += requirements
        hint = "" if not offline else " (offline: build once without --offline to fill the cache)"
        _run_pip(args, what=f"resolving {', '.join(requirements)}{hint}")
        data = json.loads(report.read_text())
    pins = []
    for item in data.get("install", []):
        meta = item["metadata"]
        url = item["download_info"]["url"]
        parsed = urlparse(url)
        if parsed.scheme != "file":
            raise PlatformError(f"resolution picked a non-local file {url}")
        pins.append(Pin(normalise(meta["name"]), meta["version"], Path(unquote(parsed.path))))
    return Lock(tuple(sorted(pins, key=lambda p: p.name)))


def write_constraints(lock: Lock, path: Path) -> Path:
    """Write *lock* as a constraints file (children must keep the parent's versions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(lock.requirements_text())
    return path


def link_wheels(pins: Iterable[Pin], dest: Path) -> list[Path]:
    """Hard-link (else copy) the wheels of *pins* into *dest*; the paths written."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for pin in pins:
        target = dest / pin.wheel.name
        if target.exists():
            target.unlink()
        try:
            os.link(pin.wheel, target)
        except OSError:
            shutil.copy2(pin.wheel, target)
        out.append(target)
    return out
