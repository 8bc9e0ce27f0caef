"""What a built-in algorithm publishes about each metric it logs: the name a tuning job and
the console use, the regex that finds its value in the training log, and its direction."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricDefinition:
    """A metric as a tuning job and the console see it."""

    name: str
    regex: str
    direction: str  # "Maximize" | "Minimize"
