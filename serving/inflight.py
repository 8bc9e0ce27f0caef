"""Which request each worker is running, shared by the workers, so that a request that killed
its worker is never run again on another one.

Behind nginx, a POST written to a worker's connection is retried on the next worker when that
connection fails (``proxy_next_upstream error non_idempotent``, nginx.conf.template). That
retry is wanted for the requests a dying worker never read - queued on its kept-alive
connections, or in its socket's backlog - and must not happen for the one it was running when
it died: a request that crashes the interpreter or makes the OOM killer strike would go on to
kill every worker. nginx cannot tell the two apart; the workers can. Each worker writes the
id of the request it is about to run (nginx's ``$request_id``, the same on every try) into its
slot of one small file that every worker maps; before running a request, a worker looks for
its id in the others' slots: found there, it is a replay of a request whose worker died
running it, and is answered 500 (:class:`WorkerDied`) instead of being run.

A worker that starts in a slot keeps its predecessor's record in the slot's second half
rather than wiping it: the replay of the request that killed the predecessor may still be
waiting in another worker's queue when the replacement is up (gunicorn restarts a worker in
well under a second; a busy worker reads its queue later), and it must still be recognised.

The look and the write are a ``find`` over ``workers * 128`` bytes of shared memory and a
64-byte copy: no system call per request.
"""

from __future__ import annotations

import mmap
import os
from http import HTTPStatus
from pathlib import Path
from typing import ClassVar

from .errors import InferenceError

#: Bytes per record: the pid (ASCII, NUL-padded) then the request id (NUL-padded). Each
#: worker slot holds two: its own, then the one its predecessor in the slot left.
SLOT = 64
RECORDS_PER_WORKER = 2
PID_FIELD = 16
MAX_ID = SLOT - PID_FIELD - 1


class WorkerDied(InferenceError):
    """The worker running this request died (a crash, a kill); it is not run again."""

    default_status: ClassVar[int] = HTTPStatus.INTERNAL_SERVER_ERROR


class InFlight:
    """The shared record of running requests; *slot* is this worker's place in it.

    :param path: the file (created at ``workers * RECORDS_PER_WORKER * SLOT`` bytes if smaller).
    """

    def __init__(self, path: Path, slot: int, workers: int) -> None:
        size = max(workers, slot + 1) * RECORDS_PER_WORKER * SLOT
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self._offset = slot * RECORDS_PER_WORKER * SLOT
        self._pid = str(os.getpid()).encode().ljust(PID_FIELD, b"\0")
        mine = slice(self._offset, self._offset + SLOT)
        left = self._map[mine]
        if any(left):
            # Copied before the slot is cleared, so the id is always in one place or the other.
            self._map[self._offset + SLOT : self._offset + 2 * SLOT] = left
        self._map[mine] = bytes(SLOT)

    def begin(self, request_id: str) -> WorkerDied | None:
        """Record that this worker runs *request_id*; the error to answer instead when
        another worker was running it (and died: nginx tries a request elsewhere only when
        its connection to a worker failed)."""
        rid = request_id.encode("latin-1", "replace")
        if not rid or len(rid) > MAX_ID:
            return None  # not an id nginx gave: nothing to recognise it by
        needle = rid + b"\0"
        shared = self._map
        found = shared.find(needle)
        while found >= 0:
            start = found - PID_FIELD
            if start % SLOT == 0 and start != self._offset:
                pid = shared[start : start + PID_FIELD].rstrip(b"\0").decode("ascii", "replace")
                return WorkerDied(
                    f"the model server worker running this request (pid {pid}) died before "
                    "answering - a crash in native code, or killed (out of memory?): the "
                    "request is not run again, so that it cannot take down another worker"
                )
            found = shared.find(needle, found + 1)
        record = self._pid + needle.ljust(SLOT - PID_FIELD, b"\0")
        shared[self._offset : self._offset + SLOT] = record
        return None

    def close(self) -> None:
        self._map.close()
