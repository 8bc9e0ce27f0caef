"""Multi-host training with XGBoost's collective (Rabit) communicator.

As in SageMaker's XGBoost, the tracker runs on the first host in sorted order, on port 9099,
and a first round agrees which hosts hold data: a host without training (or, when the channel
exists, validation) rows is left out with a warning. The hosts with data then form the training
group (tracker port 9100), ranked by host name, so the first of them is rank 0 and the one that
prints the evaluation log and writes the model.

Host names become addresses through :func:`sagedock.toolkit.launch.hosts.resolve_host`, so a
local platform running two "hosts" as processes (``SAGEDOCK_HOST_ADDRESSES``) works too.
``SAGEDOCK_XGBOOST_TRACKER_PORT`` moves the two ports (to ``N`` and ``N + 1``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sagedock.toolkit.errors import UserError

logger = logging.getLogger(__name__)

TRACKER_PORT_ENV = "SAGEDOCK_XGBOOST_TRACKER_PORT"
DEFAULT_TRACKER_PORT = 9099
#: Seconds the group may take to form (hosts start at different times).
BOOTSTRAP_TIMEOUT = 900


@dataclass(frozen=True)
class Group:
    """This host's place in a training group."""

    hosts: tuple[str, ...]
    current_host: str

    @property
    def master(self) -> str:
        return self.hosts[0]

    @property
    def is_master(self) -> bool:
        return self.current_host == self.master


def tracker_port(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    text = env.get(TRACKER_PORT_ENV, "").strip()
    try:
        return int(text) if text else DEFAULT_TRACKER_PORT
    except ValueError:
        raise UserError(f"{TRACKER_PORT_ENV} must be a port number, not {text!r}") from None


@contextlib.contextmanager
def communicator(group: Group, port: int, resolve: Callable[[str], str]) -> Iterator[None]:
    """XGBoost's collective for *group*: the master runs the tracker, every host joins."""
    import xgboost
    from xgboost import collective
    from xgboost.tracker import RabitTracker

    address = resolve(group.master)
    tracker: Any = None
    if group.is_master:
        tracker = RabitTracker(
            len(group.hosts), address, port, sortby="task", timeout=BOOTSTRAP_TIMEOUT
        )
        tracker.start()
    args: dict[str, int | str | None] = {
        "dmlc_communicator": "rabit",
        "dmlc_tracker_uri": address,
        "dmlc_tracker_port": port,
        "dmlc_task_id": group.current_host,
        "dmlc_retry": 1000,
        "dmlc_timeout": BOOTSTRAP_TIMEOUT,
    }
    try:
        with warnings.catch_warnings():
            # Each refused connection while the tracker starts is a UserWarning; one log line
            # says the same.
            warnings.simplefilter("ignore", UserWarning)
            logger.info(
                "joining the XGBoost collective of %s (tracker %s:%d)",
                ", ".join(group.hosts),
                address,
                port,
            )
            collective.init(**args)
        try:
            yield
        finally:
            collective.finalize()
    except xgboost.core.XGBoostError as exc:
        raise UserError(
            f"hosts {', '.join(group.hosts)} could not form an XGBoost group through the "
            f"tracker at {address}:{port}: {str(exc).splitlines()[0]}"
        ) from None
    finally:
        if tracker is not None:
            with contextlib.suppress(Exception):
                tracker.wait_for()
            tracker.free()


def agree_on_hosts_with_data(
    hosts: Sequence[str],
    current_host: str,
    has_data: bool,
    port: int,
    resolve: Callable[[str], str],
) -> tuple[str, ...]:
    """Every host tells the others whether it has data; all get the same answer."""
    from xgboost import collective

    ordered = tuple(sorted(hosts))
    flags = np.zeros(len(ordered), dtype=np.float64)
    flags[ordered.index(current_host)] = 1.0 if has_data else 0.0
    with communicator(Group(ordered, current_host), port, resolve):
        total = collective.allreduce(flags, collective.Op.SUM)
    return tuple(h for h, flag in zip(ordered, total, strict=True) if flag > 0)
