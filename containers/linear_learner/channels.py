"""Which channels Linear Learner takes, and where each one's rows come from.

``train`` is required; ``validation`` and ``test`` are optional; any other channel fails the
job (``Extraneous channel found``), as SageMaker's algorithms refuse one. File, FastFile and
Pipe mode are read alike: a File channel's files are read again every epoch, a Pipe channel
opens its next FIFO (``train_0``, ``train_1``, ...) each time it is read.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sagedock.containers.data.batch import Batch
from sagedock.containers.data.files import list_data_files, require_data
from sagedock.toolkit.errors import UserError

from .data import ChannelSource, data_format

if TYPE_CHECKING:
    from sagedock.toolkit.env import TrainingEnv

logger = logging.getLogger(__name__)

TRAIN = "train"
VALIDATION = "validation"
TEST = "test"
CHANNELS = (TRAIN, VALIDATION, TEST)
INPUT_MODES = ("File", "FastFile", "Pipe")


def validate_channels(input_data_config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The job's channels, checked (formats too: a bad ContentType fails before training)."""
    if TRAIN not in input_data_config:
        raise UserError(f"Missing required channel: {TRAIN}")
    checked: dict[str, dict[str, Any]] = {}
    for name, raw in input_data_config.items():
        if name not in CHANNELS:
            raise UserError(
                f"Extraneous channel found: {name} (Linear Learner takes {', '.join(CHANNELS)})"
            )
        config = dict(raw)
        mode = config.get("TrainingInputMode", "File")
        if mode not in INPUT_MODES:
            raise UserError(
                f"channel {name!r}: TrainingInputMode {mode!r} is not supported; "
                f"allowed: {', '.join(INPUT_MODES)}"
            )
        data_format(config.get("ContentType"))
        checked[name] = config
    return checked


@dataclass
class ChannelReader:
    """A channel read once per pass, each pass from the next Pipe epoch."""

    source: ChannelSource
    _next_epoch: Iterator[int] = field(default_factory=itertools.count)

    @property
    def name(self) -> str:
        return self.source.name

    def read(self) -> Iterator[Batch]:
        """The channel's reader blocks, one whole pass (the next Pipe epoch is taken when
        the pass starts, not when it is asked for)."""
        yield from self.source.batches(next(self._next_epoch))


def open_reader(
    env: TrainingEnv, name: str, config: Mapping[str, Any], *, allow_empty: bool = False
) -> ChannelReader | None:
    """The reader of channel *name* on this host. A File channel without data fails the job,
    unless *allow_empty* (a host of several may get no share of a sharded channel): ``None``."""
    fmt = data_format(config.get("ContentType"))
    if config.get("TrainingInputMode", "File") == "Pipe":
        from sagedock.toolkit.channels import open_channel

        channel = open_channel(env, name)
        return ChannelReader(ChannelSource(name, fmt, open_epoch=channel.open_epoch))
    path = env.paths.channel_dir(name)
    files = list_data_files(path) if path.is_dir() else []
    if not files and allow_empty:
        logger.warning("Host %s has no data in channel %s", env.current_host, name)
        return None
    require_data(files, name, path)
    return ChannelReader(ChannelSource(name, fmt, files=tuple(files)))
