"""Training callbacks: the per-round log line, checkpoints, the model saved after every round.

The log line is SageMaker's (``[3]\\ttrain-rmse:1.23456\\tvalidation-rmse:2.34567``), printed
on stdout by the master host only, numbered from the first round of the whole job (a job
resumed from ``xgboost-checkpoint.19`` prints ``[20]`` next), so the published metric regexes
``.*\\[[0-9]+\\].*#011validation-<m>:(\\S+)`` match it after CloudWatch turns TAB into ``#011``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import xgboost

from sagedock.toolkit.signals import raise_if_stopped

if TYPE_CHECKING:
    from collections.abc import Mapping

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "xgboost-checkpoint"
MODEL_NAME = "xgboost-model"
#: SageMaker's checkpoint uploader marks a file it is copying with this suffix.
UPLOADING_SUFFIX = ".sagemaker-uploading"
UPLOADED_SUFFIX = ".sagemaker-uploaded"
_CHECKPOINT_RE = re.compile(rf"^{CHECKPOINT_PREFIX}\.([0-9]+)$")


def format_evaluation(iteration: int, evals_log: Mapping[str, Mapping[str, Any]]) -> str:
    """``[i]\\t<data>-<metric>:<value %.5f>...`` for the latest value of every metric."""
    parts = [f"[{iteration}]"]
    for data, metrics in evals_log.items():
        for metric, values in metrics.items():
            value = values[-1]
            if isinstance(value, tuple):  # (mean, std) from cross-validation
                value = value[0]
            parts.append(f"{data}-{metric}:{value:.5f}")
    return "\t".join(parts)


class EvaluationLog(xgboost.callback.TrainingCallback):
    """Print one evaluation line per round (on the master host)."""

    def __init__(
        self, *, start_iteration: int = 0, enabled: bool = True, stream: IO[str] | None = None
    ) -> None:
        super().__init__()
        self.start_iteration = start_iteration
        self.enabled = enabled
        self.stream = stream

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        if self.enabled and evals_log:
            stream = self.stream or sys.stdout
            stream.write(format_evaluation(self.start_iteration + epoch, evals_log) + "\n")
            stream.flush()
        return False


def save_booster(booster: Any, path: Path | str) -> None:
    """``booster.save_model(path)`` in the installed XGBoost's default format (UBJSON for 3.x,
    as SageMaker's 3.0-5 image writes it), without XGBoost's warning about that default."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*UBJSON format as default.*")
        booster.save_model(str(path))


class InOrder(xgboost.callback.TrainingCallback):
    """Run *callbacks* in the given order, every one of them, every round.

    ``xgboost.train`` keeps its callbacks in a set and stops calling them at the first that
    asks to stop, so on its own the last round's log line or checkpoint would be skipped at
    random when early stopping ends training.
    """

    def __init__(self, callbacks: list[xgboost.callback.TrainingCallback]) -> None:
        super().__init__()
        self.callbacks = list(callbacks)

    def before_training(self, model: Any) -> Any:
        for callback in self.callbacks:
            model = callback.before_training(model)
        return model

    def after_training(self, model: Any) -> Any:
        for callback in self.callbacks:
            model = callback.after_training(model)
        return model

    def before_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        results = [c.before_iteration(model, epoch, evals_log) for c in self.callbacks]
        return any(results)

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        results = [c.after_iteration(model, epoch, evals_log) for c in self.callbacks]
        return any(results)


def _atomic_save(booster: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        save_booster(booster, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """``(iteration, path)`` of every ``xgboost-checkpoint.<n>`` in *directory*, ascending."""
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = _CHECKPOINT_RE.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def load_checkpoint(directory: Path | None) -> tuple[xgboost.Booster | None, int]:
    """The newest loadable checkpoint and the round to resume from (``(None, 0)`` if none).

    A checkpoint that does not load (a half-written file from an interrupted upload) is
    skipped in favour of the one before it.
    """
    if directory is None:
        return None, 0
    for iteration, path in reversed(checkpoints(directory)):
        booster = xgboost.Booster()
        try:
            booster.load_model(str(path))
        except xgboost.core.XGBoostError:
            logger.warning("checkpoint %s does not load; trying an older one", path)
            continue
        logger.info("Checkpoint loaded from %s; resuming from iteration %d", path, iteration + 1)
        return booster, iteration + 1
    return None, 0


class SaveCheckpoint(xgboost.callback.TrainingCallback):
    """Save ``xgboost-checkpoint.<round>`` after every round, keeping the newest *keep*."""

    def __init__(self, directory: Path, *, start_iteration: int = 0, keep: int = 5) -> None:
        super().__init__()
        self.directory = directory
        self.start_iteration = start_iteration
        self.keep = keep

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        iteration = self.start_iteration + epoch
        _atomic_save(model, self.directory / f"{CHECKPOINT_PREFIX}.{iteration}")
        for _, path in checkpoints(self.directory)[: -self.keep]:
            uploading = Path(str(path) + UPLOADING_SUFFIX)
            uploaded = Path(str(path) + UPLOADED_SUFFIX)
            if uploading.exists() and not uploaded.exists():
                continue  # the platform is still copying it; it goes next round
            path.unlink(missing_ok=True)
        return False


class SaveModelEachRound(xgboost.callback.TrainingCallback):
    """``save_model_on_termination``: the model so far is in ``model_dir`` after every round."""

    def __init__(self, model_dir: Path, name: str = MODEL_NAME) -> None:
        super().__init__()
        self.path = model_dir / name
        self.saved = False
        """Whether a model has been saved (by this callback, in this run)."""

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        _atomic_save(model, self.path)
        self.saved = True
        return False


class StopOnSignal(xgboost.callback.TrainingCallback):
    """End training at the next round boundary once a stop signal has arrived.

    The signal's own :class:`~sagedock.toolkit.signals.TrainingStopped` is lost when it is
    raised inside XGBoost's log callback (a ctypes callback, called every round); raised
    from here it reaches :func:`~sagedock.containers.xgboost.train.stop_saves_model`. Put it
    last, so the round it ends still gets its log line and saved model.
    """

    def before_training(self, model: Any) -> Any:
        raise_if_stopped()
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        raise_if_stopped()
        return False


def keep_only_models(model_dir: Path) -> None:
    """What a job stopped with ``save_model_on_termination`` leaves: only ``xgboost-model*``."""
    if not model_dir.is_dir():
        return
    for entry in model_dir.iterdir():
        if entry.is_file() and not entry.name.startswith(MODEL_NAME):
            entry.unlink()
