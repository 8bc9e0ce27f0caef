"""Stop signals during in-process training (``stop_signals_raise``)."""

from __future__ import annotations

import signal

import pytest

from sagedock.toolkit.signals import (
    TrainingStopped,
    raise_if_stopped,
    stop_requested,
    stop_signals_raise,
)
from tests.fixtures.signals import signal_inside_ctypes_callback


def test_sigterm_raises_training_stopped_in_the_main_thread() -> None:
    with pytest.raises(TrainingStopped) as info, stop_signals_raise():
        signal.raise_signal(signal.SIGTERM)
    assert info.value.signum == signal.SIGTERM


def test_a_stop_dropped_inside_a_ctypes_callback_is_still_delivered_later(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with stop_signals_raise():
        signal_inside_ctypes_callback(signal.SIGTERM)  # ctypes swallows the exception
        assert stop_requested() == signal.SIGTERM
        with pytest.raises(TrainingStopped) as info:
            raise_if_stopped()
    assert info.value.signum == signal.SIGTERM
    # The recorded stop is not reported as an "Exception ignored" traceback.
    assert "TrainingStopped" not in capsys.readouterr().err


def test_no_stop_is_remembered_past_the_block() -> None:
    with stop_signals_raise():
        signal_inside_ctypes_callback(signal.SIGINT)
    assert stop_requested() is None
    raise_if_stopped()  # nothing to raise outside the block
    with stop_signals_raise():
        assert stop_requested() is None
