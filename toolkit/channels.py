"""Input channels: what ``inputdataconfig.json`` declares, and readers for their data.

A channel is File mode (a directory ``input/data/<name>/`` filled before training starts),
FastFile mode (the same directory, filled lazily by the platform) or Pipe mode (a FIFO per
epoch, ``input/data/<name>_<epoch>``, each created when the previous one has been read).

    channel = open_channel(env, "train")
    for path in channel.files(): ...            # File / FastFile
    for stream in channel.epochs(): ...         # Pipe: epoch 0, 1, ... until you stop
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, cast, get_args

from .errors import PlatformError, UserError

if TYPE_CHECKING:
    from .env import TrainingEnv

InputMode = Literal["File", "Pipe", "FastFile"]
Distribution = Literal["FullyReplicated", "ShardedByS3Key"]
RecordWrapper = Literal["None", "RecordIO"]

#: How long :meth:`Channel.open_epoch` waits for an epoch's FIFO to appear by default.
DEFAULT_PIPE_WAIT_SECONDS = 600.0


@dataclass(frozen=True)
class ChannelSpec:
    """One channel of ``inputdataconfig.json`` (missing fields take SageMaker's defaults)."""

    name: str
    content_type: str | None = None
    input_mode: InputMode = "File"
    distribution: Distribution = "FullyReplicated"
    record_wrapper: RecordWrapper = "None"

    @classmethod
    def from_json(cls, name: str, value: Any, source: Path | str) -> ChannelSpec:
        """Parse the entry *name* of the file *source*; a UserError names file, channel, field."""
        where = f"{source}: channel {name!r}"
        if not isinstance(value, Mapping):
            raise UserError(f"{where} must be a JSON object, not {type(value).__name__}")
        content_type = value.get("ContentType")
        if content_type is not None and not isinstance(content_type, str):
            raise UserError(f"{where}: ContentType must be a string, not {content_type!r}")
        return cls(
            name=name,
            content_type=content_type or None,
            input_mode=_choice(value, "TrainingInputMode", InputMode, "File", where),
            distribution=_choice(
                value, "S3DistributionType", Distribution, "FullyReplicated", where
            ),
            record_wrapper=_choice(value, "RecordWrapperType", RecordWrapper, "None", where),
        )


def _choice(value: Mapping[str, Any], field: str, kind: Any, default: str, where: str) -> Any:
    allowed = get_args(kind)
    found = value.get(field, default)
    if found not in allowed:
        raise UserError(f"{where}: {field} is {found!r}; expected one of {', '.join(allowed)}")
    return found


def parse_input_data_config(value: Any, source: Path | str) -> dict[str, ChannelSpec]:
    """Every channel of an ``inputdataconfig.json`` document, by name."""
    if not isinstance(value, Mapping):
        raise UserError(f"{source} must hold a JSON object of channels, not {type(value).__name__}")
    return {
        str(name): ChannelSpec.from_json(str(name), spec, source) for name, spec in value.items()
    }


@dataclass(frozen=True)
class Channel:
    """A channel's data on this host: its spec and where it lives."""

    spec: ChannelSpec
    directory: Path
    """File/FastFile: the channel directory. Pipe: the directory that holds the FIFOs."""

    def files(self) -> list[Path]:
        """Every regular file under the channel directory, recursively, sorted by path.

        File and FastFile mode only; a UserError names the channel when it is in Pipe mode or
        its directory is missing.
        """
        if self.spec.input_mode == "Pipe":
            raise UserError(
                f"channel {self.spec.name!r} is in Pipe mode: read it with epochs(), not files()"
            )
        if not self.directory.is_dir():
            raise UserError(
                f"channel {self.spec.name!r} has no directory at {self.directory} "
                "(declared in inputdataconfig.json, but no data was put there)"
            )
        found: list[Path] = []
        for root, dirs, names in os.walk(self.directory):
            dirs.sort()
            found += (Path(root) / name for name in names if (Path(root) / name).is_file())
        return sorted(found)

    def fifo(self, epoch: int) -> Path:
        """The Pipe-mode FIFO of *epoch* (``<directory>/<name>_<epoch>``)."""
        return self.directory / f"{self.spec.name}_{epoch}"

    def open_epoch(self, epoch: int, *, wait: float = DEFAULT_PIPE_WAIT_SECONDS) -> BinaryIO:
        """The stream of *epoch*, opened once its FIFO appears (waiting up to *wait* seconds).

        Opening blocks until the platform starts writing; the caller closes the stream.
        """
        if self.spec.input_mode != "Pipe":
            raise UserError(
                f"channel {self.spec.name!r} is in {self.spec.input_mode} mode: "
                "read it with files(), not epochs()"
            )
        path = self.fifo(epoch)
        deadline = time.monotonic() + wait
        delay = 0.01
        while not path.exists():
            if time.monotonic() >= deadline:
                raise PlatformError(
                    f"channel {self.spec.name!r}: {path} did not appear within {wait:g} s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        return cast(BinaryIO, open(path, "rb"))

    def epochs(self, *, wait: float = DEFAULT_PIPE_WAIT_SECONDS) -> Iterator[BinaryIO]:
        """Epoch 0, 1, 2, ... of a Pipe-mode channel, each closed when the next is requested.

        Endless by design (SageMaker streams as many epochs as the algorithm reads): stop
        iterating after the epochs you need.
        """
        epoch = 0
        while True:
            with self.open_epoch(epoch, wait=wait) as stream:
                yield stream
            epoch += 1


def open_channel(env: TrainingEnv, name: str) -> Channel:
    """The channel *name* of *env*; a UserError lists the declared channels if it is unknown."""
    spec = env.channels.get(name)
    if spec is None:
        declared = ", ".join(sorted(env.channels)) or "none"
        raise UserError(
            f"no channel {name!r} in inputdataconfig.json (declared channels: {declared})"
        )
    directory = (
        env.paths.input_data_dir if spec.input_mode == "Pipe" else env.paths.channel_dir(name)
    )
    return Channel(spec=spec, directory=directory)


def check_channel_dirs(env: TrainingEnv) -> None:
    """Every File/FastFile channel of *env* has its directory.

    :raises UserError: naming the first channel whose directory is missing.
    """
    for name, spec in sorted(env.channels.items()):
        directory = env.paths.channel_dir(name)
        if spec.input_mode != "Pipe" and not directory.is_dir():
            raise UserError(
                f"channel {name!r} is declared in inputdataconfig.json but its directory "
                f"{directory} does not exist"
            )
