"""nginx in front of the workers: finding the binary and writing its configuration.

The configuration (``nginx.conf.template``, package data) listens on the bind port, proxies
``/invocations``, ``/execution-parameters`` and ``/models*`` to the workers' unix sockets over
kept-alive HTTP/1.1 connections (``least_conn``; a request whose worker connection fails goes
on to another worker - the template's comments say when), answers ``/ping`` itself from the
readiness file (or asks a worker's ping socket when the user module has a ``ping_fn``),
enforces the body
limit (413) and the read timeout (504), and answers every error it produces itself - unknown
path, bad request, no ready worker - with the same JSON body as the workers. ``/ping`` is not
access-logged unless ``SAGEDOCK_LOG_PING`` is set.
"""

from __future__ import annotations

import logging
import re
import shutil
from importlib import resources
from pathlib import Path

from .runtime import Runtime

#: Where Debian's package puts nginx, for a PATH without ``/usr/sbin``.
FALLBACK_PATHS = (Path("/usr/sbin/nginx"), Path("/usr/local/sbin/nginx"))
#: Idle kept-alive upstream connections each nginx worker keeps (per upstream block).
KEEPALIVE = 64
#: Request bodies up to this size stay in memory; larger ones go to a temp file.
MAX_BODY_BUFFER = 8 * 1024 * 1024
#: Seconds nginx waits beyond SAGEMAKER_MODEL_SERVER_TIMEOUT: the worker's own 504 comes first.
READ_TIMEOUT_MARGIN = 2

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def find_nginx() -> Path | None:
    """The nginx binary on PATH (or Debian's ``/usr/sbin/nginx``), None when not installed."""
    found = shutil.which("nginx")
    if found:
        return Path(found)
    return next((path for path in FALLBACK_PATHS if path.is_file()), None)


def template() -> str:
    return resources.files("sagedock.serving").joinpath("nginx.conf.template").read_text()


def render(text: str, values: dict[str, str]) -> str:
    """*text* with every ``{{name}}`` replaced (:raises KeyError: a name without value)."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def config_values(runtime: Runtime, *, worker_processes: str = "auto") -> dict[str, str]:
    settings = runtime.settings
    limit = settings.max_payload_bytes
    servers = "\n".join(
        f"        server unix:{runtime.worker_socket(slot)} max_fails=0;"
        for slot in range(settings.workers)
    )
    ping_servers = "\n".join(
        f"        server unix:{runtime.ping_socket(slot)} max_fails=0;"
        for slot in range(settings.workers)
    )
    ping_log = "" if settings.log_ping and settings.access_log else "access_log off;"
    return {
        "worker_processes": worker_processes,
        "run_dir": str(runtime.run_dir),
        "error_log_level": _error_log_level(settings.log_level),
        "graceful_timeout": f"{max(1, int(settings.graceful_timeout))}",
        "access_log": "access_log /dev/stdout sagedock;"
        if settings.access_log
        else "access_log off;",
        "max_body": str(limit) if limit is not None else "0",
        "max_body_bytes": str(limit or 0),
        "max_body_mib": f"{settings.max_payload_mb:g}",
        "body_buffer": str(min(limit or MAX_BODY_BUFFER, MAX_BODY_BUFFER)),
        "servers": servers,
        "ping_servers": ping_servers,
        "keepalive": str(KEEPALIVE),
        "port": str(settings.port),
        "read_timeout": f"{int(settings.timeout) + READ_TIMEOUT_MARGIN}",
        "timeout": f"{settings.timeout:g}",
        "ping_access_log": ping_log,
    }


def _error_log_level(level: int) -> str:
    if level <= logging.DEBUG:
        return "info"
    if level <= logging.INFO:
        return "warn"
    if level <= logging.WARNING:
        return "error"
    return "crit"


def write_config(runtime: Runtime) -> Path:
    """Write ``nginx.conf`` into the runtime dir (and the temp dirs' parent); its path."""
    (runtime.run_dir / "nginx").mkdir(mode=0o755, exist_ok=True)
    path = runtime.run_dir / "nginx.conf"
    path.write_text(render(template(), config_values(runtime)))
    return path


def command(nginx: Path, config: Path) -> list[str]:
    """How to start nginx in the foreground with *config* (errors before the config is read
    go to stderr too)."""
    return [str(nginx), "-c", str(config), "-p", str(config.parent), "-e", "stderr"]
