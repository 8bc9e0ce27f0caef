"""Training metrics read from the logs with ``MetricDefinitions`` regexes, as SageMaker does
(a metric's value is the regex's first group, or the whole match when it has none)."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from .spec.training import MetricDefinition


@dataclass(frozen=True)
class MetricPoint:
    name: str
    value: float
    timestamp: str


def match_metrics(definitions: Sequence[MetricDefinition], line: str) -> list[tuple[str, float]]:
    """Every ``(name, value)`` that *line* yields; unparseable values are skipped.

    A definition that finds nothing in a line holding TABs is tried again on the line as
    CloudWatch shows it, TAB as ``#011``: the regexes AWS publishes for its algorithms are
    written for that form (XGBoost's ``.*\\[[0-9]+\\].*#011validation-rmse:(\\S+)``).
    """
    out = []
    encoded = line.replace("\t", "#011") if "\t" in line else None
    for d in definitions:
        matches = list(d.pattern.finditer(line))
        if not matches and encoded is not None:
            matches = list(d.pattern.finditer(encoded))
        for m in matches:
            text = m.group(1) if m.re.groups else m.group(0)
            try:
                value = float(text)
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                out.append((d.name, value))
    return out


class MetricCollector:
    """Collects metric values from log lines (thread-safe); keeps the whole series."""

    def __init__(self, definitions: Sequence[MetricDefinition]) -> None:
        self.definitions = tuple(definitions)
        self._lock = threading.Lock()
        self.series: dict[str, list[MetricPoint]] = {}

    def feed(self, line: str, timestamp: str) -> None:
        if not self.definitions:
            return
        found = match_metrics(self.definitions, line)
        if not found:
            return
        with self._lock:
            for name, value in found:
                self.series.setdefault(name, []).append(MetricPoint(name, value, timestamp))

    def final(self) -> list[dict[str, object]]:
        """``FinalMetricDataList``: the last value of each metric, in definition order."""
        with self._lock:
            out: list[dict[str, object]] = []
            for d in self.definitions:
                points = self.series.get(d.name)
                if points:
                    last = points[-1]
                    out.append(
                        {"MetricName": d.name, "Value": last.value, "Timestamp": last.timestamp}
                    )
            return out
