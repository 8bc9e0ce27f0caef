"""Algorithm-mode training: ``sagedock train --algorithm linear-learner``.

:func:`train` does with a job what SageMaker's Linear Learner does:

1. hyperparameters (:mod:`.hyperparameters`, every ``auto`` resolved) and channels
   (:mod:`.channels`), logged as SageMaker logs them (default, given, final configuration);
2. a sample of ``num_point_for_scaler`` training rows fixes the feature count and the
   normalisation (:class:`.batched.Normaliser`; the ``Scaling model computed`` line);
3. ``epochs`` passes over ``train``, streamed in mini-batches, every model updated on each one
   (:class:`.batched.ParallelLinear`); per epoch the ``#metrics`` lines of every model, the
   best model's train and validation ``#quality_metric`` lines, early stopping on the
   objective (validation if given, else training) and ``#progress_metric``; each model keeps
   the weights of its best validation epoch;
4. the model is chosen (and a binary classifier's threshold calibrated) on the validation
   channel, or on a training sample without one (:mod:`.selection`); ``Best model found for
   hyperparameters``, then the final validation (or training) scores and the test channel's;
5. ``model/model.tar.gz`` (the platform's packing) gets ``model_algo-1`` (:mod:`.model`).

On several hosts the rows are split by the platform (``ShardedByS3Key``) and every update is
the mean gradient of all hosts' mini-batches (:mod:`.distributed`); the first host writes the
model.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sagedock.toolkit.errors import UserError

from ..hyperparameters import job_hyperparameters
from . import metrics as ll_metrics
from . import selection
from .batched import (
    LossSpec,
    Normaliser,
    ParallelLinear,
    Rows,
    class_weights,
    cpu_threads,
    loss_and_gradient,
    positive_weights,
    row_weights,
)
from .channels import TEST, TRAIN, VALIDATION, ChannelReader, open_reader, validate_channels
from .data import LabelRule, MiniBatch, MiniBatcher, first_rows
from .hyperparameters import DEFAULT_INPUT, LinearLearnerConfig, parse_hyperparameters
from .model import ARTIFACT_NAME, LinearModel, Scorer, save_model

if TYPE_CHECKING:
    from sagedock.toolkit.env import TrainingEnv

    from .distributed import Group

logger = logging.getLogger(__name__)

#: Rows of the model-selection sample at most (the scores of every model are held at once).
MAX_SELECTION_ROWS = 1_000_000
#: The seed of the models' settings and initial weights: a job trains the same way each time.
SEED = 0


@dataclass
class Job:
    """What every stage of training needs."""

    config: LinearLearnerConfig
    host: str
    device: torch.device
    #: The job's channels; ``None`` for a host without a share of a channel.
    readers: dict[str, ChannelReader | None]
    group: Group | None
    cpus: int = 1

    @property
    def is_master(self) -> bool:
        return self.group is None or self.group.is_master

    def log(self, line: str) -> None:
        logger.info("%s", line)

    def batcher(self, channel: str, feature_dim: int | None) -> MiniBatcher:
        cfg = self.config
        rule = LabelRule(cfg.predictor_type, cfg.num_classes)
        return MiniBatcher(channel, cfg.mini_batch_size, rule, feature_dim)

    def mini_batches(self, channel: str, feature_dim: int | None) -> Iterator[MiniBatch]:
        reader = self.readers.get(channel)
        if reader is None:
            return iter(())
        return self.batcher(channel, feature_dim)(reader.read())


def train(env: TrainingEnv) -> None:
    """Train SageMaker's Linear Learner on the job described by *env*."""
    logger.info(
        "Reading default configuration from the algorithm's defaults: %s",
        json.dumps(dict(DEFAULT_INPUT)),
    )
    config = parse_hyperparameters(job_hyperparameters(env), seed=SEED)
    logger.info(
        "Merging with provided configuration from %s: %s",
        env.paths.hyperparameters_file,
        json.dumps(dict(config.given)),
    )
    logger.info("Final configuration: %s", json.dumps(dict(config.final)))
    channels = validate_channels(env.input_data_config)
    device = torch.device("cuda" if env.num_gpus > 0 and torch.cuda.is_available() else "cpu")
    hosts = tuple(env.hosts)
    with _group(env, hosts) as group:
        readers = {
            name: open_reader(env, name, channels[name], allow_empty=group is not None)
            for name in (TRAIN, VALIDATION, TEST)
            if name in channels
        }
        job = Job(config, env.current_host, device, readers, group, env.num_cpus)
        if TEST not in readers:
            job.log("Test data is not provided.")
        model = run(job)
    if job.is_master:
        env.model_dir.mkdir(parents=True, exist_ok=True)
        path = save_model(model, env.model_dir / ARTIFACT_NAME)
        logger.info("Saved the model to %s", path)


@contextlib.contextmanager
def _group(env: TrainingEnv, hosts: tuple[str, ...]) -> Iterator[Group | None]:
    if len(hosts) <= 1:
        yield None
        return
    from .distributed import joined

    with joined(env, hosts) as group:
        yield group


def run(job: Job) -> LinearModel:
    """Train, select and score; the selected model as its artifact."""
    cfg = job.config
    sample = first_rows(job.mini_batches(TRAIN, cfg.feature_dim), cfg.num_point_for_scaler)
    sample = _shared_sample(job, sample)
    normaliser = _fit_normaliser(job, sample)
    feature_dim = normaliser.feature_mean.shape[0]
    job.log(f"Scaling model computed with parameters: {json.dumps(normaliser.to_dict())}")
    if job.device.type == "cpu":
        torch.set_num_threads(cpu_threads(feature_dim, len(cfg.models), cfg.num_outputs, job.cpus))
    models = ParallelLinear(
        cfg.models,
        feature_dim,
        cfg.num_outputs,
        loss=_loss_spec(cfg),
        normaliser=normaliser,
        use_bias=cfg.use_bias,
        init_method=cfg.init_method,
        init_scale=cfg.init_scale,
        init_sigma=cfg.init_sigma,
        init_bias=cfg.init_bias,
        seed=SEED,
        device=job.device,
    )
    positive = (
        positive_weights(cfg.models, sample.label, job.device)
        if cfg.predictor_type == "binary_classifier"
        else None
    )
    classes = (
        class_weights(sample.label, cfg.num_classes, job.device)
        if cfg.predictor_type == "multiclass_classifier" and cfg.balance_multiclass_weights
        else None
    )
    Epochs(job, models, feature_dim, positive, classes).run()
    return select(job, models, feature_dim, normaliser)


def _shared_sample(job: Job, sample: MiniBatch | None) -> MiniBatch:
    if sample is None and job.group is None:
        raise UserError("No training data: the train channel has no rows")
    if job.group is not None:
        return job.group.gather_sample(sample, job.config.num_point_for_scaler)
    assert sample is not None
    return sample


def _fit_normaliser(job: Job, sample: MiniBatch) -> Normaliser:
    cfg = job.config
    regressor = cfg.predictor_type == "regressor"
    return Normaliser.fit(
        sample.features,
        sample.label,
        normalize_data=cfg.normalize_data,
        unbias_data=cfg.unbias_data,
        shift_sparse=cfg.unbias_sparse_data,
        normalize_label=regressor and cfg.normalize_label,
        unbias_label=regressor and cfg.unbias_label,
    )


def _loss_spec(cfg: LinearLearnerConfig) -> LossSpec:

    first = cfg.models[0]
    return LossSpec(
        cfg.loss, first.margin, first.quantile, first.loss_insensitivity, first.huber_delta
    )


class Epochs:
    """The training passes, their log lines and early stopping."""

    def __init__(
        self,
        job: Job,
        models: ParallelLinear,
        feature_dim: int,
        positive: torch.Tensor | None,
        classes: torch.Tensor | None,
    ) -> None:
        self.job = job
        self.models = models
        self.feature_dim = feature_dim
        self.positive = positive
        self.classes = classes
        self.objective = ll_metrics.objective_name(job.config.loss)
        self.has_validation = VALIDATION in job.readers
        self.records = 0
        self.seconds = 0.0

    def run(self) -> None:

        job, cfg = self.job, self.job.config
        best_loss = torch.full((self.models.num_models,), float("inf"), device=job.device)
        best = self.models.snapshot()
        criterion_best = float("inf")
        stale = 0
        for epoch in range(cfg.epochs):
            train_loss = self._train_epoch()
            self._log_epoch("train", epoch, train_loss)
            tracked = train_loss
            if self.has_validation:
                tracked = self._validation_loss()
                self._log_epoch("validation", epoch, tracked)
                improved = tracked < best_loss
                best = self.models.keep_improved(best, improved)
                best_loss = torch.where(improved, tracked, best_loss)
            current = float(torch.nan_to_num(tracked, nan=float("inf")).min().item())
            job.log(
                f"#early_stopping_criteria_metric: host={job.host}, epoch={epoch}, "
                f"criteria={self.objective}, value={current!r}"
            )
            if _improved(criterion_best, current, cfg.early_stopping_tolerance):
                job.log(f"Epoch {epoch}: Loss improved. Updating best model")
                criterion_best, stale = current, 0
            else:
                stale += 1
                job.log(f"Epoch {epoch}: Loss has not improved for {stale} epochs.")
            job.log(ll_metrics.progress_line(job.host, epoch + 1, cfg.epochs))
            if stale >= cfg.early_stopping_patience and epoch + 1 < cfg.epochs:
                job.log(
                    f"Reaching early stopping patience. Patience epochs: "
                    f"{cfg.early_stopping_patience}. Stopping at epoch {epoch}."
                )
                break
        if self.has_validation:
            self.models.restore(best)
        rate = self.records / self.seconds if self.seconds > 0 else 0.0
        job.log(ll_metrics.throughput_line(job.host, rate))

    def _rows(self, batch: MiniBatch) -> Rows:

        rows = Rows.of(batch.features, batch.label, self.job.device)
        weight = row_weights(rows.label, positive=self.positive, classes=self.classes)
        return Rows(rows.features, rows.label, weight) if weight is not None else rows

    def _train_epoch(self) -> torch.Tensor:

        job = self.job
        total = torch.zeros(self.models.num_models, device=job.device, dtype=torch.float64)
        count = 0
        started = time.perf_counter()
        batches = job.mini_batches(TRAIN, self.feature_dim)
        if job.group is None:
            for batch in batches:
                total += self.models.step(self._rows(batch)).double()
                count += batch.num_rows
        else:
            total, count = job.group.train_epoch(self.models, (self._rows(b) for b in batches))
        self.seconds += time.perf_counter() - started
        self.records += count
        return total / max(count, 1)

    def _validation_loss(self) -> torch.Tensor:
        total, count = _loss_sums(self.job, self.models, VALIDATION, self.feature_dim)
        return total / max(count, 1)

    def _log_epoch(self, dataset: str, epoch: int, loss: torch.Tensor) -> None:
        job = self.job
        values = loss.tolist()
        for index, value in enumerate(values):
            job.log(
                ll_metrics.metrics_json(
                    f"{dataset}_{self.objective}",
                    value,
                    host=job.host,
                    epoch=epoch,
                    model=index,
                )
            )
        finite = [v for v in values if np.isfinite(v)]
        best = min(finite) if finite else float("nan")
        job.log(ll_metrics.quality_line(job.host, dataset, self.objective, best, epoch=epoch))


def _improved(best: float, current: float, tolerance: float) -> bool:
    """A relative improvement of at least *tolerance* (any finite value beats none)."""
    if not np.isfinite(current):
        return False
    if not np.isfinite(best):
        return True
    return (best - current) > tolerance * abs(best)


def _loss_sums(
    job: Job, models: ParallelLinear, channel: str, feature_dim: int
) -> tuple[torch.Tensor, int]:
    """Each model's summed loss over a channel, and its row count (over every host)."""
    total = torch.zeros(models.num_models, device=job.device, dtype=torch.float64)
    count = 0
    with torch.no_grad():
        for batch in job.mini_batches(channel, feature_dim):
            rows = Rows.of(batch.features, batch.label, job.device)
            total += models.losses(rows).double()
            count += batch.num_rows
    if job.group is not None:
        total, count = job.group.sum_losses(total, count)
    return total, count


# -- selection and final scores ------------------------------------------------------------------


def select(job: Job, models: ParallelLinear, feature_dim: int, normaliser: Any) -> LinearModel:
    """Choose the model (calibrating a binary threshold) and log the final scores."""
    cfg = job.config
    dataset = VALIDATION if VALIDATION in job.readers else TRAIN
    limit = min(cfg.num_calibration_samples, MAX_SELECTION_ROWS)
    threshold = 0.5
    if job.is_master:
        scores, label = _sample_scores(job, models, dataset, feature_dim, limit)
        index, threshold = _choose(cfg, models, scores, label)
    else:
        index = 0
    if job.group is not None:
        index, threshold = job.group.broadcast_choice(index, threshold)
    chosen = cfg.models[index]
    job.log(f"Best model found for hyperparameters: {json.dumps(chosen.to_json())}")
    weights, bias = models.model_arrays(index)
    model = LinearModel(
        predictor_type=cfg.predictor_type,
        loss=cfg.loss,
        weights=weights,
        bias=bias,
        feature_mean=normaliser.feature_mean,
        feature_scale=normaliser.feature_scale,
        num_classes=cfg.num_classes if cfg.predictor_type == "multiclass_classifier" else None,
        threshold=float(threshold),
        label_mean=normaliser.label_mean,
        label_scale=normaliser.label_scale,
        hyperparameters={**chosen.to_json(), **dict(config_summary(cfg))},
    )
    with torch.no_grad():
        # without a validation channel: the training sample the model was chosen on, not
        # another pass over all of the training data
        _final_scores(job, model, dataset, feature_dim, limit if dataset == TRAIN else None)
        if TEST in job.readers:
            _final_scores(job, model, TEST, feature_dim)
    return model


def config_summary(cfg: LinearLearnerConfig) -> dict[str, Any]:
    return {"predictor_type": cfg.predictor_type, "loss": cfg.loss, "epochs": cfg.epochs}


def _sample_scores(
    job: Job, models: ParallelLinear, channel: str, feature_dim: int, limit: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every model's label-unit scores (rows, models, outputs) on the first *limit* rows."""
    scores: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    held = 0
    with torch.no_grad():
        for batch in job.mini_batches(channel, feature_dim):
            take = min(limit - held, batch.num_rows)
            rows = Rows.of(batch.features[:take], batch.label[:take], job.device)
            scores.append(models.label_scores(rows.features))
            labels.append(rows.label)
            held += take
            if held >= limit:
                break
    if not scores:
        raise UserError(f"No data in {channel} channel to select the model on")
    return torch.cat(scores), torch.cat(labels)


def _choose(
    cfg: LinearLearnerConfig, models: ParallelLinear, scores: torch.Tensor, label: torch.Tensor
) -> tuple[int, float]:

    losses, _ = loss_and_gradient(models.loss, scores, label)
    mean_loss = losses.mean(dim=0)
    criterion = selection.CRITERION_ALIASES.get(
        cfg.binary_classifier_model_selection_criteria,
        cfg.binary_classifier_model_selection_criteria,
    )
    if cfg.predictor_type != "binary_classifier" or criterion == "loss_function":
        threshold = selection.default_threshold(cfg.loss)
        return selection.best_index(mean_loss, larger_is_better=False), threshold
    binary = scores[:, :, 0].T
    if cfg.loss == "logistic":
        binary = torch.sigmoid(binary)
    calibration = selection.calibrate(
        binary,
        label,
        criterion,
        beta=cfg.f_beta,
        target_recall=cfg.target_recall,
        target_precision=cfg.target_precision,
    )
    index = selection.best_index(calibration.value, larger_is_better=True)
    return index, float(calibration.threshold[index].item())


def _final_scores(
    job: Job, model: LinearModel, channel: str, feature_dim: int, limit: int | None = None
) -> None:
    """The chosen model's scores on a channel (its first *limit* rows): ``#<channel>_score``
    and the final ``#quality_metric`` lines."""
    scorer = Scorer.of(model)
    objective = ll_metrics.objective_name(model.loss)
    labels: list[np.ndarray] = []
    outputs: list[np.ndarray] = []
    # (one call of mini_batches per pass: each call takes a Pipe channel's next FIFO)
    batches: Iterable[MiniBatch] = job.mini_batches(channel, feature_dim)
    if limit is not None:
        head = first_rows(batches, limit)
        batches = [] if head is None else [head]
    for batch in batches:
        labels.append(batch.label)
        outputs.append(scorer.scores(batch.features))
    label, score = _gathered(job, labels, outputs, model)
    if not job.is_master or label.size == 0:
        return
    loss = _objective_value(model, score, label, job)
    values: dict[str, float] = {objective: loss}
    cfg = job.config
    if model.predictor_type == "binary_classifier":
        predicted = scorer.labels(score)
        assert predicted is not None
        values |= ll_metrics.binary_scores(label, score[:, 0], predicted, cfg.f_beta)
    elif model.predictor_type == "multiclass_classifier":
        values |= ll_metrics.multiclass_scores(label, score, cfg.f_beta)
    else:
        values |= ll_metrics.regression_scores(label, score[:, 0])
    tag = {TRAIN: "train", VALIDATION: "validation", TEST: "test"}[channel]
    first = next(name for name in values if name != objective)
    job.log(f"#{tag}_score ({job.host}) : ({first!r}, {values[first]!r})")
    for line in ll_metrics.final_score_lines(job.host, tag, values):
        job.log(line)


def _gathered(
    job: Job, labels: list[np.ndarray], outputs: list[np.ndarray], model: LinearModel
) -> tuple[np.ndarray, np.ndarray]:
    width = model.num_classes if model.predictor_type == "multiclass_classifier" else 1
    label = np.concatenate(labels) if labels else np.zeros(0, np.float32)
    score = np.concatenate(outputs) if outputs else np.zeros((0, width or 1), np.float32)
    if job.group is not None:
        label, score = job.group.gather_scores(label, score)
    return label, score


def _objective_value(model: LinearModel, score: np.ndarray, label: np.ndarray, job: Job) -> float:
    """The objective loss of the final scores (probabilities turned back into margins)."""
    raw = torch.from_numpy(score.astype(np.float64))
    if model.loss == "logistic":
        p = raw.clamp(1e-12, 1 - 1e-12)
        raw = torch.log(p) - torch.log1p(-p)
    elif model.loss == "softmax_loss":
        raw = torch.log(raw.clamp(min=1e-12))
    loss, _ = loss_and_gradient(_loss_spec(job.config), raw[:, None, :], torch.from_numpy(label))
    return float(loss.mean().item())
