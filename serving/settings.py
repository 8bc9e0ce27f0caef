"""Every knob of ``serve``, declared once: one frozen :class:`ServingSettings` read from the env.

Each field of :class:`ServingSettings` carries its environment variable, parser, default,
command-line flag and documentation (:func:`setting`). Everything else is generated from that
table: loading (:meth:`ServingSettings.load`), the ``sagedock serve`` flags
(``serving.command``), the README's variable table (:func:`markdown_table`) and the JSON
snapshot that the supervisor hands to gunicorn and its workers, so that every process sees the
same values, command-line overrides included.

Precedence, lowest first: the field's default, the environment, explicit overrides (the command
line). Nothing is read at import time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagedock.toolkit.errors import UserError
from sagedock.toolkit.paths import DEFAULT_BASE_DIR, MlPaths

MIB = 1024 * 1024

Parser = Callable[[str], Any]


class SettingError(UserError):
    """A variable has a value its parser refuses; the message names the variable."""


def setting(
    env: str,
    parse: Parser,
    default: Any,
    doc: str,
    *,
    cli: str | None = None,
    shown_default: str | None = None,
) -> Any:
    """A settings field: *env* parsed by *parse*, else *default* (a callable is called at load
    time, never at import time). *cli* names the ``sagedock serve`` flag that overrides it."""
    meta = {"env": env, "parse": parse, "doc": doc, "cli": cli, "shown_default": shown_default}
    if callable(default):
        return field(default=None, metadata={**meta, "default_factory": default})
    return field(default=default, metadata=meta)


# -- parsers: pure, each raises ValueError with what was expected ------------------------------
def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def parse_port(value: str) -> int:
    port = int(value.strip())
    if not 1 <= port <= 65535:
        raise ValueError("expected a TCP port between 1 and 65535")
    return port


def parse_port_range(value: str) -> tuple[int, int] | None:
    if not value.strip():
        return None
    low, sep, high = value.strip().partition("-")
    if not sep:
        raise ValueError("expected a range like 8081-8090")
    first, last = parse_port(low), parse_port(high)
    if first > last:
        raise ValueError("the first port of the range is above the last")
    return first, last


def parse_positive_int(value: str) -> int:
    number = int(value.strip())
    if number < 1:
        raise ValueError("expected a positive integer")
    return number


def parse_optional_positive_int(value: str) -> int | None:
    return parse_positive_int(value) if value.strip() else None


def parse_seconds(value: str) -> float:
    number = float(value.strip())
    if not number > 0 or number != number or number == float("inf"):
        raise ValueError("expected a positive number of seconds")
    return number


def parse_megabytes(value: str) -> float:
    number = float(value.strip())
    if not 0 <= number < float("inf"):
        raise ValueError("expected a number of megabytes >= 0 (0: no limit)")
    return number


def parse_optional_megabytes(value: str) -> float | None:
    if not value.strip():
        return None
    number = parse_megabytes(value)
    if number == 0:
        raise ValueError("expected a positive number of megabytes")
    return number


def parse_media_type(value: str) -> str:
    mime = value.split(";", 1)[0].strip().lower()
    kind, sep, sub = mime.partition("/")
    if not sep or not kind or not sub or "*" in mime or " " in mime:
        raise ValueError("expected a media type such as application/json")
    return mime


def parse_text(value: str) -> str:
    if not value.strip():
        raise ValueError("expected a non-empty value")
    return value.strip()


def parse_optional_text(value: str) -> str | None:
    return value.strip() or None


def parse_optional_path(value: str) -> Path | None:
    return Path(value.strip()) if value.strip() else None


def parse_path(value: str) -> Path:
    return Path(parse_text(value))


def parse_log_level(value: str) -> int:
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    level = logging.getLevelName(text.upper())
    if not isinstance(level, int):
        raise ValueError("expected a logging level (DEBUG, INFO, WARNING, ERROR or a number)")
    return level


BATCH_STRATEGIES = {"MULTI_RECORD": "MULTI_RECORD", "SINGLE_RECORD": "SINGLE_RECORD"}
BATCH_STRATEGIES.update({"MULTIRECORD": "MULTI_RECORD", "SINGLERECORD": "SINGLE_RECORD"})


def parse_batch_strategy(value: str) -> str | None:
    """``MULTI_RECORD`` / ``SINGLE_RECORD``; the API spellings ``MultiRecord`` /
    ``SingleRecord`` are accepted too."""
    if not value.strip():
        return None
    key = value.strip().upper().replace("-", "_")
    if key not in BATCH_STRATEGIES:
        raise ValueError("expected MULTI_RECORD or SINGLE_RECORD")
    return BATCH_STRATEGIES[key]


# -- defaults computed at load time ------------------------------------------------------------
def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, int(-(-int(quota) // int(period)))))
    except (OSError, ValueError):
        pass
    return max(1, count)


@dataclass(frozen=True)
class ServingSettings:
    """How ``serve`` runs. Build with :meth:`load`; every field is documented in its setting."""

    port: int = setting(
        "SAGEMAKER_BIND_TO_PORT",
        parse_port,
        8080,
        "TCP port the endpoint listens on.",
        cli="--port",
    )
    safe_port_range: tuple[int, int] | None = setting(
        "SAGEMAKER_SAFE_PORT_RANGE",
        parse_port_range,
        None,
        "Ports the container may use besides the bind port (`XXXX-YYYY`); validated. sagedock "
        "needs no extra port (nginx reaches the workers over unix sockets).",
        shown_default="unset",
    )
    workers: int = setting(
        "SAGEMAKER_MODEL_SERVER_WORKERS",
        parse_positive_int,
        available_cpus,
        "Worker processes; each loads its own copy of the model.",
        cli="--workers",
        shown_default="CPUs available",
    )
    timeout: float = setting(
        "SAGEMAKER_MODEL_SERVER_TIMEOUT",
        parse_seconds,
        60.0,
        "Seconds a request may take before it is answered 504 (the worker is then replaced); "
        "for a streamed response, the seconds each chunk may take.",
        cli="--timeout",
    )
    max_payload_mb: float = setting(
        "SAGEMAKER_MAX_PAYLOAD_IN_MB",
        parse_megabytes,
        6.0,
        "Largest request body in MiB; larger bodies get 413. 0 means no limit.",
    )
    default_accept: str | None = setting(
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT",
        parse_media_type,
        None,
        "Response type when a request has no Accept header, or only `*/*`.",
        shown_default="`application/json` (or the algorithm's `default_accept`)",
    )
    program: str | None = setting(
        "SAGEMAKER_PROGRAM",
        parse_optional_text,
        None,
        "The user module in the code directory; when set explicitly it must exist.",
        shown_default="`inference.py`",
    )
    submit_directory: str | None = setting(
        "SAGEMAKER_SUBMIT_DIRECTORY",
        parse_optional_text,
        None,
        "Where the user code is: a directory, `file://` URI, `.tar.gz` or `s3://` tarball.",
        shown_default="`<model dir>/code`",
    )
    log_level: int = setting(
        "SAGEMAKER_CONTAINER_LOG_LEVEL",
        parse_log_level,
        logging.INFO,
        "Log level: a name (`INFO`) or a number (`20`).",
        shown_default="INFO",
    )
    batch: bool = setting(
        "SAGEMAKER_BATCH",
        parse_bool,
        False,
        "Set by the platform for batch transform; shown to hooks as `context.batch`.",
    )
    max_concurrent_transforms: int | None = setting(
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS",
        parse_optional_positive_int,
        None,
        "`MaxConcurrentTransforms` reported by `/execution-parameters`.",
        shown_default="workers",
    )
    batch_strategy: str | None = setting(
        "SAGEMAKER_BATCH_STRATEGY",
        parse_batch_strategy,
        None,
        "`BatchStrategy` reported by `/execution-parameters`.",
        shown_default="MULTI_RECORD",
    )
    multi_model: bool = setting(
        "SAGEMAKER_MULTI_MODEL",
        parse_bool,
        False,
        "Multi-model endpoint: models under `/opt/ml/models`, the `/models` API.",
        cli="--multi-model",
    )
    use_nginx: bool = setting(
        "SAGEMAKER_USE_NGINX",
        parse_bool,
        True,
        "Put nginx in front of the workers (when installed); false: gunicorn binds the port.",
        cli="--nginx",
    )
    base_dir: Path = setting(  # noqa: RUF009 - a field(), not a default value
        "SAGEMAKER_BASE_DIR",
        parse_path,
        DEFAULT_BASE_DIR,
        "Base of the `/opt/ml` tree.",
    )
    algorithm: str | None = setting(
        "SAGEDOCK_ALGORITHM",
        parse_optional_text,
        None,
        "Built-in algorithm (`sagedock.algorithms` entry point) or module whose hooks are the "
        "defaults under the user module.",
        cli="--algorithm",
        shown_default="unset",
    )
    model_dir_override: Path | None = setting(  # noqa: RUF009 - a field()
        "SAGEDOCK_MODEL_DIR",
        parse_optional_path,
        None,
        "The model directory (multi-model: the models root) instead of the `/opt/ml` one.",
        cli="--model-dir",
        shown_default="`/opt/ml/model`",
    )
    model_cache_mb: float | None = setting(
        "SAGEDOCK_MODEL_CACHE_MB",
        parse_optional_megabytes,
        None,
        "Multi-model: memory each worker may use for loaded models before it unloads the "
        "least recently used.",
        shown_default="70% of memory / workers",
    )
    graceful_timeout: float = setting(
        "SAGEDOCK_GRACEFUL_TIMEOUT",
        parse_seconds,
        30.0,
        "Seconds SIGTERM waits for in-flight requests before killing what is left.",
    )
    access_log: bool = setting(
        "SAGEDOCK_ACCESS_LOG",
        parse_bool,
        True,
        "Log one line per request.",
    )
    log_ping: bool = setting(
        "SAGEDOCK_LOG_PING",
        parse_bool,
        False,
        "Also log `/ping` requests (off: health checks would flood the log).",
    )

    # -- derived values ---------------------------------------------------------------------
    @property
    def paths(self) -> MlPaths:
        return MlPaths(self.base_dir)

    @property
    def model_dir(self) -> Path:
        """The model directory (single-model mode)."""
        if self.model_dir_override is not None and not self.multi_model:
            return self.model_dir_override
        return self.paths.model_dir

    @property
    def models_dir(self) -> Path:
        """The root of the models (multi-model mode)."""
        if self.model_dir_override is not None and self.multi_model:
            return self.model_dir_override
        return self.paths.multi_model_dir

    @property
    def max_payload_bytes(self) -> int | None:
        """The body limit in bytes, None when unlimited."""
        return int(self.max_payload_mb * MIB) if self.max_payload_mb > 0 else None

    # -- loading ----------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> ServingSettings:
        """Defaults, then *environ* (default ``os.environ``), then *overrides* (field name ->
        parsed value; None values are ignored).

        :raises SettingError: a variable does not parse; the message names it and its value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            meta = spec.metadata
            raw = env.get(meta["env"])
            if raw is not None:
                values[spec.name] = parse_env(meta["env"], meta["parse"], raw)
            elif "default_factory" in meta:
                values[spec.name] = meta["default_factory"]()
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = value
        return cls(**values)

    def to_json(self) -> str:
        """A snapshot for child processes (:meth:`from_json` reads it back)."""
        data = {}
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            data[spec.name] = str(value) if isinstance(value, Path) else value
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ServingSettings:
        data = json.loads(text)
        for name in ("base_dir", "model_dir_override"):
            if data.get(name) is not None:
                data[name] = Path(data[name])
        if data.get("safe_port_range") is not None:
            data["safe_port_range"] = tuple(data["safe_port_range"])
        return cls(**data)


def parse_env(name: str, parse: Parser, raw: str) -> Any:
    """*raw* parsed for the variable *name*.

    :raises SettingError: naming the variable, its value and what was expected.
    """
    try:
        return parse(raw)
    except ValueError as exc:
        reason = str(exc)
        if "invalid literal" in reason or "could not convert" in reason:
            reason = "expected a number"
        raise SettingError(f"{name}={raw!r} is invalid: {reason}") from None


def settings_fields() -> tuple[dataclasses.Field[Any], ...]:
    """The declared settings, in declaration order."""
    return dataclasses.fields(ServingSettings)


def markdown_table() -> str:
    """The variables as a Markdown table (the README's "Serving" table is this text)."""
    rows = ["| Variable | Default | Flag | Meaning |", "|---|---|---|---|"]
    for spec in settings_fields():
        meta = spec.metadata
        shown = meta["shown_default"]
        if shown is None:
            shown = f"`{_show(spec.default)}`"
        flag = ""
        if meta["cli"]:
            is_bool = spec.type in ("bool", bool)
            flag = f"`--[no-]{meta['cli'][2:]}`" if is_bool else f"`{meta['cli']}`"
        rows.append(f"| `{meta['env']}` | {shown} | {flag} | {meta['doc']} |")
    return "\n".join(rows)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
