"""The job record: what DescribeTrainingJob would answer for a local job.

Kept in the state directory while the job runs (updated at every status change, so
``sagedock local describe`` works from another terminal) and written beside the outputs at the
end (``<output>/<job>/training-job.json``).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .spec.schema import output_members
from .state import write_json_atomic

RECORD_NAME = "training-job.json"

#: SecondaryStatus -> the StatusMessage SageMaker shows with it.
STATUS_MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Job stopped because it exceeded MaxRuntimeInSeconds",
}
FINAL_SECONDARY = ("Completed", "Failed", "Stopped", "MaxRuntimeExceeded")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


class JobRecord:
    """A mutable DescribeTrainingJob document, saved atomically on every change."""

    def __init__(self, document: dict[str, Any], path: Path | None) -> None:
        self.document = document
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def create(
        cls, request: dict[str, Any], *, name: str, arn: str, path: Path | None
    ) -> JobRecord:
        created = now()
        doc: dict[str, Any] = {
            "TrainingJobName": name,
            "TrainingJobArn": arn,
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "CreationTime": created,
            "LastModifiedTime": created,
            "SecondaryStatusTransitions": [],
        }
        # The request's fields that DescribeTrainingJob answers with, as SageMaker echoes them.
        echoed = output_members("DescribeTrainingJob")
        for key, value in request.items():
            if key in echoed and key not in doc:
                doc[key] = value
        record = cls(doc, path)
        record.transition("Starting")
        return record

    @property
    def status(self) -> str:
        return str(self.document["TrainingJobStatus"])

    @property
    def secondary_status(self) -> str:
        return str(self.document["SecondaryStatus"])

    def update(self, **fields: Any) -> None:
        with self._lock:
            self.document.update(fields)
            self.document["LastModifiedTime"] = now()
            self._save()

    def transition(self, status: str, message: str | None = None) -> None:
        """Enter SecondaryStatus *status*, closing the previous transition."""
        with self._lock:
            ts = now()
            transitions = self.document["SecondaryStatusTransitions"]
            if transitions and "EndTime" not in transitions[-1]:
                transitions[-1]["EndTime"] = ts
            entry = {
                "Status": status,
                "StartTime": ts,
                "StatusMessage": message or STATUS_MESSAGES.get(status, status),
            }
            if status in FINAL_SECONDARY:
                entry["EndTime"] = ts
            transitions.append(entry)
            self.document["SecondaryStatus"] = status
            self.document["LastModifiedTime"] = ts
            if status == "Training" and "TrainingStartTime" not in self.document:
                self.document["TrainingStartTime"] = ts
            self._save()

    def finish(
        self,
        status: str,
        secondary: str,
        *,
        failure_reason: str | None = None,
        message: str | None = None,
    ) -> None:
        """Set the final TrainingJobStatus and SecondaryStatus (with *message* as its
        StatusMessage, else the usual one), and the end timestamps."""
        self.transition(secondary, message)
        with self._lock:
            ts = now()
            self.document["TrainingJobStatus"] = status
            self.document["TrainingEndTime"] = ts
            if failure_reason:
                self.document["FailureReason"] = failure_reason[:1024]
            start = self.document.get("TrainingStartTime")
            if start:
                seconds = (_parse(ts) - _parse(start)).total_seconds()
                self.document["TrainingTimeInSeconds"] = max(0, round(seconds))
            self._save()

    def save(self) -> None:
        with self._lock:
            self._save()

    def _save(self) -> None:
        if self.path is not None:
            write_json_atomic(self.path, self.document)

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            import copy

            return copy.deepcopy(self.document)
