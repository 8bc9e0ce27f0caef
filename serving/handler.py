"""Hooks: where ``model_fn`` / ``input_fn`` / ``predict_fn`` / ``output_fn`` come from, and the
request path through them.

Hooks are looked up once per worker, layer by layer, the first layer that defines a hook
winning:

1. the user module (``inference.py`` in the code directory, or ``SAGEMAKER_PROGRAM``);
2. the algorithm's ``<package>.inference`` module (``sagedock serve --algorithm NAME`` or
   ``SAGEDOCK_ALGORITHM``; ``NAME`` is an entry point of ``sagedock.algorithms`` or a module);
3. framework defaults from the :class:`DefaultsRegistry` whose ``detect(model_dir)`` matches the
   model directory - used only when exactly one matches, so a default ``model_fn`` never guesses;
4. generic defaults: ``input_fn`` decodes with the codecs, ``output_fn`` encodes for the Accept
   header, ``predict_fn`` calls ``model.predict(data)`` (or ``model(data)``).

Every hook may take a trailing ``context`` argument (:class:`InferenceContext`); whether it does
is decided once, from its signature, when the hook is bound - never per request. A layer that
defines ``transform_fn`` together with ``input_fn``, ``predict_fn`` or ``output_fn`` is a
start-up error naming both.

A hook answers ``204 No Content`` by returning :data:`NO_CONTENT` (from ``input_fn`` or
``predict_fn`` the hooks after it are skipped).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from importlib.metadata import entry_points
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Final, Protocol

from werkzeug.datastructures import Headers

from sagedock.toolkit.errors import UserError

from .codecs import CodecRegistry, default_registry, text_of
from .codecs.npz import DEFAULT_MAX_PAYLOAD_BYTES
from .errors import InferenceError, ModelError, ServiceUnavailable
from .negotiation import MediaType, choose_accept, parse_accept, parse_content_type

log = logging.getLogger(__name__)

ALGORITHM_GROUP = "sagedock.algorithms"
#: Entry points (name -> ``module:attribute``) giving extra :class:`FrameworkDefaults`.
DEFAULTS_GROUP = "sagedock.serving.defaults"

DEFAULT_PROGRAM = "inference.py"
DEFAULT_CONTENT_TYPE = "application/json"
DEFAULT_ACCEPT = "application/json"
#: Request types whose body reaches user hooks as ``str`` (AWS's toolkits do the same).
TEXT_TYPES = frozenset({"application/json", "text/csv"})

#: hook name -> the positional arguments sagedock passes (``context`` may follow).
HOOK_ARGS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "model_fn": ("model_dir",),
        "input_fn": ("body", "content_type"),
        "predict_fn": ("data", "model"),
        "output_fn": ("prediction", "accept"),
        "transform_fn": ("model", "body", "content_type", "accept"),
        "pre_model_fn": ("model_dir",),
        "model_warmup_fn": ("model_dir", "model"),
        "ping_fn": ("model",),
        "execution_parameters_fn": ("model",),
    }
)
PIPELINE = ("input_fn", "predict_fn", "output_fn")
#: Functions of the user module that framework defaults call rather than the handler
#: (:attr:`FrameworkDefaults.uses`), with the positional arguments they get, as for hooks.
DEFAULTS_FUNCTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"build_model": ("model_dir",)}
)
#: Hooks that may also be defined with fewer arguments (``ping_fn()``, ``build_model()``).
OPTIONAL_ARGS = frozenset({"ping_fn", "execution_parameters_fn", "build_model"})

Hook = Callable[..., Any]


class NoContent(Enum):
    """The type of :data:`NO_CONTENT`."""

    NO_CONTENT = 204


#: What a hook returns to answer ``204 No Content`` (no body): ``input_fn`` or ``predict_fn``
#: returning it skips the hooks after it (SageMaker's XGBoost answers an empty body so);
#: ``output_fn`` or ``transform_fn`` returning it drops the prediction. ``None`` is not taken
#: for it: a forgotten ``return`` stays a 500 naming the hook.
NO_CONTENT: Final = NoContent.NO_CONTENT


# -- what hooks receive -------------------------------------------------------------------------
class ContentType(str):
    """The request's media type as hooks see it: equal to ``"text/csv"`` (lower case, no
    parameters), with ``.params`` (``label_size``, ``charset`` ...), ``.media`` and the raw
    ``.header``."""

    media: MediaType
    header: str | None

    def __new__(cls, media: MediaType, header: str | None) -> ContentType:
        self = super().__new__(cls, media.mime)
        self.media = media
        self.header = header
        return self

    @property
    def params(self) -> Mapping[str, str]:
        return self.media.params


class Accept(str):
    """The response type asked for, as hooks see it: the client's most preferred type (the
    default accept when there is no Accept header or only ``*/*``); ``.header`` is the raw
    header."""

    header: str | None

    def __new__(cls, mime: str, header: str | None) -> Accept:
        self = super().__new__(cls, mime)
        self.header = header
        return self


class HeaderLookup(Protocol):
    """Case-insensitive request headers (werkzeug's ``Headers``/``EnvironHeaders``)."""

    def get(self, key: str) -> str | None: ...


_NO_HEADERS = Headers()


@dataclass(frozen=True)
class InferenceContext:
    """What a hook taking a trailing ``context`` argument gets.

    :param headers: the request headers (case-insensitive; empty while loading a model).
    :param model_name: the model's name on a multi-model endpoint, else None.
    :param model_dir: the directory the model was loaded from.
    :param worker_id: this worker's slot, 0 .. workers-1 (stable across restarts).
    :param request_id: the id in logs and error bodies, None while loading.
    :param content_type: the parsed request media type, None while loading.
    :param batch: True in a batch transform job (``SAGEMAKER_BATCH``).
    """

    headers: HeaderLookup
    model_name: str | None
    model_dir: Path
    worker_id: int
    request_id: str | None = None
    content_type: MediaType | None = None
    batch: bool = False

    @property
    def custom_attributes(self) -> str | None:
        """``X-Amzn-SageMaker-Custom-Attributes``: free text from ``InvokeEndpoint``."""
        return self.headers.get("X-Amzn-SageMaker-Custom-Attributes")

    @property
    def target_model(self) -> str | None:
        return self.headers.get("X-Amzn-SageMaker-Target-Model")

    @property
    def target_variant(self) -> str | None:
        return self.headers.get("X-Amzn-SageMaker-Target-Variant")

    @property
    def inference_id(self) -> str | None:
        return self.headers.get("X-Amzn-SageMaker-Inference-Id")

    @property
    def gpu_id(self) -> int | None:
        """A GPU for this worker (``worker_id`` modulo the visible GPUs), None without GPUs."""
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        count = len([d for d in visible.split(",") if d.strip()]) if visible else _gpu_count()
        return self.worker_id % count if count else None

    @property
    def system_properties(self) -> Mapping[str, Any]:
        """The keys AWS's model server puts here (``model_dir``, ``gpu_id``), for old code."""
        return {"model_dir": str(self.model_dir), "gpu_id": self.gpu_id}


def _gpu_count() -> int:
    try:
        return len([p for p in Path("/proc/driver/nvidia/gpus").iterdir()])
    except OSError:
        return 0


# -- binding hooks once -------------------------------------------------------------------------
def bind_hook(fn: Hook, name: str, source: str) -> Hook:
    """*fn* as a callable always called ``f(*HOOK_ARGS[name], context)``, dropping ``context``
    (or leading arguments, for ``ping_fn()``) when *fn* does not take it. *name* may also be
    one of :data:`DEFAULTS_FUNCTIONS`.

    :raises UserError: the signature cannot take sagedock's arguments; the message names the
        hook, where it came from, and what it must look like.
    """
    args = HOOK_ARGS[name] if name in HOOK_ARGS else DEFAULTS_FUNCTIONS[name]
    base = len(args)
    expected = f"{name}({', '.join((*args, '[context]'))})"
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return fn  # builtins without signatures: call with the context, like AWS's toolkit
    params = list(signature.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    var_positional = any(p.kind is p.VAR_POSITIONAL for p in params)
    keyword_context = any(p.kind is p.KEYWORD_ONLY and p.name == "context" for p in params) or any(
        p.kind is p.VAR_KEYWORD for p in params
    )
    missing_kw = [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if missing_kw and missing_kw != ["context"]:
        raise UserError(
            f"{name} from {source} has required keyword arguments {missing_kw}; "
            f"it is called as {expected}"
        )
    if len(required) > base + 1:
        raise UserError(
            f"{name} from {source} takes {len(required)} arguments; it is called as {expected}"
        )
    takes_context = len(positional) > base and (
        positional[base].name == "context" or positional[base].default is positional[base].empty
    )
    if var_positional or takes_context:
        return fn
    if len(positional) >= base or var_positional:
        if keyword_context:
            return lambda *args: fn(*args[:-1], context=args[-1])
        return lambda *args: fn(*args[:-1])
    if name in OPTIONAL_ARGS and not required:
        return lambda *args: fn()
    raise UserError(
        f"{name} from {source} takes {len(positional)} argument(s); it is called as {expected}"
    )


# -- layers of hooks ----------------------------------------------------------------------------
@dataclass(frozen=True)
class HookLayer:
    """The hooks one source defines (a module, an algorithm, a framework), named for logs;
    *module* is the module they come from, if any (for :attr:`FrameworkDefaults.uses`)."""

    source: str
    hooks: Mapping[str, Hook]
    default_content_type: str | None = None
    default_accept: str | None = None
    module: ModuleType | None = None

    @classmethod
    def from_module(cls, module: ModuleType, source: str) -> HookLayer:
        hooks = {
            name: getattr(module, name)
            for name in HOOK_ARGS
            if callable(getattr(module, name, None))
        }
        layer = cls(
            source,
            MappingProxyType(hooks),
            getattr(module, "default_content_type", None),
            getattr(module, "default_accept", None),
            module,
        )
        layer.check()
        return layer

    def check(self) -> None:
        """:raises UserError: ``transform_fn`` beside a pipeline hook."""
        if "transform_fn" in self.hooks:
            clash = [name for name in PIPELINE if name in self.hooks]
            if clash:
                raise UserError(
                    f"{self.source} defines both transform_fn and {', '.join(clash)}: "
                    "transform_fn replaces input_fn/predict_fn/output_fn; keep one or the other"
                )


@dataclass(frozen=True)
class FrameworkDefaults:
    """Defaults a framework contributes for model directories it recognises.

    :param name: shown in logs (``"onnx"``).
    :param detect: True when a model directory (a ``Path``) holds exactly this framework's
        model.
    :param hooks: usually ``model_fn`` and ``predict_fn``; may add ``input_fn`` etc. Like
        every loading hook, ``model_fn`` gets ``model_dir`` as a ``str``.
    :param uses: functions of the user module (:data:`DEFAULTS_FUNCTIONS`) that ``model_fn``
        needs (torch-pickle's ``build_model``): the handler gives each to ``model_fn`` as a
        keyword argument, ``(function, source)`` from the first layer whose module defines
        it, or None. Calling it through :func:`bind_hook` checks its signature.
    """

    name: str
    detect: Callable[[Path], bool]
    hooks: Mapping[str, Hook]
    uses: tuple[str, ...] = ()


class DefaultsRegistry:
    """Framework defaults, in registration order. Packages add theirs with :meth:`register`
    or through the ``sagedock.serving.defaults`` entry-point group."""

    def __init__(self, defaults: Iterable[FrameworkDefaults] = ()) -> None:
        self._defaults: dict[str, FrameworkDefaults] = {}
        for item in defaults:
            self.register(item)

    def register(self, defaults: FrameworkDefaults) -> FrameworkDefaults:
        """:raises ValueError: a framework of that name is registered already."""
        if defaults.name in self._defaults:
            raise ValueError(f"framework defaults {defaults.name!r} are registered already")
        unknown = set(defaults.hooks) - set(HOOK_ARGS)
        if unknown:
            raise ValueError(f"framework defaults {defaults.name!r}: unknown hooks {unknown}")
        unknown = set(defaults.uses) - set(DEFAULTS_FUNCTIONS)
        if unknown or (defaults.uses and "model_fn" not in defaults.hooks):
            raise ValueError(
                f"framework defaults {defaults.name!r}: uses {sorted(defaults.uses)} needs a "
                f"model_fn and names from {sorted(DEFAULTS_FUNCTIONS)}"
            )
        self._defaults[defaults.name] = defaults
        return defaults

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._defaults)

    def matching(self, model_dir: Path) -> list[FrameworkDefaults]:
        """Every framework whose ``detect`` recognises *model_dir* (a failing detector is
        logged and skipped)."""
        found = []
        for item in self._defaults.values():
            try:
                if item.detect(model_dir):
                    found.append(item)
            except Exception:
                log.warning("framework defaults %s: detect() failed", item.name, exc_info=True)
        return found


def default_defaults() -> DefaultsRegistry:
    """A registry with every framework default installed packages declare in the
    ``sagedock.serving.defaults`` entry-point group (sagedock's own included: the frameworks of
    :mod:`sagedock.serving.framework_defaults`, the built-in XGBoost's model loader)."""
    registry = DefaultsRegistry()
    for ep in entry_points(group=DEFAULTS_GROUP):
        try:
            loaded = ep.load()
            items = loaded() if callable(loaded) else loaded
            for item in items if isinstance(items, list | tuple) else [items]:
                registry.register(item)
        except Exception:
            log.warning("could not load serving defaults %s = %s", ep.name, ep.value, exc_info=True)
    return registry


# -- finding the user's module and the algorithm's ----------------------------------------------
def user_module_path(code_dir: Path, program: str) -> Path | None:
    """The file (or package ``__init__.py``) *program* names in *code_dir*, if it exists."""
    name = program.removesuffix(".py")
    for candidate in (code_dir / f"{name}.py", code_dir / name / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def import_user_module(code_dir: Path, program: str, *, required: bool) -> ModuleType | None:
    """Import the user module from *code_dir* (put first on ``sys.path``, so it may import
    its siblings). None when it is absent and not *required*.

    :raises UserError: it is required but absent, or importing it failed (the message names
        the file and the error; the traceback goes to the log).
    """
    path = user_module_path(code_dir, program)
    if path is None:
        if required:
            raise UserError(
                f"SAGEMAKER_PROGRAM={program!r}: no {program.removesuffix('.py')}.py in {code_dir}"
            )
        return None
    name = program.removesuffix(".py")
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    spec = importlib.util.spec_from_file_location(
        name,
        path,
        submodule_search_locations=[str(path.parent)] if path.name == "__init__.py" else None,
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # so that pickles referring to the module resolve
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        log.exception("importing %s failed", path)
        hint = " (add the package to requirements.txt)" if isinstance(exc, ImportError) else ""
        raise UserError(f"importing {path} failed: {type(exc).__name__}: {exc}{hint}") from exc
    return module


def import_algorithm(name: str) -> tuple[ModuleType, str]:
    """The ``inference`` module of the algorithm *name* and a label for logs.

    *name* is an entry point of ``sagedock.algorithms`` (its package's ``inference`` module is
    used), or a dotted module path holding the hooks.

    :raises UserError: unknown name, or the algorithm has no inference module.
    """
    found = {ep.name: ep.value for ep in entry_points(group=ALGORITHM_GROUP)}
    if name in found:
        package = found[name].partition(":")[0]
        module_name = f"{package}.inference"
    else:
        module_name = name.partition(":")[0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise  # the module exists but imports something missing
        if name in found:
            raise UserError(
                f"the algorithm {name!r} cannot serve: no module {module_name!r}"
            ) from None
        installed = ", ".join(sorted(found)) or "none"
        raise UserError(
            f"unknown algorithm {name!r}: neither an installed algorithm ({installed}) nor an "
            "importable module with inference hooks"
        ) from None
    return module, f"algorithm {name} ({module_name})"


# -- the request path ---------------------------------------------------------------------------
@dataclass(slots=True)
class Reply:
    """What ``/invocations`` answers: a body (or an iterator of chunks), its type and the
    status (200, or 204 with an empty body and no type)."""

    body: bytes | Iterator[bytes]
    content_type: str
    status: int = 200

    @property
    def streamed(self) -> bool:
        return not isinstance(self.body, bytes)

    @classmethod
    def no_content(cls) -> Reply:
        return cls(b"", "", 204)


class HookFailed(ModelError):
    """A hook raised something other than an :class:`InferenceError` (500, naming it)."""

    def __init__(self, hook: str, exc: BaseException) -> None:
        text = str(exc)
        if len(text) > 1000:
            text = text[:1000] + "..."
        super().__init__(
            f"{hook} failed: {type(exc).__name__}: {text}"
            if text
            else f"{hook} failed: {type(exc).__name__}"
        )
        self.hook = hook

    @property
    def error_type(self) -> str:
        return "ModelError"


def _call(name: str, fn: Hook, *args: Any) -> Any:
    try:
        return fn(*args)
    except InferenceError:
        raise
    except Exception as exc:
        raise HookFailed(name, exc) from exc


_CACHE_LIMIT = 256


class Handler:
    """The hooks of one worker, resolved once: loads models and answers requests with them.

    :param layers: hook layers, highest priority first (user module, then algorithm).
    :param frameworks: framework defaults consulted per model directory.
    :param codecs: the codecs behind the generic ``input_fn`` / ``output_fn``.
    :param default_accept: ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` if set (else the
        algorithm's ``default_accept``, else ``application/json``).
    """

    def __init__(
        self,
        layers: Sequence[HookLayer] = (),
        *,
        frameworks: DefaultsRegistry | None = None,
        codecs: CodecRegistry | None = None,
        default_accept: str | None = None,
        worker_id: int = 0,
        batch: bool = False,
    ) -> None:
        self.layers = tuple(layers)
        self.frameworks = frameworks if frameworks is not None else DefaultsRegistry()
        self.codecs = codecs if codecs is not None else default_registry()
        self.worker_id = worker_id
        self.batch = batch
        self.default_accept = default_accept or next(
            (layer.default_accept for layer in self.layers if layer.default_accept),
            DEFAULT_ACCEPT,
        )
        self.default_content_type = next(
            (layer.default_content_type for layer in self.layers if layer.default_content_type),
            DEFAULT_CONTENT_TYPE,
        )
        self.ping_fn = self._bound_from_layers("ping_fn")
        self.execution_parameters_fn = self._bound_from_layers("execution_parameters_fn")

    def _bound_from_layers(self, name: str) -> tuple[Hook, str] | None:
        for layer in self.layers:
            if name in layer.hooks:
                return bind_hook(layer.hooks[name], name, layer.source), layer.source
        return None

    def resolve(self, model_dir: Path) -> dict[str, tuple[Hook, str]]:
        """The raw hook and its source for every hook that has one, for *model_dir*."""
        layers = list(self.layers)
        frameworks = self.frameworks.matching(model_dir) if model_dir.is_dir() else []
        if len(frameworks) == 1:
            layers.append(self._defaults_layer(frameworks[0]))
        elif len(frameworks) > 1:
            log.info(
                "%s looks like a model of several frameworks (%s): no framework defaults",
                model_dir,
                ", ".join(f.name for f in frameworks),
            )
        chosen: dict[str, tuple[Hook, str]] = {}
        pipeline_seen = False
        for layer in layers:
            if "transform_fn" in layer.hooks and not pipeline_seen and "transform_fn" not in chosen:
                chosen["transform_fn"] = (layer.hooks["transform_fn"], layer.source)
            if any(name in layer.hooks for name in PIPELINE):
                pipeline_seen = True
            for name, fn in layer.hooks.items():
                if name != "transform_fn":
                    chosen.setdefault(name, (fn, layer.source))
        if "transform_fn" in chosen:
            for name in PIPELINE:
                chosen.pop(name, None)
        return chosen

    def _defaults_layer(self, defaults: FrameworkDefaults) -> HookLayer:
        hooks = dict(defaults.hooks)
        if defaults.uses:
            given = {name: self._user_function(name) for name in defaults.uses}
            hooks["model_fn"] = functools.partial(hooks["model_fn"], **given)
        return HookLayer(f"{defaults.name} defaults", MappingProxyType(hooks))

    def _user_function(self, name: str) -> tuple[Hook, str] | None:
        for layer in self.layers:
            fn = getattr(layer.module, name, None) if layer.module is not None else None
            if callable(fn):
                return fn, layer.source
        return None

    def load(self, model_dir: Path, model_name: str | None = None) -> Predictor:
        """Run ``pre_model_fn``, ``model_fn`` and ``model_warmup_fn`` for *model_dir*; the
        model bound to its hooks.

        The loading hooks get ``model_dir`` as a ``str``, as AWS's toolkits pass it (user code
        writes ``model_dir + "/model.pth"``); ``context.model_dir`` is the ``Path``.

        :raises UserError: no ``model_fn`` applies, or a hook has an unusable signature.
        :raises HookFailed: a loading hook raised (the message names it).
        """
        chosen = self.resolve(model_dir)
        context = self.context(model_dir, model_name)
        bound = {name: bind_hook(fn, name, source) for name, (fn, source) in chosen.items()}
        if "model_fn" not in bound:
            raise UserError(_no_model_fn_message(model_dir, self.frameworks))
        where = str(model_dir)
        if "pre_model_fn" in bound:
            _call("pre_model_fn", bound["pre_model_fn"], where, context)
        model = _call("model_fn", bound["model_fn"], where, context)
        if "model_warmup_fn" in bound:
            _call("model_warmup_fn", bound["model_warmup_fn"], where, model, context)
        sources = {name: source for name, (_, source) in chosen.items()}
        if "transform_fn" not in bound and "predict_fn" not in bound:
            bound["predict_fn"], sources["predict_fn"] = _generic_predict(model)
        return Predictor(self, model, model_dir, model_name, bound, sources)

    def describe(self, model_dir: Path) -> list[str]:
        """``"<hook>: <source>"`` for every hook, for the start-up log."""
        chosen = self.resolve(model_dir)
        lines = [f"{name}: {source}" for name, (_, source) in chosen.items()]
        if "transform_fn" not in chosen:
            for name in ("input_fn", "output_fn"):
                if name not in chosen:
                    lines.append(f"{name}: default (codecs)")
        return sorted(lines)

    def context(
        self,
        model_dir: Path,
        model_name: str | None = None,
        headers: HeaderLookup = _NO_HEADERS,
        request_id: str | None = None,
    ) -> InferenceContext:
        """The context a hook outside a prediction gets: loading hooks, ``ping_fn`` (no
        headers), ``execution_parameters_fn`` (its request's headers)."""
        return InferenceContext(
            headers, model_name, model_dir, self.worker_id, request_id, batch=self.batch
        )

    # -- ping and execution parameters ----------------------------------------------------
    def ping(self, model: Any, context: InferenceContext | None = None) -> None:
        """Run ``ping_fn`` (it may be called from a thread of its own, beside a prediction).

        :raises ServiceUnavailable: ``ping_fn`` returned False or raised."""
        if self.ping_fn is None:
            return
        fn, source = self.ping_fn
        try:
            healthy = fn(model, context)
        except InferenceError:
            raise
        except Exception as exc:
            log.exception("ping_fn from %s failed", source)
            raise ServiceUnavailable(f"ping_fn failed: {type(exc).__name__}: {exc}") from exc
        if healthy is False:
            raise ServiceUnavailable("ping_fn reported the model unhealthy")

    def execution_parameters(
        self,
        model: Any,
        defaults: Mapping[str, Any],
        context: InferenceContext | None = None,
    ) -> dict[str, Any]:
        """*defaults* updated with what ``execution_parameters_fn`` returns."""
        params = dict(defaults)
        if self.execution_parameters_fn is not None:
            fn, _ = self.execution_parameters_fn
            extra = _call("execution_parameters_fn", fn, model, context)
            if not isinstance(extra, Mapping):
                raise ModelError(
                    f"execution_parameters_fn returned a {type(extra).__name__}; return a dict "
                    "such as {'MaxPayloadInMB': 6}"
                )
            params.update(extra)
        return params


def _no_model_fn_message(model_dir: Path, frameworks: DefaultsRegistry) -> str:
    try:
        names = sorted(p.name for p in model_dir.iterdir())
    except OSError:
        names = []
    shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "") if names else "nothing"
    known = ", ".join(frameworks.names) or "none"
    return (
        f"no model_fn: define model_fn(model_dir) in inference.py (the code directory), or "
        f"serve with --algorithm. {model_dir} holds {shown}, which no framework default "
        f"recognises unambiguously (frameworks with defaults: {known})"
    )


def _generic_predict(model: Any) -> tuple[Hook, str]:
    predict = getattr(model, "predict", None)
    if callable(predict):
        return (lambda data, model, context: model.predict(data)), "default (model.predict)"
    if callable(model):
        return (lambda data, model, context: model(data)), "default (model(data))"
    raise UserError(
        f"no predict_fn: model_fn returned a {type(model).__name__}, which has no predict() "
        "and is not callable; define predict_fn(data, model) in inference.py"
    )


ContextFactory = Callable[[MediaType], InferenceContext]


class Predictor:
    """One loaded model and its bound hooks; :meth:`invoke` answers one request."""

    def __init__(
        self,
        handler: Handler,
        model: Any,
        model_dir: Path,
        model_name: str | None,
        hooks: Mapping[str, Hook],
        sources: Mapping[str, str],
    ) -> None:
        self.handler = handler
        self.model = model
        self.model_dir = model_dir
        self.model_name = model_name
        self.sources = dict(sources)
        codecs = handler.codecs
        default_accept = handler.default_accept
        self._transform = hooks.get("transform_fn")
        self._user_input = "input_fn" in hooks
        self._default_output = "output_fn" not in hooks and self._transform is None
        self._input: Hook = hooks.get("input_fn") or (
            lambda body, ctype, context: codecs.decode(body, ctype.media)
        )
        self._predict: Hook = hooks.get("predict_fn") or _unreachable
        self._output: Hook = hooks.get("output_fn") or (
            lambda prediction, accept, context: codecs.encode(
                prediction, accept.header, default_accept
            )
        )
        self._ctypes: dict[str | None, ContentType] = {}
        self._accepts: dict[str | None, Accept] = {}

    def __repr__(self) -> str:
        return f"<Predictor {self.model_name or self.model_dir}>"

    # -- headers, parsed once per distinct value -------------------------------------------
    def content_type(self, header: str | None) -> ContentType:
        """The request's :class:`ContentType` (:raises BadRequest: malformed header)."""
        found = self._ctypes.get(header)
        if found is None:
            media = parse_content_type(header, self.handler.default_content_type)
            found = ContentType(media, header)
            if len(self._ctypes) >= _CACHE_LIMIT:
                self._ctypes.clear()
            self._ctypes[header] = found
        return found

    def accept(self, header: str | None) -> Accept:
        """The :class:`Accept` hooks get (:raises NotAcceptable: with the generic
        ``output_fn``, when no codec can produce any type the header allows)."""
        found = self._accepts.get(header)
        if found is None:
            found = Accept(self._preferred(header), header)
            if len(self._accepts) >= _CACHE_LIMIT:
                self._accepts.clear()
            self._accepts[header] = found
        return found

    def _preferred(self, header: str | None) -> str:
        default = self.handler.default_accept
        if self._default_output:
            # Refuse before running the model a request whose answer could not be encoded.
            return choose_accept(header, self.handler.codecs.encodable_types, default)
        if header is None or not header.strip():
            return default
        parsed = parse_accept(header)
        best = next((mime for mime, quality in parsed if quality > 0), "*/*")
        return default if best == "*/*" else best

    # -- the request ------------------------------------------------------------------------
    def invoke(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        make_context: ContextFactory | None = None,
    ) -> Reply:
        """Run the hooks on one request.

        :raises InferenceError: a 4xx/5xx for the client (bad headers, undecodable body, a
            hook that raised one, :class:`HookFailed` for any other exception).
        """
        ctype = self.content_type(content_type)
        wanted = self.accept(accept)
        context = make_context(ctype.media) if make_context is not None else None
        if self._transform is not None:
            result = _call(
                "transform_fn",
                self._transform,
                self.model,
                self._body_for_user(body, ctype),
                ctype,
                wanted,
                context,
            )
        else:
            data = _call(
                "input_fn",
                self._input,
                self._body_for_user(body, ctype) if self._user_input else body,
                ctype,
                context,
            )
            if data is NO_CONTENT:
                return Reply.no_content()
            prediction = _call("predict_fn", self._predict, data, self.model, context)
            if prediction is NO_CONTENT:
                return Reply.no_content()
            result = _call("output_fn", self._output, prediction, wanted, context)
        return self.reply(result, wanted)

    @staticmethod
    def _body_for_user(body: bytes, ctype: ContentType) -> bytes | str:
        if ctype in TEXT_TYPES:
            return text_of(body, ctype.media)
        return body

    def reply(self, result: Any, accept: str) -> Reply:
        """A hook's return value as a :class:`Reply` (:raises ModelError: unusable value)."""
        if result is NO_CONTENT:
            return Reply.no_content()
        content_type = str(accept)
        if isinstance(result, tuple) and len(result) == 2:
            result, content_type = result[0], str(result[1])
        if isinstance(result, bytes):
            return Reply(result, content_type)
        if isinstance(result, str):
            return Reply(result.encode("utf-8"), content_type)
        if isinstance(result, bytearray | memoryview):
            return Reply(bytes(result), content_type)
        if isinstance(result, Iterator):
            return Reply(_chunks(result), content_type)
        hook = "transform_fn" if self._transform is not None else "output_fn"
        raise ModelError(
            f"{hook} returned a {type(result).__name__}; return bytes, str, "
            "(body, content_type), an iterator of bytes (streamed) or NO_CONTENT (204)"
        )


def _chunks(items: Iterator[Any]) -> Iterator[bytes]:
    for item in items:
        if isinstance(item, str):
            item = item.encode("utf-8")
        elif not isinstance(item, bytes):
            item = bytes(item)
        if item:
            yield item


def _unreachable(*args: Any) -> Any:  # pragma: no cover - load() always binds a predict_fn
    raise ModelError("no predict_fn")


# -- assembling a worker's handler --------------------------------------------------------------
@dataclass(frozen=True)
class CodeLocation:
    """Where the user module is looked for."""

    code_dir: Path
    program: str
    required: bool = field(default=False)
    """True when ``SAGEMAKER_PROGRAM`` was given explicitly: then it must exist."""


def build_handler(
    code: CodeLocation | None,
    algorithm: str | None,
    *,
    default_accept: str | None = None,
    worker_id: int = 0,
    batch: bool = False,
    frameworks: DefaultsRegistry | None = None,
    max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
) -> Handler:
    """Import the user module and the algorithm's hooks; the worker's :class:`Handler`
    (*max_payload_bytes*: ``SAGEMAKER_MAX_PAYLOAD_IN_MB``, which bounds what the codecs let
    a compressed body expand to).

    :raises UserError: the module is missing (when required), fails to import, or defines
        ``transform_fn`` beside a pipeline hook; unknown algorithm.
    """
    layers = []
    if code is not None:
        module = import_user_module(code.code_dir, code.program, required=code.required)
        if module is not None:
            layers.append(HookLayer.from_module(module, str(module.__file__)))
    if algorithm:
        module, label = import_algorithm(algorithm)
        layers.append(HookLayer.from_module(module, label))
    return Handler(
        layers,
        frameworks=frameworks if frameworks is not None else default_defaults(),
        codecs=default_registry(max_payload_bytes=max_payload_bytes),
        default_accept=default_accept,
        worker_id=worker_id,
        batch=batch,
    )
