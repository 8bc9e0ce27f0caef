"""The runtime directory one ``serve`` shares with its gunicorn and nginx processes.

:class:`Runtime` says where things are (``runtime.json`` carries it to gunicorn and its
workers, with the settings):

- ``worker-<slot>.sock``: each worker's own unix socket, bound only once its model is loaded,
  so nginx (``least_conn`` over these sockets) sends requests only to ready workers and the
  least busy one first;
- ``ready-<slot>`` and ``ready``: readiness files; nginx answers ``/ping`` from ``ready``
  without asking a worker (so a health check never queues behind a long prediction).
  ``ready`` appears once every worker has loaded the model, and stays while at least one
  worker is up (a crashed worker being replaced does not fail health checks);
- ``ping-upstream``: exists when the user module has a ``ping_fn``; nginx then asks a worker,
  on ``ping-<slot>.sock``: a socket each worker answers ``/ping`` on from a thread of its own,
  so that the check never queues behind a prediction either;
- ``inflight``: the request each worker is running, so that one that killed its worker is not
  run again by another (:mod:`.inflight`);
- ``models/``: the multi-model registry shared by the workers;
- ``boot-error``: why a worker could not start (the supervisor's last words);
- ``nginx.conf``, ``nginx/`` (temp dirs), ``code/`` (a fetched ``SAGEMAKER_SUBMIT_DIRECTORY``).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from .settings import ServingSettings

READY = "ready"


@dataclass(frozen=True)
class Runtime:
    """Everything a gunicorn master and its workers need to know, besides the settings."""

    settings: ServingSettings
    run_dir: Path
    code_dir: Path | None
    """Where the user module is looked for (None: no user code at all)."""
    nginx: bool
    """True when nginx fronts the workers (per-worker sockets); False: gunicorn binds the
    port."""

    # -- paths --------------------------------------------------------------------------------
    def worker_socket(self, slot: int) -> Path:
        return self.run_dir / f"worker-{slot}.sock"

    def ping_socket(self, slot: int) -> Path:
        return self.run_dir / f"ping-{slot}.sock"

    def ready_file(self, slot: int | None = None) -> Path:
        return self.run_dir / (READY if slot is None else f"{READY}-{slot}")

    @property
    def ping_upstream_file(self) -> Path:
        return self.run_dir / "ping-upstream"

    @property
    def inflight_file(self) -> Path:
        """The id of the request each worker runs (:mod:`.inflight`)."""
        return self.run_dir / "inflight"

    @property
    def registry_dir(self) -> Path:
        return self.run_dir / "models"

    @property
    def boot_error_file(self) -> Path:
        return self.run_dir / "boot-error"

    @property
    def file(self) -> Path:
        return self.run_dir / "runtime.json"

    # -- readiness (workers mark, the gunicorn master clears) ----------------------------------
    def mark_ready(self, slot: int) -> None:
        self.ready_file(slot).touch()
        if self.ready_workers() >= self.settings.workers:
            self.ready_file().touch()

    def mark_gone(self, slot: int) -> None:
        """A worker exited: its socket and readiness go; ``ready`` goes if no worker is left.

        Workers create ``ready-<slot>`` before ``ready``; checking again after removing
        ``ready`` closes the race with a worker that becomes ready meanwhile.
        """
        self.ready_file(slot).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.worker_socket(slot).unlink(missing_ok=True)
            self.ping_socket(slot).unlink(missing_ok=True)
        if not self.ready_workers():
            self.ready_file().unlink(missing_ok=True)
            if self.ready_workers():
                self.ready_file().touch()

    def ready_workers(self) -> int:
        """How many workers have their model loaded."""
        return sum(1 for _ in self.run_dir.glob(f"{READY}-*"))

    def any_ready(self) -> bool:
        """True when the endpoint is up (``ready``: every worker loaded, and not all gone)."""
        return self.ready_file().exists()

    # -- (de)serialising ----------------------------------------------------------------------
    def save(self) -> Path:
        data = {
            "settings": json.loads(self.settings.to_json()),
            "run_dir": str(self.run_dir),
            "code_dir": str(self.code_dir) if self.code_dir is not None else None,
            "nginx": self.nginx,
        }
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.file)
        return self.file

    @classmethod
    def load(cls, path: Path) -> Runtime:
        data = json.loads(path.read_text())
        return cls(
            settings=ServingSettings.from_json(json.dumps(data["settings"])),
            run_dir=Path(data["run_dir"]),
            code_dir=Path(data["code_dir"]) if data["code_dir"] else None,
            nginx=bool(data["nginx"]),
        )
