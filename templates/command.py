"""``sagedock init byoc|byos NAME``: write a starter project from the templates beside this file.

- ``byoc``: your own image FROM ``sagedock/base`` (``Dockerfile``, ``train.py``,
  ``inference.py``, ``project_io.py``, ``requirements.txt``, ``data/``, ``README.md``);
- ``byos --framework pytorch|xgboost|tensorflow|sklearn``: a script for sagedock's framework
  images (``train.py``, ``inference.py``, ``project_io.py``, ``requirements.txt``, ``data/``,
  ``README.md``); a framework no sagedock image holds (sklearn) also gets a ``Dockerfile``
  adding ``requirements.txt`` to the base from a wheelhouse (``byos/docker/`` has the README
  section for each case).

``common/`` holds what every project gets whatever its kind and framework.

Templates are plain files; ``{{project}}``-style placeholders in them are replaced.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from sagedock.toolkit.errors import SagedockError, UserError

HELP = "create a starter project: byoc (your own image) or byos (your own script)"

#: framework -> (the sagedock image it runs in, or builds FROM when it brings its own Dockerfile;
#: the --hp flags its README shows)
FRAMEWORKS: Mapping[str, tuple[str, str]] = {
    "pytorch": ("pytorch", "--hp epochs=300 --hp lr=0.05 "),
    "xgboost": ("xgboost", "--hp num-round=50 --hp max-depth=3 "),
    "tensorflow": ("tensorflow", "--hp epochs=200 --hp lr=0.05 "),
    "sklearn": ("base", "--hp alpha=0.01 "),
}
DEFAULT_BASE_IMAGE = "sagedock/base:latest"
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SKIP = {"__pycache__", "__init__.py", "command.py"}


def configure(parser: argparse.ArgumentParser) -> None:
    kinds = parser.add_subparsers(dest="init_kind", metavar="KIND")
    byoc = kinds.add_parser("byoc", help="your own image FROM sagedock/base")
    byoc.add_argument("name", metavar="NAME", help="project name (also the folder and image)")
    byoc.add_argument(
        "--base-image",
        default=DEFAULT_BASE_IMAGE,
        help=f"the image the Dockerfile starts FROM (default {DEFAULT_BASE_IMAGE})",
    )
    byos = kinds.add_parser("byos", help="your own training script for a framework image")
    byos.add_argument("name", metavar="NAME", help="project name (also the folder)")
    byos.add_argument("--framework", choices=sorted(FRAMEWORKS), default="pytorch")
    for sub in (byoc, byos):
        sub.add_argument(
            "--dir", type=Path, metavar="DIR", help="where to write it (default ./NAME)"
        )


def check_name(name: str) -> str:
    """*name* if it can name a job, an image and a folder; UserError otherwise."""
    if not _NAME.match(name):
        raise UserError(
            f"project name {name!r}: use 1-63 lower-case letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    return name


def brings_its_image(framework: str) -> bool:
    """True when the byos project of *framework* has its own Dockerfile: no sagedock image
    holds the framework, so the project adds it to the base image."""
    return (files("sagedock.templates") / "byos" / framework / "Dockerfile").is_file()


def placeholders(kind: str, name: str, *, framework: str | None, base_image: str) -> dict[str, str]:
    """The values substituted for ``{{key}}`` in the templates."""
    values = {"project": name, "base_image": base_image}
    if framework is not None:
        image_name, hp_flags = FRAMEWORKS[framework]
        own = brings_its_image(framework)
        values.update(
            framework=framework,
            image_name=image_name,
            image=f"{name}:latest" if own else f"sagedock/{image_name}:latest",
            hp_flags=hp_flags,
        )
        section = "own-image.md" if own else "framework-image.md"
        text = (files("sagedock.templates") / "byos" / "docker" / section).read_text()
        values["docker_section"] = substitute(text, values).rstrip("\n")
    return values


def substitute(text: str, values: Mapping[str, str]) -> str:
    """*text* with every ``{{key}}`` of *values* replaced; UserError on an unknown key."""

    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise UserError(f"template placeholder {{{{{key}}}}} has no value")
        return values[key]

    return re.sub(r"\{\{([a-z_]+)\}\}", replace, text)


def _sources(kind: str, framework: str | None) -> list[tuple[Traversable, Path]]:
    root = files("sagedock.templates")
    pairs: list[tuple[Traversable, Path]] = []

    def walk(folder: Traversable, rel: Path) -> None:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name in _SKIP or entry.name.endswith(".pyc"):
                continue
            if entry.is_dir():
                walk(entry, rel / entry.name)
            else:
                pairs.append((entry, rel / entry.name))

    walk(root / "data", Path("data"))
    walk(root / "common", Path())
    if kind == "byoc":
        walk(root / "byoc", Path())
    else:
        assert framework is not None
        pairs.append((root / "byos" / "README.md", Path("README.md")))
        walk(root / "byos" / framework, Path())
    return pairs


def _render_bytes(data: bytes, values: Mapping[str, str]) -> bytes:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data  # binary files are copied as they are
    return substitute(text, values).encode("utf-8")


def render(
    kind: str,
    dest: Path,
    *,
    name: str,
    framework: str | None = None,
    base_image: str = DEFAULT_BASE_IMAGE,
) -> list[Path]:
    """Write the *kind* project (``byoc`` or ``byos``) called *name* into *dest*; the files.

    :raises UserError: a bad name or framework, or *dest* exists and is not empty (nothing is
        written then).
    """
    check_name(name)
    if kind not in ("byoc", "byos"):
        raise UserError(f"unknown project kind {kind!r}: byoc or byos")
    if kind == "byos" and framework not in FRAMEWORKS:
        raise UserError(f"unknown framework {framework!r}: one of {', '.join(sorted(FRAMEWORKS))}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UserError(f"{dest} exists and is not empty: choose another name or --dir")
    values = placeholders(kind, name, framework=framework, base_image=base_image)
    # Render everything first: a bad template fails before anything is written.
    rendered = [
        (rel, _render_bytes(source.read_bytes(), values))
        for source, rel in _sources(kind, framework)
    ]
    written = []
    for rel, data in rendered:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(target)
    return written


def run(args: argparse.Namespace) -> int:
    kind = getattr(args, "init_kind", None)
    if kind is None:
        print("usage: sagedock init {byoc,byos} NAME ...", file=sys.stderr)
        return 2
    dest = args.dir if args.dir is not None else Path(args.name)
    try:
        written = render(
            kind,
            dest,
            name=args.name,
            framework=getattr(args, "framework", None),
            base_image=getattr(args, "base_image", DEFAULT_BASE_IMAGE),
        )
    except SagedockError as exc:
        print(f"sagedock init: {exc.describe()}", file=sys.stderr)
        return 1
    for path in written:
        print(f"  {path}")
    print(f"created {dest}: see {dest / 'README.md'} for the commands to train and serve it")
    return 0
