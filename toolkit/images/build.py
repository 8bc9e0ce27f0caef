"""Building the catalog's images: wheelhouse, build context, ``docker build``, in order.

:func:`build_images` is what ``sagedock images build`` runs. For each image, parents first, it
resolves the image's requirements into a :class:`~.wheelhouse.Lock` (constrained to the
parent's lock, so a child never changes what its parent installed), lays out a build context
(the image's ``Dockerfiles/NAME`` folder plus ``wheelhouse/`` and, for images that install
sagedock themselves, ``sagedock/``), builds it and reports the size and the time taken.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PlatformError, UserError
from ..version import __version__
from . import bootstrap, docker, wheelhouse
from .catalog import DEBIAN_BASE, DEFAULT_PREFIX, ImageSpec, build_order, tags

CACHE_ENV = "SAGEDOCK_IMAGES_CACHE"


def default_cache(source: Path) -> Path:
    """``$SAGEDOCK_IMAGES_CACHE``, else ``.cache/images`` in the checkout."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env) if env else source / ".cache" / "images"


@dataclass(frozen=True)
class BuildOptions:
    """How to build: where from, where to cache, how to tag."""

    source: Path
    cache: Path
    offline: bool = False
    prefix: str = DEFAULT_PREFIX
    version: str = __version__
    debian_base: str = DEBIAN_BASE
    log: Callable[[str], None] = print
    echo_build: bool = True

    @property
    def wheels(self) -> Path:
        return self.cache / "wheels"

    @property
    def local(self) -> Path:
        return self.cache / "local"


@dataclass(frozen=True)
class BuildResult:
    """One built image: tags, size in bytes, seconds spent and what its wheelhouse held."""

    name: str
    tags: tuple[str, ...]
    size: int
    seconds: float
    resolve_seconds: float
    wheels: int
    wheel_bytes: int
    layers: tuple[tuple[int, str], ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "tags": list(self.tags),
            "size_bytes": self.size,
            "build_seconds": round(self.seconds, 1),
            "resolve_seconds": round(self.resolve_seconds, 1),
            "wheels": self.wheels,
            "wheel_bytes": self.wheel_bytes,
            "layers": [{"bytes": size, "created_by": by} for size, by in self.layers],
        }


def _prefixed(log: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    def echo(line: str) -> None:
        log(prefix + line)

    return echo


def dockerfiles_dir(source: Path) -> Path:
    """``Dockerfiles/`` of the checkout; UserError when *source* has none."""
    path = source / "Dockerfiles"
    if not path.is_dir():
        raise UserError(f"{source} has no Dockerfiles/ folder: pass --source CHECKOUT")
    return path


def prepare_context(
    spec: ImageSpec,
    *,
    source: Path,
    dest: Path,
    lock: wheelhouse.Lock,
    parent_lock: wheelhouse.Lock | None,
    sagedock_wheel: Path,
) -> Path:
    """Lay out the build context of *spec* in an emptied *dest*; returns *dest*.

    ``wheelhouse/`` gets the wheels the parent does not already install and a
    ``requirements.txt``; images without a parent of ours also get ``sagedock/`` (the wheel of
    the checkout), installed in a later layer than the dependencies.
    """
    folder = dockerfiles_dir(source) / spec.name
    if not (folder / "Dockerfile").is_file():
        raise UserError(f"no Dockerfile for image {spec.name!r} at {folder / 'Dockerfile'}")
    if dest.exists():
        shutil.rmtree(dest)
    # symlinks=False: a file shared between images (entrypoint.sh) is linked in the checkout
    # and copied into the context, since a build context cannot follow links out of itself.
    shutil.copytree(
        folder, dest, symlinks=False, ignore=shutil.ignore_patterns("wheelhouse", "sagedock")
    )
    wheels = dest / "wheelhouse"
    standalone = spec.parent is None
    own = [pin for pin in lock.minus(parent_lock) if pin.name != "sagedock"]
    wheelhouse.link_wheels(own, wheels)
    pins = [pin for pin in lock.pins if not (standalone and pin.name == "sagedock")]
    (wheels / "requirements.txt").write_text(wheelhouse.Lock(tuple(pins)).requirements_text())
    if standalone:
        app = dest / "sagedock"
        app.mkdir()
        shutil.copy2(sagedock_wheel, app / sagedock_wheel.name)
    return dest


def ensure_engine() -> None:
    """PlatformError saying why, when no Docker engine answers."""
    problem = docker.engine_problem()
    if problem:
        raise PlatformError(
            f"cannot build images: {problem}. Start one (scripts/docker-up starts dockerd)."
        )


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on *lock_path*: one build at a time per cache (contexts, locks)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_images(
    names: Iterable[str] | None, options: BuildOptions, *, prebuilt: Collection[str] = ()
) -> list[BuildResult]:
    """Build *names* (default: all) and the parents they need, parents first.

    Tags each image ``PREFIX/NAME:VERSION`` and ``PREFIX/NAME:latest``; logs each image's size
    and build time through ``options.log``. Builds sharing a cache run one at a time. Parents
    named in *prebuilt* (built earlier by the caller) are only resolved, not rebuilt; the
    results cover the images actually built.
    """
    specs = build_order(names)
    ensure_engine()
    with exclusive(options.cache / "build.lock"):
        return _build_all(specs, options, frozenset(prebuilt))


def _build_all(
    specs: list[ImageSpec], options: BuildOptions, prebuilt: frozenset[str]
) -> list[BuildResult]:
    log = options.log
    if any(spec.parent is None for spec in specs) and not docker.image_exists(options.debian_base):
        bootstrap.bootstrap_base(
            options.cache, ref=options.debian_base, try_pull=not options.offline, log=log
        )
    started = time.monotonic()
    wheel = wheelhouse.build_sagedock_wheel(options.source, options.local)
    log(f"images: built {wheel.name} in {time.monotonic() - started:.1f} s")
    locks: dict[str, wheelhouse.Lock] = {}
    results: list[BuildResult] = []
    for spec in specs:
        t0 = time.monotonic()
        parent_lock = locks[spec.parent] if spec.parent else None
        constraints = None
        if parent_lock is not None:
            constraints = wheelhouse.write_constraints(
                parent_lock, options.cache / "locks" / f"{spec.parent}.txt"
            )
        lock = wheelhouse.resolve(
            spec.requirement_lines(options.version),
            cache=options.wheels,
            local=options.local,
            python=spec.python,
            constraints=constraints,
            offline=options.offline,
        )
        locks[spec.name] = lock
        if spec.name in prebuilt and docker.image_exists(
            tags(spec.name, options.version, options.prefix)[0]
        ):
            continue
        context = prepare_context(
            spec,
            source=options.source,
            dest=options.cache / "context" / spec.name,
            lock=lock,
            parent_lock=parent_lock,
            sagedock_wheel=wheel,
        )
        own = [p for p in lock.minus(parent_lock) if p.name != "sagedock"]
        resolved = time.monotonic() - t0
        log(
            f"images: {spec.name}: {len(lock.pins)} distributions pinned, "
            f"{len(own)} new wheels ({sum(p.wheel.stat().st_size for p in own) / 1e6:.0f} MB)"
            f" resolved in {resolved:.1f} s"
        )
        image_tags = tags(spec.name, options.version, options.prefix)
        build_args = {"BASE_IMAGE": options.debian_base}
        if spec.parent:
            build_args["BASE_IMAGE"] = tags(spec.parent, options.version, options.prefix)[0]
        docker.build(
            context,
            tags=image_tags,
            build_args=build_args,
            on_line=_prefixed(log, f"[{spec.name}] ") if options.echo_build else None,
        )
        seconds = time.monotonic() - t0
        info = docker.inspect(image_tags[0])
        result = BuildResult(
            name=spec.name,
            tags=image_tags,
            size=info.size,
            seconds=seconds,
            resolve_seconds=resolved,
            wheels=len(own),
            wheel_bytes=sum(p.wheel.stat().st_size for p in own),
            layers=tuple(docker.layer_sizes(image_tags[0])),
        )
        results.append(result)
        log(f"images: built {image_tags[0]}  {info.size / 1e6:.0f} MB  in {seconds:.1f} s")
    return results
