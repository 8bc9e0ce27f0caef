"""Multi-model endpoints: many models behind one endpoint, loaded on demand, evicted by LRU.

Two layers:

- :class:`ModelRegistry` - which models are *registered* (``POST /models``, or a first
  ``/invocations`` with ``X-Amzn-SageMaker-Target-Model`` naming a directory under the models
  root). It is shared by all workers of the server: one small JSON file per model in a
  directory of the server's runtime dir, created with ``O_EXCL`` (so two workers cannot both
  register a name: the second gets 409) and removed on ``DELETE``.
- :class:`ModelManager` - the models *loaded* in this worker: a least-recently-used cache
  under a memory budget. A registered model is loaded in a worker the first time that worker
  needs it; when the budget would be exceeded the least recently used models are unloaded
  (they stay registered and are loaded again when asked for). A model that alone does not fit
  is refused with 507.

The budget is per worker: ``SAGEDOCK_MODEL_CACHE_MB``, by default 70 % of the memory
available to the container (cgroup limit, else physical memory) divided by the number of
workers. A model's size is the growth of the worker's resident memory while ``model_fn`` ran
(at least the size of its files), measured when it is loaded.

Client mistakes are 4xx with a message saying what is wrong: a ``.tar.gz`` model that is
truncated, not an archive, over the archive limits or unsafe (see
:func:`sagedock.toolkit.sources.safe_extract`) is a 400 naming the archive and the reason; a
``POST /models`` body that is not a JSON object of two strings of valid UTF-8 text is a 400
naming the field.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagedock.toolkit.errors import UserError

from .errors import (
    BadRequest,
    InsufficientStorage,
    ModelAlreadyLoaded,
    ModelNotFound,
)
from .handler import Handler, Predictor

log = logging.getLogger(__name__)

MIB = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
DEFAULT_PAGE_LIMIT = 100


def memory_limit_bytes() -> int:
    """Memory this container may use: the cgroup (v2, then v1) limit, else physical memory."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            text = Path(path).read_text().strip()
            if text != "max" and int(text) < 1 << 60:
                return int(text)
    return os.sysconf("SC_PHYS_PAGES") * PAGE_SIZE


def default_budget_bytes(workers: int) -> int:
    """70 % of :func:`memory_limit_bytes` shared by *workers*."""
    return int(memory_limit_bytes() * 0.7 / max(1, workers))


def resident_bytes() -> int:
    """This process's resident set size."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):  # pragma: no cover - non-Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def disk_bytes(path: Path) -> int:
    """Total size of the files under *path*."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).stat().st_size
    return total


LOAD_BODY = '{"model_name": ..., "url": ...}'


def parse_load_request(body: bytes) -> tuple[str, str]:
    """The ``(model_name, url)`` of a ``POST /models`` body.

    :raises BadRequest: the body is not a JSON object, or a field is missing, not a
        non-empty string, or not valid text (bytes that are not UTF-8, a lone surrogate
        escape such as ``"\ud800"``, a NUL): the message names the field.
    """
    # surrogateescape keeps bytes that are not UTF-8 inside the strings they sit in, so the
    # field that holds them can be named (RFC 8259: JSON between systems is UTF-8)
    text = body.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise BadRequest(f"expected a JSON body {LOAD_BODY}")
    return _text_field(data, "model_name"), _text_field(data, "url")


def _text_field(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f'"{key}" must be a non-empty string (expected {LOAD_BODY})')
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRequest(
            f'"{key}" is not valid text: character {exc.start} is not UTF-8 '
            "(bytes that are not UTF-8, or a lone surrogate escape)"
        ) from None
    if "\0" in value:
        raise BadRequest(f'"{key}" holds a NUL character')
    return value


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    url: str

    def to_json(self) -> dict[str, str]:
        return {"modelName": self.name, "modelUrl": self.url}


class ModelRegistry:
    """Registered models, shared by the workers through files in *root*."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _file(self, name: str) -> Path:
        return self.root / (hashlib.sha256(name.encode("utf-8")).hexdigest()[:40] + ".json")

    def version(self) -> int:
        """Changes whenever a model is registered or unregistered."""
        return self.root.stat().st_mtime_ns

    def register(self, name: str, url: str) -> RegisteredModel:
        """:raises ModelAlreadyLoaded: *name* is registered already (409)."""
        data = json.dumps({"name": name, "url": url}).encode("utf-8")
        path = self._file(name)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        try:
            os.link(tmp, path)  # atomic create-if-absent, with the content already in place
        except FileExistsError:
            raise ModelAlreadyLoaded(f'model "{name}" is already loaded') from None
        finally:
            tmp.unlink(missing_ok=True)
        return RegisteredModel(name, url)

    def unregister(self, name: str) -> None:
        """:raises ModelNotFound: *name* is not registered (404)."""
        try:
            self._file(name).unlink()
        except FileNotFoundError:
            raise ModelNotFound(f'model "{name}" is not loaded') from None

    def get(self, name: str) -> RegisteredModel | None:
        try:
            data = json.loads(self._file(name).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        return RegisteredModel(data["name"], data["url"])

    def all(self) -> list[RegisteredModel]:
        found = []
        for path in self.root.glob("*.json"):
            with contextlib.suppress(FileNotFoundError, ValueError):
                data = json.loads(path.read_bytes())
                found.append(RegisteredModel(data["name"], data["url"]))
        return sorted(found, key=lambda m: m.name)


@dataclass
class _Loaded:
    predictor: Predictor
    url: str
    size: int


class ModelManager:
    """The models loaded in this worker (LRU under *budget_bytes*) over a shared registry.

    :param models_dir: the models root (``/opt/ml/models``); targets and urls must be in it.
    :param unpack_dir: where ``.tar.gz`` models are extracted.
    :param measure: the worker's memory use in bytes (resident set size by default).
    """

    def __init__(
        self,
        handler: Handler,
        registry: ModelRegistry,
        models_dir: Path,
        *,
        budget_bytes: int,
        unpack_dir: Path | None = None,
        measure: Callable[[], int] = resident_bytes,
    ) -> None:
        self.handler = handler
        self.registry = registry
        self.models_dir = models_dir
        self.budget = budget_bytes
        self.unpack_dir = unpack_dir or registry.root.parent / "unpacked"
        self._measure = measure
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._version = -1

    # -- what the routes call ---------------------------------------------------------------
    def load(self, name: str, url: str) -> Predictor:
        """``POST /models``: register *name* and load it in this worker.

        :raises ModelNotFound: *url* does not exist (404).
        :raises ModelAlreadyLoaded: *name* is registered already (409).
        :raises InsufficientStorage: the model does not fit in the budget (507).
        """
        model_dir = self._resolve_url(url)
        self.registry.register(name, url)
        try:
            return self._load(name, url, model_dir)
        except BaseException:
            with contextlib.suppress(ModelNotFound):
                self.registry.unregister(name)
            raise

    def unload(self, name: str) -> None:
        """``DELETE /models/<name>`` (:raises ModelNotFound: not registered)."""
        self.registry.unregister(name)
        self._evict(name)

    def describe(self, name: str) -> dict[str, str]:
        """``GET /models/<name>`` (:raises ModelNotFound: not registered)."""
        found = self.registry.get(name)
        if found is None:
            raise ModelNotFound(f'model "{name}" is not loaded')
        return found.to_json()

    def list_page(self, token: str | None, limit: str | None) -> dict[str, Any]:
        """``GET /models``: ``{"models": [...], "nextPageToken": ...}`` (token when more)."""
        try:
            start = int(token) if token else 0
            size = int(limit) if limit else DEFAULT_PAGE_LIMIT
        except ValueError:
            raise BadRequest("next_page_token and limit must be integers") from None
        if start < 0 or size < 1:
            raise BadRequest("next_page_token must be >= 0 and limit >= 1")
        models = self.registry.all()
        page: dict[str, Any] = {"models": [m.to_json() for m in models[start : start + size]]}
        if start + size < len(models):
            page["nextPageToken"] = str(start + size)
        return page

    def get(self, name: str) -> Predictor:
        """The loaded model *name*, loading it in this worker if needed (404 if unknown)."""
        self._sync()
        loaded = self._loaded.get(name)
        if loaded is not None:
            self._loaded.move_to_end(name)
            return loaded.predictor
        found = self.registry.get(name)
        if found is None:
            raise ModelNotFound(f'model "{name}" is not loaded')
        return self._load(name, found.url, self._resolve_url(found.url))

    def for_target(self, target: str) -> Predictor:
        """The model an ``X-Amzn-SageMaker-Target-Model`` header names: a registered model,
        or a directory / ``.tar.gz`` under the models root, registered on first use - and
        unregistered again when that first load fails (507, a failing ``model_fn``), as
        ``POST /models`` leaves nothing registered when its load fails."""
        self._sync()
        if target in self._loaded or self.registry.get(target) is not None:
            return self.get(target)
        path = self._target_path(target)
        try:
            self.registry.register(target, str(path))
        except ModelAlreadyLoaded:  # another worker registered it meanwhile: theirs to undo
            return self.get(target)
        try:
            return self.get(target)
        except BaseException:
            with contextlib.suppress(ModelNotFound):
                self.registry.unregister(target)
            raise

    @property
    def loaded_names(self) -> list[str]:
        """Names loaded in this worker, least recently used first."""
        return list(self._loaded)

    # -- internals --------------------------------------------------------------------------
    def _sync(self) -> None:
        version = self.registry.version()
        if version == self._version:
            return
        self._version = version
        for name, loaded in list(self._loaded.items()):
            found = self.registry.get(name)
            if found is None or found.url != loaded.url:
                self._evict(name)

    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        roots = (self.models_dir.resolve(), self.unpack_dir.resolve())
        if not any(resolved == root or root in resolved.parents for root in roots):
            raise ModelNotFound(f"{path} is outside the models directory {self.models_dir}")
        return resolved

    def _target_path(self, target: str) -> Path:
        relative = target.strip("/")
        candidates = [self.models_dir / relative]
        if relative.endswith(".tar.gz"):
            candidates.append(self.models_dir / relative.removesuffix(".tar.gz"))
        for candidate in candidates:
            if candidate.exists():
                return self._inside(candidate)
        raise ModelNotFound(
            f'model "{target}" is not loaded and {self.models_dir / relative} does not exist'
        )

    def _resolve_url(self, url: str) -> Path:
        """The directory to give ``model_fn`` for *url* (tarballs are extracted)."""
        text = url.removeprefix("file://")
        path = Path(text) if Path(text).is_absolute() else self.models_dir / text
        if not path.exists():
            raise ModelNotFound(f"model url {url} does not exist")
        path = self._inside(path)
        if path.is_dir():
            nested = path / "model"
            return (
                nested
                if nested.is_dir() and not any(p for p in path.iterdir() if p.name != "model")
                else path
            )
        if path.name.endswith((".tar.gz", ".tgz", ".tar")):
            return self._unpack(path)
        raise ModelNotFound(f"model url {url} is neither a directory nor a .tar.gz")

    def _unpack(self, archive: Path) -> Path:
        from sagedock.toolkit.sources import safe_extract

        digest = hashlib.sha256(f"{archive}:{archive.stat().st_mtime_ns}".encode()).hexdigest()
        dest = self.unpack_dir / digest[:32]
        if not dest.is_dir():
            self.unpack_dir.mkdir(parents=True, exist_ok=True)
            try:
                safe_extract(archive, dest)
            except UserError as exc:  # the archive's fault: the client's model, not our bug
                raise BadRequest(f"cannot load the model archive: {exc.message}") from None
        return dest

    def _evict(self, name: str) -> None:
        loaded = self._loaded.pop(name, None)
        if loaded is not None:
            log.info("unloaded model %s (%.1f MiB)", name, loaded.size / MIB)
            del loaded
            gc.collect()

    def _used(self) -> int:
        return sum(item.size for item in self._loaded.values())

    def _make_room(self, needed: int, keep: str | None = None) -> None:
        while self._loaded and self._used() + needed > self.budget:
            victim = next((n for n in self._loaded if n != keep), None)
            if victim is None:
                return
            log.info("memory budget: unloading least recently used model %s", victim)
            self._evict(victim)

    def _load(self, name: str, url: str, model_dir: Path) -> Predictor:
        estimate = disk_bytes(model_dir)
        if estimate > self.budget:
            raise self._too_big(name, estimate)
        self._make_room(estimate)
        before = self._measure()
        started = time.monotonic()
        try:
            predictor = self.handler.load(model_dir, name)
        except MemoryError:
            gc.collect()
            raise InsufficientStorage(
                f'not enough memory to load model "{name}" (model_fn raised MemoryError)'
            ) from None
        size = max(self._measure() - before, estimate)
        self._loaded[name] = _Loaded(predictor, url, size)
        if size > self.budget:
            self._evict(name)
            raise self._too_big(name, size)
        self._make_room(0, keep=name)
        log.info(
            "loaded model %s from %s in %.2f s (%.1f MiB; %d loaded, %.1f of %.1f MiB used)",
            name,
            model_dir,
            time.monotonic() - started,
            size / MIB,
            len(self._loaded),
            self._used() / MIB,
            self.budget / MIB,
        )
        return predictor

    def _too_big(self, name: str, size: int) -> InsufficientStorage:
        return InsufficientStorage(
            f'model "{name}" needs about {size / MIB:.1f} MiB, more than the '
            f"{self.budget / MIB:.1f} MiB each worker may use for models "
            "(SAGEDOCK_MODEL_CACHE_MB)"
        )

    def stats(self) -> Mapping[str, Any]:
        return {
            "loaded": list(self._loaded),
            "used_bytes": self._used(),
            "budget_bytes": self.budget,
        }
