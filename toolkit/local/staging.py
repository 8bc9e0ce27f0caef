"""Putting channel data where a host reads it.

Pure planning first: :func:`channel_objects` lists what a channel holds (a prefix, a local
directory or file, a manifest), and :func:`share_of` picks one host's share of it for an
epoch (``ShuffleConfig`` shuffles with the seed, per epoch; ``ShardedByS3Key`` deals the
objects out in turn to the hosts that receive the channel; ``FullyReplicated`` gives each of
them everything). Then the
side effects: :class:`ObjectCache` downloads each S3 object once per job, and
:func:`stage_files` fills a File-mode channel directory.
"""

from __future__ import annotations

import random
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from sagedock.toolkit.errors import UserError

from . import locations
from .locations import DataObject
from .manifests import read_manifest
from .progress import Progress
from .spec.training import InputChannel

T = TypeVar("T")


def channel_objects(
    channel: InputChannel, *, environ: Mapping[str, str] | None = None
) -> list[DataObject]:
    """Every object of an ``S3Prefix`` or ``ManifestFile`` channel, in key / manifest order."""
    try:
        if channel.data_type == "ManifestFile":
            return read_manifest(channel.location, environ=environ)
        return locations.list_objects(channel.location, environ=environ)
    except UserError as exc:
        raise UserError(f"channel {channel.name!r}: {exc.message}") from None


def share_of(
    objects: Sequence[T],
    channel: InputChannel,
    receivers: Sequence[str],
    host: str,
    epoch: int = 0,
) -> list[T]:
    """*host*'s share of *objects*, a channel that the hosts *receivers* get (see
    :meth:`TrainingJobSpec.hosts_receiving`), in *epoch*: nothing for a host that is not one
    of them, as SageMaker does with ``InstanceGroupNames``; else all of them, or for
    ``ShardedByS3Key`` every n-th by *host*'s position among them.

    Shuffling happens before sharding, with a generator seeded by the channel's seed and the
    epoch, so every host computes the same permutation and the shards never overlap.
    """
    if host not in receivers:
        return []
    items = list(objects)
    if channel.shuffle_seed is not None:
        random.Random(f"{channel.shuffle_seed}:{epoch}").shuffle(items)
    if channel.distribution == "ShardedByS3Key" and len(receivers) > 1:
        items = items[list(receivers).index(host) :: len(receivers)]
    return items


class ObjectCache:
    """Local copies of S3 objects, each downloaded once per job (threads may share it)."""

    def __init__(self, root: Path, environ: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.environ = environ
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def local_path(self, location: str) -> Path:
        """A local file with the content at *location* (downloading S3 objects on first use)."""
        if not locations.is_s3(location):
            return Path(location)
        bucket_key = location[5:]
        dest = self.root.joinpath(*[p for p in bucket_key.split("/") if p not in ("", ".", "..")])
        with self._lock:
            lock = self._locks.setdefault(location, threading.Lock())
        with lock:
            if not dest.is_file():
                locations.fetch(location, dest, environ=self.environ)
        return dest


def stage_files(
    objects: Sequence[DataObject],
    dest_dir: Path,
    cache: ObjectCache,
    progress: Progress | None = None,
    *,
    stop: Callable[[], bool] | None = None,
) -> list[Path]:
    """Copy *objects* into *dest_dir* at their relative paths; returns the files written.

    *stop* is asked before each object: when it answers True, staging ends there (a stop or
    the job's max runtime must not wait for a large channel to finish copying).
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for obj in objects:
        if stop is not None and stop():
            break
        src = cache.local_path(obj.location)
        dest = dest_dir.joinpath(*obj.relative.split("/"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        written.append(dest)
        if progress is not None:
            progress.advance(obj.size if obj.size is not None else dest.stat().st_size)
    return written
