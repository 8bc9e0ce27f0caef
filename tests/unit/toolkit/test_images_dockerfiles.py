"""The Dockerfiles' two ways to build: offline from the context's wheelhouse (the build args
`sagedock images build` passes) and online from a package index (a plain `docker build` from
the checkout, no build args).

Docker cannot reach an index here, so these tests read each Dockerfile as Docker does (line
continuations, stages, the ARGs each stage declares, ``${VAR:-word}`` in COPY sources) and run
its install commands in a shell with a recording ``pip`` on PATH: what the arguments select is
what pip is asked to do.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sagedock.toolkit.images.build import build_args, dockerfile_in, prepare_context
from sagedock.toolkit.images.catalog import CATALOG, ImageSpec
from sagedock.toolkit.images.wheelhouse import Lock, Pin

REPO = Path(__file__).resolve().parents[3]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
INSTALL_EXTRA = REPO / "Dockerfiles" / "base" / "install-extra.sh"
# ARGs Docker defines itself, usable without a declaration
PREDEFINED = {"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY"}


@dataclass
class Stage:
    base: str
    args: dict[str, str] = field(default_factory=dict)
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """The global ARGs and the stages of a Dockerfile (instructions with continuations
    joined, comments dropped)."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        if not pending and raw.lstrip().startswith("#"):
            continue
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        line = pending + raw
        pending = ""
        if line.strip():
            logical.append(line.strip())
    assert not pending, f"{path}: a continuation runs off the end"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stages.append(Stage(rest.split()[0]))
        elif word == "ARG":
            name, _, default = rest.partition("=")
            (stages[-1].args if stages else global_args)[name.strip()] = default.strip()
        else:
            assert stages, f"{path}: {word} before FROM"
            stages[-1].instructions.append((word, rest))
    return global_args, stages


def expand(text: str, values: dict[str, str]) -> str:
    """Docker's substitution: ``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR:+word}``."""

    def one(match: re.Match[str]) -> str:
        name, op, word = match.group(1) or match.group(4), match.group(2), match.group(3)
        value = values.get(name, "")
        if op == ":-":
            return value or word
        if op == ":+":
            return word if value else ""
        return value

    return re.sub(r"\$\{(\w+)(?:(:[-+])([^}]*))?\}|\$(\w+)", one, text)


def stage_values(stage: Stage, given: dict[str, str]) -> dict[str, str]:
    """The ARG values one stage sees: only those it declares (Docker's scoping)."""
    return {name: given.get(name, default) for name, default in stage.args.items()}


def copy_sources(stage: Stage, given: dict[str, str]) -> list[str]:
    values = stage_values(stage, given)
    sources = []
    for word, rest in stage.instructions:
        if word == "COPY" and not rest.startswith("--from"):
            sources += expand(rest, values).split()[:-1]
    return sources


def run_installs(stage: Stage, given: dict[str, str], tmp: Path) -> list[list[str]]:
    """Run the stage's RUN commands with ``pip`` (and ``python3 -m venv``) recorded, not
    executed; ``/tmp`` and ``/opt`` of the image are folders under *tmp*. The pip calls."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp / "pip.log"
    log.unlink(missing_ok=True)
    (bin_dir / "pip").write_text(
        '#!/bin/sh\nprintf "%s\\037" "$@" >>"$PIP_LOG"; echo >>"$PIP_LOG"\n'
        '[ "$1" = freeze ] && echo "numpy==2.0.0"\nexit 0\n'
    )
    (bin_dir / "python3").write_text(
        f'#!/bin/sh\n[ "$1" = -m ] && [ "$2" = venv ] && exit 0\nexec {sys.executable} "$@"\n'
    )
    # what base images put on PATH for every image's install step
    (bin_dir / "sagedock-install-extra").write_bytes(INSTALL_EXTRA.read_bytes())
    for tool in ("pip", "python3", "sagedock-install-extra"):
        (bin_dir / tool).chmod(0o755)
    (tmp / "scratch").mkdir(exist_ok=True)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "PIP_LOG": str(log),
        "TMPDIR": str(tmp / "scratch"),
        **stage_values(stage, given),
    }
    for word, rest in stage.instructions:
        if word != "RUN" or not ("pip install" in rest or "sagedock-install-extra" in rest):
            continue
        command = rest.replace("/tmp/", f"{tmp}/img-tmp/").replace("/opt/", f"{tmp}/img-opt/")
        done = subprocess.run(["sh", "-ec", command], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    if not log.exists():
        return []
    return [line.split("\x1f")[:-1] for line in log.read_text().splitlines() if line]


def install_stage(stages: list[Stage]) -> Stage:
    """The stage that installs the image's dependencies (the first to copy a wheelhouse)."""
    return next(s for s in stages if any("WHEELHOUSE" in r for w, r in s.instructions))


def dockerfile(name: str) -> Path:
    return REPO / "Dockerfiles" / name / "Dockerfile"


def own_extras(spec: ImageSpec) -> set[str]:
    parent = set(CATALOG[spec.parent].extras) if spec.parent else set()
    return set(spec.extras) - parent


@pytest.mark.parametrize("name", list(CATALOG))
def test_every_arg_a_stage_uses_is_declared_in_that_stage(name: str) -> None:
    global_args, stages = parse(dockerfile(name))
    for stage in stages:
        used = set(re.findall(r"\$\{?(\w+)", " ".join(r for _, r in stage.instructions)))
        # variables the image itself sets (ENV) or the shell sets are not build args
        env = {"PATH", "VIRTUAL_ENV", "LANG", "@"}
        undeclared = {
            v for v in used if v.isupper() and v not in stage.args and v not in PREDEFINED | env
        }
        assert not undeclared, f"{name}: stage FROM {stage.base} uses undeclared {undeclared}"
    assert "BASE_IMAGE" in global_args  # the FROM lines need it before the first stage


@pytest.mark.parametrize("name", list(CATALOG))
def test_without_build_args_a_plain_docker_build_from_the_checkout_installs_from_an_index(
    name: str, tmp_path: Path
) -> None:
    spec = CATALOG[name]
    _, stages = parse(dockerfile(name))
    # every file the online build copies is in the checkout, the build context
    for stage in stages:
        for source in copy_sources(stage, {}):
            assert (REPO / source).exists(), f"{name}: COPY {source} is not in the checkout"
    (tmp_path / "img-tmp" / "wheelhouse").mkdir(parents=True)
    (tmp_path / "img-tmp" / "wheelhouse" / "pyproject.toml").write_bytes(
        (REPO / "pyproject.toml").read_bytes()
    )
    calls = run_installs(install_stage(stages), {}, tmp_path)
    installs = [c for c in calls if c[0] == "install"]
    assert len(installs) == 1, calls
    args = installs[0]
    assert "--no-index" not in args
    requirements = Path(args[args.index("-r") + 1]).read_text().split("\n")
    wanted = list(PYPROJECT["dependencies"])
    for extra in sorted(own_extras(spec), key=spec.extras.index):
        wanted += PYPROJECT["optional-dependencies"][extra]
    wanted += [pin for pin in spec.pins if pin not in ("pip", "setuptools")]
    assert [r for r in requirements if r] == wanted
    if spec.parent is not None:
        # a child keeps what its parent installed: the parent's freeze is a constraint
        assert ["freeze", "--all", "--exclude", "sagedock"] in calls
        assert Path(args[args.index("-c") + 1]).read_text() == "numpy==2.0.0\n"
    else:
        assert "-c" not in args and not [c for c in calls if c[0] == "freeze"]


@pytest.mark.parametrize("name", list(CATALOG))
def test_the_offline_build_args_install_only_from_the_context_folders(
    name: str, tmp_path: Path
) -> None:
    spec = CATALOG[name]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    pins = []
    for dist, version in (("flask", "3.1"), ("sagedock", "0.1.0")):
        (wheels / f"{dist}-{version}-py3-none-any.whl").write_bytes(b"")
        pins.append(Pin(dist, version, wheels / f"{dist}-{version}-py3-none-any.whl"))
    lock = Lock(tuple(pins))
    context = prepare_context(
        spec,
        source=REPO,
        dest=tmp_path / "ctx",
        lock=lock,
        parent_lock=None if spec.parent is None else Lock(()),
        sagedock_wheel=wheels / "sagedock-0.1.0-py3-none-any.whl",
    )
    given = build_args(spec, base_image="debian:bookworm-slim")
    _, stages = parse(dockerfile_in(context, spec))
    for stage in stages:
        for source in copy_sources(stage, given):
            assert (context / source).exists(), f"{name}: COPY {source} not in the context"
    (tmp_path / "img-tmp").mkdir()
    (tmp_path / "img-tmp" / "wheelhouse").symlink_to(context / "wheelhouse")
    if spec.parent is None:
        (tmp_path / "img-tmp" / "sagedock").symlink_to(context / "sagedock")
    calls = []
    for stage in stages:
        calls += run_installs(stage, given, tmp_path)
    assert calls, f"{name}: no pip call"
    for call in calls:
        assert call[0] == "install" and "--no-index" in call, call
    first = calls[0]
    assert first[first.index("--find-links") + 1].endswith("img-tmp/wheelhouse")
    assert first[first.index("-r") + 1].endswith("img-tmp/wheelhouse/requirements.txt")
    if spec.parent is None:
        assert calls[1][-1].endswith("img-tmp/sagedock/sagedock-0.1.0-py3-none-any.whl")
        assert "--no-deps" in calls[1]


def test_the_online_base_build_keeps_heavy_folders_out_of_its_context() -> None:
    ignored = (REPO / "Dockerfiles" / "base" / "Dockerfile.dockerignore").read_text().split()
    for heavy in (".venv", ".git", ".cache", "tests"):
        assert heavy in ignored
    for needed in ("pyproject.toml", "setup.py", "toolkit", "serving", "Dockerfiles"):
        assert needed not in ignored


@pytest.mark.parametrize(
    ("files", "extras", "message"),
    [
        ({}, ["s3"], "holds neither requirements.txt (a wheelhouse) nor pyproject.toml"),
        ({"pyproject.toml": "[project]\ndependencies = []\n"}, ["gpu"], "has no extra gpu"),
    ],
)
def test_install_extra_refuses_a_source_it_cannot_install_from(
    files: dict[str, str], extras: list[str], message: str, tmp_path: Path
) -> None:
    source = tmp_path / "wheelhouse"
    source.mkdir()
    for name, text in files.items():
        (source / name).write_text(text)
    done = subprocess.run(
        ["sh", str(INSTALL_EXTRA), str(source), *extras],
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert message in done.stderr
