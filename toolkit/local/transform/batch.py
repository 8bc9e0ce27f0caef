"""Mini-batches of records (``BatchStrategy`` + ``MaxPayloadInMB``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sagedock.toolkit.errors import UserError

MB = 1024 * 1024


class PayloadTooLarge(UserError):
    """One record is larger than MaxPayloadInMB allows."""


@dataclass(frozen=True)
class Record:
    """One input record: *raw* as read from the file, *payload* as sent (after InputFilter)."""

    index: int
    raw: bytes
    payload: bytes


@dataclass(frozen=True)
class Batch:
    """Consecutive records sent in one request."""

    records: tuple[Record, ...]

    @property
    def body(self) -> bytes:
        return b"".join(r.payload for r in self.records)

    @property
    def first(self) -> int:
        return self.records[0].index

    @property
    def last(self) -> int:
        return self.records[-1].index

    def describe(self) -> str:
        """``record 7`` or ``records 7-12`` (1-based, as people count)."""
        if len(self.records) == 1:
            return f"record {self.first + 1}"
        return f"records {self.first + 1}-{self.last + 1}"


def make_batches(
    records: Iterable[Record],
    *,
    strategy: str,
    max_payload_mb: int | None,
    source: str = "input",
) -> Iterator[Batch]:
    """Group *records* in order: one per batch (``SingleRecord``), or as many consecutive
    records as fit in ``max_payload_mb`` MiB (``MultiRecord``; ``0``/``None`` = no limit).

    :raises PayloadTooLarge: naming *source* and the record when one record alone is over.
    """
    limit = max_payload_mb * MB if max_payload_mb else None
    pending: list[Record] = []
    size = 0
    for record in records:
        n = len(record.payload)
        if limit is not None and n > limit:
            raise PayloadTooLarge(
                f"{source}: record {record.index + 1} is {n} bytes, over MaxPayloadInMB "
                f"{max_payload_mb} ({limit} bytes); raise MaxPayloadInMB or split the input "
                "into smaller records"
            )
        if strategy == "SingleRecord":
            yield Batch((record,))
            continue
        if pending and limit is not None and size + n > limit:
            yield Batch(tuple(pending))
            pending, size = [], 0
        pending.append(record)
        size += n
    if pending:
        yield Batch(tuple(pending))
