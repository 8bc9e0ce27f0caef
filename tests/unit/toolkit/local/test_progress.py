"""The staging progress bar draws on a terminal only."""

from __future__ import annotations

import io

from sagedock.toolkit.local.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_bar_on_a_terminal() -> None:
    tty = Terminal()
    progress = Progress("Downloading input data", 2048, tty)
    progress.advance(1024)
    progress.advance(1024)
    progress.close()
    text = tty.getvalue()
    assert "\rDownloading input data [" in text
    assert "100.0% 2.0 KB/2.0 KB" in text
    assert text.endswith("\n")


def test_progress_is_silent_when_not_on_a_terminal() -> None:
    log = io.StringIO()
    progress = Progress("Downloading input data", 10, log)
    progress.advance(10)
    progress.close()
    assert log.getvalue() == ""
