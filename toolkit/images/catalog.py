"""The images sagedock builds: what each one holds and which one it starts FROM.

Pure data and pure functions. Each :class:`ImageSpec` names a folder of ``Dockerfiles/`` and
the Python requirements that go into the image's wheelhouse; :func:`build_order` sorts a
selection so that every image comes after the image it is built on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import UserError

#: The image our Dockerfiles start FROM when no parent of ours is involved.
DEBIAN_BASE = "debian:bookworm-slim"
#: Debian bookworm's python3; wheels are chosen for this interpreter.
IMAGE_PYTHON = "3.11"
#: Repository prefix of the tags, ``sagedock/NAME:VERSION``.
DEFAULT_PREFIX = "sagedock"
#: Pinned in images that create the venv, replacing the copies ``python3 -m venv`` bundles, so
#: that a child image whose packages need a newer setuptools never shadows the base's.
VENV_TOOLS = ("pip", "setuptools")


@dataclass(frozen=True)
class ImageSpec:
    """One buildable image.

    :param name: the folder under ``Dockerfiles/`` and the last part of the repository name.
    :param parent: the catalog image this one is built ``FROM``; ``None`` for images that start
        from :data:`DEBIAN_BASE` themselves.
    :param extras: extras of the sagedock distribution installed in the image.
    :param pins: further requirement lines, resolved together with sagedock and its extras.
    :param summary: one line for ``sagedock images list``.
    :param env: environment the image sets that tests and docs rely on (informational).
    """

    name: str
    parent: str | None
    extras: tuple[str, ...]
    pins: tuple[str, ...] = ()
    summary: str = ""
    env: tuple[tuple[str, str], ...] = ()
    python: str = IMAGE_PYTHON

    def requirement_lines(self, version: str) -> list[str]:
        """The top-level requirements of the image: sagedock (with extras) and the pins."""
        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        return [f"sagedock{extras}=={version}", *self.pins]


CATALOG: dict[str, ImageSpec] = {
    spec.name: spec
    for spec in (
        ImageSpec(
            name="base",
            parent=None,
            extras=("s3",),
            pins=VENV_TOOLS,
            summary="Debian bookworm-slim, python3 venv, nginx, sagedock (train/serve on PATH)",
        ),
        ImageSpec(
            name="xgboost",
            parent="base",
            extras=("s3", "xgboost"),
            summary="built-in XGBoost algorithm (algorithm mode by default) + script mode",
            env=(("SAGEDOCK_ALGORITHM", "xgboost"),),
        ),
        ImageSpec(
            name="linear-learner",
            parent="base",
            extras=("s3", "linear-learner"),
            # The +cpu build, as in pytorch: an unpinned torch resolves to a CUDA build of GBs.
            pins=("torch==2.13.0+cpu",),
            summary="built-in Linear Learner algorithm on PyTorch 2.13 (CPU build)",
            env=(("SAGEDOCK_ALGORITHM", "linear-learner"),),
        ),
        ImageSpec(
            name="pytorch",
            parent="base",
            extras=("s3", "torch"),
            # The +cpu build: an unpinned torch resolves to a CUDA build of several GB.
            pins=("torch==2.13.0+cpu",),
            summary="PyTorch 2.13 (CPU build); no torchvision (see Dockerfiles/pytorch)",
        ),
        ImageSpec(
            name="tensorflow",
            parent="base",
            extras=("s3", "tensorflow"),
            summary="TensorFlow (CPU build, tensorflow-cpu)",
        ),
        ImageSpec(
            name="onnxruntime",
            parent="base",
            extras=("s3", "onnx"),
            summary="ONNX Runtime (CPU) and onnx",
        ),
        ImageSpec(
            name="mxnet",
            parent=None,
            extras=("s3", "mxnet"),
            pins=VENV_TOOLS,
            summary="legacy MXNet 1.9.1 (CPU) with numpy<1.24, on its own venv",
        ),
    )
}


def get(name: str) -> ImageSpec:
    """The catalog entry *name*; UserError listing the known names otherwise."""
    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(CATALOG)
        raise UserError(f"unknown image {name!r}; known images: {known}") from None


def build_order(names: Iterable[str] | None = None) -> list[ImageSpec]:
    """*names* (default: every image) plus the parents they need, parents first.

    The order among independent images follows the catalog.
    """
    wanted = list(CATALOG) if names is None else list(names)
    if not wanted:
        wanted = list(CATALOG)
    selected: set[str] = set()
    for name in wanted:
        spec = get(name)
        while spec is not None and spec.name not in selected:
            selected.add(spec.name)
            spec = get(spec.parent) if spec.parent else None  # type: ignore[assignment]
    ordered: list[ImageSpec] = []
    placed: set[str] = set()
    # Catalog order already lists parents before children; the loop guards against a
    # catalog edited into another order.
    pending = [CATALOG[name] for name in CATALOG if name in selected]
    while pending:
        for spec in pending:
            if spec.parent is None or spec.parent in placed:
                ordered.append(spec)
                placed.add(spec.name)
                pending.remove(spec)
                break
        else:  # pragma: no cover - a cycle in the catalog itself
            raise AssertionError(f"cycle among images {[s.name for s in pending]}")
    return ordered


# Docker's reference grammar: an optional registry host[:port], then lower-case path components.
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9-]+)*(?::\d+)?$")
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")


def repository(name: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``PREFIX/NAME`` (a trailing ``/`` on *prefix* is ignored).

    :raises UserError: *prefix* is empty or not a repository Docker accepts (a registry
        host such as ``registry.example:5000`` may come first; the rest is lower case).
    """
    prefix = prefix.rstrip("/")
    if not prefix:
        raise UserError("the tag prefix must not be empty")
    parts = prefix.split("/")
    head = parts[0]
    first_is_host = len(parts) > 1 and ("." in head or ":" in head or head == "localhost")
    bad = [
        part
        for i, part in enumerate(parts)
        if not (_HOST if i == 0 and first_is_host else _COMPONENT).match(part)
    ]
    if bad:
        raise UserError(
            f"tag prefix {prefix!r}: {bad[0]!r} is not a valid repository component (lower-case "
            "letters, digits and . _ - between them; a registry host[:port] may come first)"
        )
    return f"{prefix}/{name}"


def tags(name: str, version: str, prefix: str = DEFAULT_PREFIX) -> tuple[str, str]:
    """The two tags of an image: ``PREFIX/NAME:VERSION`` and ``PREFIX/NAME:latest``."""
    repo = repository(name, prefix)
    return f"{repo}:{version}", f"{repo}:latest"


def names(specs: Sequence[ImageSpec]) -> list[str]:
    """The names of *specs*, in order."""
    return [spec.name for spec in specs]
