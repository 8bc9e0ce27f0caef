"""What every benchmark here needs to know about the machine it shares: how busy it is.

The benches run as ``python bench/NAME`` and import this module from their parent folder.
"""

from __future__ import annotations

import os
import time

#: --wait-quiet waits for a second in which the machine is busy for less than this many cores.
QUIET_CORES = 0.25


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, from /proc/stat)."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_wait: float, threshold: float = QUIET_CORES) -> float:
    """Wait (at most *max_wait* s) for a second in which the machine is busy for less than
    *threshold* cores; the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < max_wait:
        before = busy_seconds()
        time.sleep(1.0)
        if busy_seconds() - before < threshold:
            break
    return time.monotonic() - started
