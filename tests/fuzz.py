"""Helpers for the "any bytes" properties: strategies that reach past the first byte check, and a
memory bound.

A decoder fed random bytes stops at its magic number or first token; the bugs live behind it.
:func:`mutated` takes valid documents and damages them a few edits at a time (overwrite, insert,
delete, truncate, repeat a slice), so hypothesis explores headers, lengths and offsets of
otherwise well-formed input. :func:`within_memory` runs a call under ``tracemalloc`` and fails
when it allocated more than a bound (numpy reports its buffers to tracemalloc, so an array
declared by a hostile header counts).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

T = TypeVar("T")

#: Largest body the properties generate: enough for several records, cheap to decode.
MAX_BODY = 2048
#: What one decode of such a body may allocate (a generous multiple of its size).
MEMORY_LIMIT = 64 << 20


@st.composite
def _edit(draw: st.DrawFn, data: bytes) -> bytes:
    kind = draw(st.sampled_from(["set", "insert", "delete", "truncate", "repeat"]))
    at = draw(st.integers(0, len(data)))
    if kind == "set" and at < len(data):
        value = draw(st.binary(min_size=1, max_size=8))
        return data[:at] + value + data[at + len(value) :]
    if kind == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
    if kind == "delete":
        return data[:at] + data[at + draw(st.integers(1, 16)) :]
    if kind == "truncate":
        return data[:at]
    if kind == "repeat" and at < len(data):
        end = draw(st.integers(at, min(len(data), at + 64)))
        return data[:end] + data[at:end] + data[end:]
    return data


@st.composite
def _mutate(draw: st.DrawFn, valid: st.SearchStrategy[bytes], max_edits: int) -> bytes:
    data = draw(valid)
    for _ in range(draw(st.integers(0, max_edits))):
        data = draw(_edit(data))
    return data[: MAX_BODY * 4]


def mutated(valid: st.SearchStrategy[bytes], max_edits: int = 4) -> st.SearchStrategy[bytes]:
    """Documents of *valid*, each with up to *max_edits* random edits."""
    return _mutate(valid, max_edits)


def any_bytes(valid: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Random bytes, or a damaged valid document (most examples): what the properties feed."""
    return st.one_of(st.binary(max_size=MAX_BODY), mutated(valid), mutated(valid, max_edits=1))


def within_memory(call: Callable[[], T], limit: int = MEMORY_LIMIT) -> T:
    """*call*'s result (or its exception), failing if it allocated more than *limit* bytes at
    once (as traced by tracemalloc: Python objects and numpy buffers)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        return call()
    finally:
        peak = tracemalloc.get_traced_memory()[1] - before
        if started:
            tracemalloc.stop()
        assert peak <= limit, f"allocated {peak} bytes at peak, more than {limit}"


def outcome(call: Callable[[], Any], allowed: tuple[type[BaseException], ...]) -> Any:
    """*call*'s result, or the exception it raised when it is one of *allowed*; any other
    exception propagates (and fails the property)."""
    try:
        return within_memory(call)
    except allowed as exc:
        return exc


def property_settings(examples: int = 100) -> settings:
    """Settings of an "any bytes" property: *examples* examples (the "thorough" profile's count
    when that is loaded), a deadline generous enough for a busy CI machine (a decode that hangs
    or goes quadratic still fails), and no health check about slow or large generated data.

    The properties together add about half a minute to CI on two cores; most of an example's
    time is tracemalloc's.
    """
    return settings(
        max_examples=max(examples, settings().max_examples),
        deadline=timedelta(seconds=10),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
