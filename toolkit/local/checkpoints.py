"""Checkpoints: restored from the checkpoint URI into each host before training, and synced
back while the job runs and once more at the end (as SageMaker syncs ``CheckpointConfig``)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from sagedock.toolkit import s3
from sagedock.toolkit.errors import SagedockError

from . import locations


def restore(uri: str, dest: Path, *, environ: Mapping[str, str] | None = None) -> int:
    """Copy what is at the checkpoint *uri* into *dest*; returns the number of files (0 when
    there is nothing yet: a first run)."""
    dest.mkdir(parents=True, exist_ok=True)
    if locations.is_s3(uri):
        prefix = uri.rstrip("/") + "/"
        if not s3.list_objects(prefix, environ=environ):
            return 0
        return len(s3.download_prefix(prefix, dest, environ=environ))
    source = Path(uri)
    if not source.is_dir():
        return 0
    count = 0
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        count += 1
    return count


class CheckpointSync(threading.Thread):
    """Publishes new or changed files of the hosts' checkpoint directories to the URI every
    *interval* seconds; :meth:`final_sync` runs a last pass after the hosts exit."""

    def __init__(
        self,
        directories: Sequence[Path],
        uri: str,
        *,
        environ: Mapping[str, str] | None = None,
        interval: float = 10.0,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(name="checkpoint-sync", daemon=True)
        self.directories = list(directories)
        self.uri = uri
        self.environ = environ
        self.interval = interval
        self.on_error = on_error
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._seen: dict[tuple[Path, str], tuple[int, int]] = {}
        self.published = 0

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.sync_once()
            except (SagedockError, OSError) as exc:  # retried on the next pass
                if self.on_error is not None:
                    self.on_error(f"checkpoint sync to {self.uri} failed: {exc}")

    def stop(self) -> None:
        self._halt.set()

    def sync_once(self) -> int:
        """Publish what changed since the last pass; returns how many files were published."""
        count = 0
        with self._lock:
            for root in self.directories:
                if not root.is_dir():
                    continue
                for path in sorted(p for p in root.rglob("*") if p.is_file()):
                    rel = path.relative_to(root).as_posix()
                    try:
                        st = path.stat()
                    except FileNotFoundError:
                        continue  # removed while we looked
                    key, stamp = (root, rel), (st.st_size, st.st_mtime_ns)
                    if self._seen.get(key) == stamp:
                        continue
                    locations.publish_file(
                        path, locations.join(self.uri, rel), environ=self.environ
                    )
                    self._seen[key] = stamp
                    count += 1
            self.published += count
        return count

    def final_sync(self) -> int:
        self.stop()
        if self.is_alive():
            self.join(timeout=self.interval + 30)
        return self.sync_once()
