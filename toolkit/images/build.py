"""Building the catalog's images: wheelhouse, build context, ``docker build``, in order.

:func:`build_images` is what ``sagedock images build`` runs. For each image, parents first, it
resolves the image's requirements into a :class:`~.wheelhouse.Lock` (constrained to the
parent's lock, so a child never changes what its parent installed), lays out a build context
in the repository's layout (``Dockerfiles/`` plus ``wheelhouse/`` and, for images that install
sagedock themselves, ``sagedock/``), builds it with the build args that select those folders
(``WHEELHOUSE``, ``SAGEDOCK_WHEELS``: no package index inside the build) and reports the size
and the time taken.

The cache (wheels, the Debian root file system, contexts) is per user, not per checkout, so
it outlives a fresh clone (CI); the sagedock wheel of each checkout has its own folder in it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PlatformError, UserError
from ..version import __version__
from . import bootstrap, docker, wheelhouse
from .catalog import DEBIAN_BASE, DEFAULT_PREFIX, ImageSpec, build_order, tags

CACHE_ENV = "SAGEDOCK_IMAGES_CACHE"
#: The build args naming the context's folders; empty, the Dockerfiles install from an index.
WHEELHOUSE_ARG = "WHEELHOUSE"
SAGEDOCK_WHEELS_ARG = "SAGEDOCK_WHEELS"


def user_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME``, else ``~/.cache`` (the XDG base directory rule), at call time."""
    xdg = environ.get("XDG_CACHE_HOME", "").strip()
    # The spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg)
    home = environ.get("HOME", "").strip()
    return (Path(home) if home else Path.home()) / ".cache"


def default_cache(environ: Mapping[str, str] = os.environ) -> Path:
    """``$SAGEDOCK_IMAGES_CACHE``, else ``sagedock/images`` in the user's cache directory.

    Per user rather than per checkout, so the wheels and the Debian root file system survive
    a fresh clone (CI clones anew for every run) and are shared by a user's checkouts.
    """
    env = environ.get(CACHE_ENV, "").strip()
    return Path(env) if env else user_cache_dir(environ) / "sagedock" / "images"


def checkout_key(source: Path) -> str:
    """A short name for the checkout at *source*, unique per path, for its folders in a cache
    that several checkouts share."""
    resolved = str(source.resolve())
    return f"{Path(resolved).name}-{hashlib.sha256(resolved.encode()).hexdigest()[:12]}"


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
        """Downloaded dependency wheels, shared by every checkout using the cache."""
        return self.cache / "wheels"

    @property
    def checkout(self) -> Path:
        """This checkout's own part of the cache (several checkouts may share one)."""
        return self.cache / "checkouts" / checkout_key(self.source)

    @property
    def local(self) -> Path:
        """The sagedock wheel of this checkout: never another checkout's."""
        return self.checkout / "local"

    def context(self, name: str) -> Path:
        """Where the build context of image *name* is laid out."""
        return self.checkout / "context" / name

    def constraints(self, name: str) -> Path:
        """The constraints file pinning image *name*'s lock, for its children."""
        return self.checkout / "locks" / f"{name}.txt"


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

    The context has the repository's layout, so the Dockerfiles' paths are the same as in an
    online ``docker build`` from the checkout: ``Dockerfiles/`` (all of it: images share
    files such as base's ``entrypoint.sh``), ``wheelhouse/`` with the wheels the parent does
    not already install and a ``requirements.txt``, and for images without a parent of ours
    ``sagedock/`` (the wheel of the checkout), installed in a later layer than the
    dependencies. Build it with :func:`build_args` and :func:`dockerfile_in`.
    """
    folder = dockerfiles_dir(source)
    if not (folder / spec.name / "Dockerfile").is_file():
        raise UserError(
            f"no Dockerfile for image {spec.name!r} at {folder / spec.name / 'Dockerfile'}"
        )
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    # symlinks=False: links between image folders become copies, like any file of a context.
    shutil.copytree(
        folder,
        dest / "Dockerfiles",
        symlinks=False,
        ignore=shutil.ignore_patterns("wheelhouse", "sagedock", "__pycache__"),
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


def dockerfile_in(context: Path, spec: ImageSpec) -> Path:
    """The Dockerfile of *spec* inside a context laid out by :func:`prepare_context`."""
    return context / "Dockerfiles" / spec.name / "Dockerfile"


def build_args(spec: ImageSpec, *, base_image: str) -> dict[str, str]:
    """The ``--build-arg`` values of an offline build of *spec* from its prepared context:
    the image to start FROM and the context's folders to install from (never an index)."""
    args = {"BASE_IMAGE": base_image, WHEELHOUSE_ARG: "wheelhouse"}
    if spec.parent is None:
        args[SAGEDOCK_WHEELS_ARG] = "sagedock"
    return args


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
        if spec.parent is not None and parent_lock is not None:
            constraints = wheelhouse.write_constraints(
                parent_lock, options.constraints(spec.parent)
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
            dest=options.context(spec.name),
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
        start_from = options.debian_base
        if spec.parent:
            start_from = tags(spec.parent, options.version, options.prefix)[0]
        docker.build(
            context,
            tags=image_tags,
            build_args=build_args(spec, base_image=start_from),
            dockerfile=dockerfile_in(context, spec),
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
