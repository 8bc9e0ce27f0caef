"""Splitting, mini-batching and in-order assembly of batch transform (pure, no server)."""

from __future__ import annotations

import io
import itertools
import random
import signal
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagedock.toolkit.formats.recordio import encode_record
from sagedock.toolkit.local.transform.batch import MB, Batch, PayloadTooLarge, Record, make_batches
from sagedock.toolkit.local.transform.runner import (
    TransformSettings,
    ordered_map,
    transform_stream,
)
from sagedock.toolkit.local.transform.split import SplitError, encode_tfrecord, split_records
from sagedock.toolkit.local.transform.stopping import StopRequest, TransformStopped


def records_of(data: bytes, split_type: str) -> list[bytes]:
    return list(split_records(io.BytesIO(data), split_type, source="in.csv"))


# -- splitting -------------------------------------------------------------------------------
def test_line_split_yields_each_non_empty_line_with_a_newline() -> None:
    assert records_of(b"a,1\n\nb,2\r\nc,3", "Line") == [b"a,1\n", b"b,2\r\n", b"c,3\n"]


def test_none_split_sends_the_whole_file_and_nothing_for_an_empty_one() -> None:
    assert records_of(b"x\ny\n", "None") == [b"x\ny\n"]
    assert records_of(b"", "None") == []


def test_recordio_split_yields_framed_records_that_concatenate_back() -> None:
    payloads = [b"one", b"", b"three\xce\xd7\x23\x0a..."]
    data = b"".join(encode_record(p) for p in payloads)
    parts = records_of(data, "RecordIO")
    assert len(parts) == 3
    assert b"".join(parts) == data


def test_corrupt_recordio_names_the_file_record_and_offset() -> None:
    data = encode_record(b"ok") + b"\x00" * 8
    with pytest.raises(SplitError, match=r"in\.csv: record 2 at byte offset 12"):
        records_of(data, "RecordIO")


def test_tfrecord_split_yields_each_frame() -> None:
    frames = [encode_tfrecord(b"first"), encode_tfrecord(b""), encode_tfrecord(b"x" * 300)]
    assert records_of(b"".join(frames), "TFRecord") == frames


def test_tfrecord_with_a_bad_length_checksum_is_refused_at_its_record() -> None:
    good = encode_tfrecord(b"abc")
    with pytest.raises(SplitError, match=r"TFRecord 2 at byte offset 19: bad length checksum"):
        records_of(good + b"garbage-garbage-garbage", "TFRecord")


def test_truncated_tfrecord_is_refused() -> None:
    with pytest.raises(SplitError, match="truncated"):
        records_of(encode_tfrecord(b"abcdef")[:-3], "TFRecord")


# -- batching --------------------------------------------------------------------------------
def _records(sizes: list[int]) -> list[Record]:
    return [Record(i, b"r" * n, b"r" * n) for i, n in enumerate(sizes)]


def test_single_record_strategy_sends_one_record_per_request() -> None:
    batches = list(make_batches(_records([3, 4, 5]), strategy="SingleRecord", max_payload_mb=1))
    assert [len(b.records) for b in batches] == [1, 1, 1]


def test_multi_record_fills_each_request_up_to_the_payload_limit() -> None:
    half = MB // 2
    batches = list(
        make_batches(_records([half, half, 1, half]), strategy="MultiRecord", max_payload_mb=1)
    )
    assert [[r.index for r in b.records] for b in batches] == [[0, 1], [2, 3]]
    assert all(len(b.body) <= MB for b in batches)


def test_zero_payload_limit_means_one_request_for_everything() -> None:
    batches = list(make_batches(_records([MB, MB, MB]), strategy="MultiRecord", max_payload_mb=0))
    assert len(batches) == 1


def test_a_record_over_the_limit_is_an_error_naming_it() -> None:
    with pytest.raises(PayloadTooLarge) as info:
        list(
            make_batches(
                _records([10, MB + 1]), strategy="MultiRecord", max_payload_mb=1, source="big.csv"
            )
        )
    assert "big.csv: record 2 is 1048577 bytes, over MaxPayloadInMB 1" in info.value.message


def test_batch_describes_its_record_range_one_based() -> None:
    assert Batch(tuple(_records([1, 1, 1])[1:])).describe() == "records 2-3"
    assert Batch((_records([1])[0],)).describe() == "record 1"


# -- in-order assembly -----------------------------------------------------------------------
def test_ordered_map_keeps_input_order_whatever_order_calls_finish_in() -> None:
    def slow(i: int) -> int:
        time.sleep(random.random() / 200)
        return i * 10

    assert list(ordered_map(slow, range(40), workers=4)) == [i * 10 for i in range(40)]


def test_ordered_map_never_has_more_than_twice_the_workers_in_flight() -> None:
    in_flight, peak, lock = 0, 0, threading.Lock()

    def track(i: int) -> int:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.001)
        with lock:
            in_flight -= 1
        return i

    consumed = 0
    for _ in ordered_map(track, range(50), workers=3):
        consumed += 1
    assert consumed == 50
    assert peak <= 3


def _join_workers() -> None:
    for thread in threading.enumerate():
        if thread.name.startswith("transform-"):
            thread.join(timeout=10)
            assert not thread.is_alive(), thread.name


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stop_ends_ordered_map_at_once_and_nothing_queued_starts_after_it(workers: int) -> None:
    stop = StopRequest()
    release = threading.Event()
    started: list[int] = []
    finished: list[int] = []
    lock = threading.Lock()

    def call(i: int) -> int:
        with lock:
            started.append(i)
            if len(started) == workers:  # every worker is busy
                stop.set(signal.SIGTERM)
        release.wait(30)
        with lock:
            finished.append(i)
        return i

    try:
        with pytest.raises(TransformStopped) as info:
            list(ordered_map(call, range(20), workers, stop=stop))
        assert info.value.signum == signal.SIGTERM
        assert finished == []  # raised while the calls were still running
    finally:
        release.set()
    _join_workers()
    assert sorted(started) == list(range(workers))


def test_with_a_stop_request_one_worker_still_starts_nothing_after_a_failed_call() -> None:
    started: list[int] = []

    def call(i: int) -> int:
        started.append(i)
        if i == 0:
            raise ValueError("the model failed")
        return i

    with pytest.raises(ValueError, match="the model failed"):
        list(ordered_map(call, range(10), 1, stop=StopRequest()))
    _join_workers()
    assert started == [0]


def _echo_lines(batch: Batch) -> bytes:
    """A fake model: one output line per input line, in a shuffled-latency fashion."""
    time.sleep(random.random() / 1000)
    return b"".join(b"out:" + r.payload for r in batch.records)


line_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() != "")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(
        st.tuples(line_text, st.one_of(st.just(0), st.integers(0, 400_000))), max_size=30
    ),
    max_payload_mb=st.integers(min_value=1, max_value=2),
    strategy=st.sampled_from(["SingleRecord", "MultiRecord"]),
    workers=st.integers(min_value=1, max_value=5),
)
def test_transform_output_holds_every_record_once_in_order(
    lines: list[tuple[str, int]], max_payload_mb: int, strategy: str, workers: int
) -> None:
    texts = [text + "x" * pad for text, pad in lines]
    data = "".join(t + "\n" for t in texts).encode()
    sent: list[Batch] = []
    lock = threading.Lock()

    def send(batch: Batch) -> bytes:
        assert len(batch.body) <= max_payload_mb * MB
        with lock:
            sent.append(batch)
        return _echo_lines(batch)

    out = io.BytesIO()
    stats = transform_stream(
        io.BytesIO(data),
        out,
        send,
        split_type="Line",
        settings=TransformSettings(strategy, max_payload_mb, workers),
        assemble_with="None",
    )
    assert out.getvalue() == b"".join(b"out:" + t.encode() + b"\n" for t in texts)
    assert stats.records == len(texts)
    assert sorted(r.index for b in sent for r in b.records) == list(range(len(texts)))
    if strategy == "SingleRecord":
        assert stats.requests == len(texts)
    elif texts:
        # MultiRecord packs greedily: no two neighbouring batches would have fit in one.
        ordered = sorted(sent, key=lambda b: b.first)
        for a, b in itertools.pairwise(ordered):
            assert len(a.body) + len(b.records[0].payload) > max_payload_mb * MB


# Big TFRecord frames come from a small pool: their data checksum is CRC-32C computed in
# Python (about 1 MB/s), too slow to frame hundreds of fresh megabytes per test run.
_BIG_TFRECORDS = [encode_tfrecord(bytes([65 + i]) * n) for i, n in enumerate((300_000, 700_000))]


def _framed(split_type: str, payload: bytes, big: int | None) -> bytes:
    if split_type == "TFRecord":
        return _BIG_TFRECORDS[big] if big is not None else encode_tfrecord(payload)
    # RecordIO frames are cheap: big ones are fresh, padded payloads (which may also contain
    # the RecordIO magic number, so some are multipart records).
    return encode_record(payload + b"x" * (0 if big is None else 250_000 * (big + 1)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    split_type=st.sampled_from(["RecordIO", "TFRecord"]),
    records=st.lists(
        st.tuples(
            st.binary(max_size=40) | st.just(b"\xce\xd7\x23\x0a"),
            st.none() | st.none() | st.integers(0, len(_BIG_TFRECORDS) - 1),
        ),
        max_size=25,
    ),
    max_payload_mb=st.integers(min_value=1, max_value=2),
    strategy=st.sampled_from(["SingleRecord", "MultiRecord"]),
    workers=st.integers(min_value=1, max_value=5),
)
def test_framed_transform_output_holds_every_record_once_in_order(
    split_type: str,
    records: list[tuple[bytes, int | None]],
    max_payload_mb: int,
    strategy: str,
    workers: int,
) -> None:
    frames = [_framed(split_type, payload, big) for payload, big in records]
    sent: list[Batch] = []
    lock = threading.Lock()

    def send(batch: Batch) -> bytes:
        assert len(batch.body) <= max_payload_mb * MB
        with lock:
            sent.append(batch)
        time.sleep(random.random() / 1000)
        return b"".join(r.payload for r in batch.records)  # echoes each framed record

    out = io.BytesIO()
    stats = transform_stream(
        io.BytesIO(b"".join(frames)),
        out,
        send,
        split_type=split_type,
        settings=TransformSettings(strategy, max_payload_mb, workers),
    )
    assert out.getvalue() == b"".join(frames)
    assert stats.records == len(frames)
    assert sorted(r.index for b in sent for r in b.records) == list(range(len(frames)))
    assert [r.raw for b in sorted(sent, key=lambda b: b.first) for r in b.records] == frames
    if strategy == "SingleRecord":
        assert stats.requests == len(frames)
    else:
        ordered = sorted(sent, key=lambda b: b.first)
        for a, b in itertools.pairwise(ordered):
            assert len(a.body) + len(b.records[0].payload) > max_payload_mb * MB


def test_assemble_with_line_ends_every_response_with_one_newline() -> None:
    out = io.BytesIO()
    transform_stream(
        io.BytesIO(b"a\nb\nc\n"),
        out,
        lambda batch: batch.body.strip().upper(),
        split_type="Line",
        settings=TransformSettings("SingleRecord", 6, 2),
        assemble_with="Line",
    )
    assert out.getvalue() == b"A\nB\nC\n"


def test_assemble_with_none_concatenates_responses_as_they_are() -> None:
    out = io.BytesIO()
    transform_stream(
        io.BytesIO(b"a\nb\n"),
        out,
        lambda batch: batch.body.strip().upper(),
        split_type="Line",
        settings=TransformSettings("SingleRecord", 6, 1),
    )
    assert out.getvalue() == b"AB"


def test_a_failing_request_stops_the_stream_with_its_error() -> None:
    def send(batch: Batch) -> bytes:
        if batch.first == 3:
            raise RuntimeError(f"boom at {batch.describe()}")
        return batch.body

    with pytest.raises(RuntimeError, match="boom at record 4"):
        transform_stream(
            io.BytesIO(b"".join(b"%d\n" % i for i in range(10))),
            io.BytesIO(),
            send,
            split_type="Line",
            settings=TransformSettings("SingleRecord", 6, 3),
        )
