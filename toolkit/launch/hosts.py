"""Host names -> addresses, for the distributed launchers.

On SageMaker every host of a job is reachable by its name (``algo-1``, ``algo-2``...), though
DNS may take a while to know them all; we wait, with a bound. A local platform that runs each
"host" as a process on one machine sets ``SAGEDOCK_HOST_ADDRESSES`` to a JSON object mapping
the names to addresses (``{"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}``); names found there
are never looked up.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Mapping

from ..errors import PlatformError, UserError

log = logging.getLogger(__name__)

HOST_ADDRESSES_ENV = "SAGEDOCK_HOST_ADDRESSES"
RESOLVE_TIMEOUT_ENV = "SAGEDOCK_HOST_RESOLVE_TIMEOUT"
#: AWS's toolkit waits up to 15 minutes for the cluster's names to resolve.
DEFAULT_RESOLVE_TIMEOUT = 900.0


def host_addresses(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``SAGEDOCK_HOST_ADDRESSES`` mapping in *environ* (default ``os.environ``), or ``{}``.

    :raises UserError: the variable is not a JSON object of strings.
    """
    env = os.environ if environ is None else environ
    text = env.get(HOST_ADDRESSES_ENV, "").strip()
    if not text:
        return {}
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{HOST_ADDRESSES_ENV} is not valid JSON (column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in mapping.items()
    ):
        raise UserError(f'{HOST_ADDRESSES_ENV} must be a JSON object like {{"algo-1": "10.0.0.5"}}')
    return mapping


def resolve_timeout(environ: Mapping[str, str] | None = None) -> float:
    """``SAGEDOCK_HOST_RESOLVE_TIMEOUT`` seconds, else 900."""
    env = os.environ if environ is None else environ
    text = env.get(RESOLVE_TIMEOUT_ENV, "").strip()
    try:
        return float(text) if text else DEFAULT_RESOLVE_TIMEOUT
    except ValueError:
        raise UserError(
            f"{RESOLVE_TIMEOUT_ENV} must be a number of seconds, not {text!r}"
        ) from None


def resolve_host(
    name: str, environ: Mapping[str, str] | None = None, *, timeout: float | None = None
) -> str:
    """The IPv4 address of host *name*: from ``SAGEDOCK_HOST_ADDRESSES``, else DNS, retried
    with backoff for up to *timeout* seconds (default :func:`resolve_timeout`).

    :raises PlatformError: the name did not resolve in time.
    """
    mapped = host_addresses(environ).get(name)
    if mapped is not None:
        return mapped
    limit = resolve_timeout(environ) if timeout is None else timeout
    deadline = time.monotonic() + limit
    delay = 0.1
    logged = False
    while True:
        try:
            return socket.gethostbyname(name)
        except (socket.gaierror, UnicodeError) as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PlatformError(
                    f"host {name!r} did not resolve within {limit:g} s ({exc}); on one machine, "
                    f"map the job's hosts with {HOST_ADDRESSES_ENV}"
                ) from None
            if not logged:
                log.info("waiting for host %r to resolve (up to %g s)", name, limit)
                logged = True
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 5.0)


def resolve_hosts(names: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every name of *names* resolved with :func:`resolve_host`, in order."""
    return {name: resolve_host(name, environ) for name in names}
