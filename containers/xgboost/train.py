"""Algorithm-mode training: ``sagedock train --algorithm xgboost`` / ``SAGEDOCK_ALGORITHM=xgboost``.

:func:`train` is what SageMaker's XGBoost container does with a job:

1. validate hyperparameters (:mod:`.hyperparameters`) and channels (:mod:`.channels`);
2. read ``train`` (and ``validation``) in their format, File/FastFile or Pipe mode;
3. on several hosts, agree which hosts have data and form XGBoost's collective group;
4. ``xgboost.train`` with the ``[(train, "train"), (validation, "validation")]`` watchlist,
   one log line per round, container metrics, early stopping, checkpoints, and the model
   saved each round when ``save_model_on_termination`` is set (a SIGTERM then ends the job
   successfully with that model);
5. write ``model/xgboost-model`` (``xgboost-model-<fold>`` for ``_kfold``) on the master.

XGBoost errors caused by the data or the parameters (labels out of range, NaN labels, ...) are
UserErrors (``ClientError: ...``), and so is a refusal from XGBoost's core that names one of
the job's parameters (``Check failed: param_.max_depth > 0`` with ``tree_method=exact``: the
message starts ``Hyperparameter max_depth: XGBoost refused 0``); anything else is
``AlgorithmError: XGB train call failed``. Ranges XGBoost is known to refuse are checked before
training instead (:mod:`.hyperparameters`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xgboost

from sagedock.containers.data.batch import Batch, concat
from sagedock.containers.data.content_types import parse_content_type
from sagedock.containers.data.files import list_data_files, require_data, warn_identical_files
from sagedock.toolkit.errors import AlgorithmError, SagedockError, UserError
from sagedock.toolkit.outcome import SUCCESS, Outcome
from sagedock.toolkit.signals import TrainingStopped

from ..hyperparameters import job_hyperparameters
from . import callbacks as cb
from . import cv
from . import data as xgb_data
from .channels import TRAIN, VALIDATION, validate_channels
from .distributed import Group, agree_on_hosts_with_data, communicator, tracker_port
from .hyperparameters import DEFAULT_OBJECTIVE, Hyperparameters, validate
from .metrics import MetricInputError, evaluate, is_maximized, split_metrics
from .stopping import StopGuard, blocked_outcome, stop_when_blocked

if TYPE_CHECKING:
    from sagedock.toolkit.env import TrainingEnv

logger = logging.getLogger(__name__)

MODEL_NAME = cb.MODEL_NAME

#: Text in an XGBoost error that says the data or the parameters are at fault.
USER_ERROR_MARKERS: tuple[str, ...] = (
    # SageMaker's list
    "label must be in [0,1] for logistic regression",
    "label must be in [0, num_class)",
    "Target is multiclass but average='binary'",
    "feature_names mismatch",
    "preds.size() == info.labels_.size()",
    "the dataset only contains pos or neg samples",
    "base_score must be in (0,1)",
    "label must be nonnegative",
    "Parameter reg_lambda should be greater equal to 0",
    # and what XGBoost 3 says about bad data or parameters
    "label must be",
    "Label contains NaN",
    "labels_lower_bound_",
    "should be greater equal to",
    "should be less than or equal to",
    "Unknown tree updater",
    "Unknown objective function",
    "not compiled with GPU support",
    "Only uniform sampling is supported",
    "No more tree left for updating",
    "qid must be sorted",
    "Invalid Parameter format",
    "pos_label=1 is not a valid label",
    "Check failed: labels.Size()",
    # a value that is inf, or beyond float32's range (1e300, read as inf like XGBoost reads it)
    "Input data contains `inf`",
)

_LOG_PREFIX = re.compile(r"^\[\d\d:\d\d:\d\d\] \S+:\d+: ")


def xgboost_error_text(exc: BaseException) -> str:
    """XGBoost's message without timestamps, source locations and stack traces."""
    lines = []
    for line in str(exc).splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("[bt]") or stripped.startswith("Stack trace"):
            continue
        lines.append(_LOG_PREFIX.sub("", stripped))
    return "\n".join(lines)


#: How XGBoost's C++ core words a refused parameter value ("Check failed: max_bin >= 2 ...").
PARAMETER_FAILURES: tuple[str, ...] = (
    "Check failed",
    "Out of range value for",
    "Invalid Parameter format for",
)

#: XGBoost's own names for the hyperparameters SageMaker gives by another name.
_XGBOOST_NAMES: Mapping[str, str] = {
    "learning_rate": "eta",
    "min_split_loss": "gamma",
    "reg_lambda": "lambda",
    "reg_alpha": "alpha",
}


def blamed_hyperparameter(text: str, params: Mapping[str, Any]) -> str | None:
    """The hyperparameter of *params* that XGBoost's refusal *text* names first, if any.

    Only messages about a parameter value count (:data:`PARAMETER_FAILURES`), and only names
    the job set: ``Check failed: param_.max_depth > 0`` blames ``max_depth`` when the job gave
    it; ``Check failed: learner_model_param_.num_feature == ...`` blames nothing.
    """
    if not any(marker in text for marker in PARAMETER_FAILURES):
        return None
    spellings = {name: name for name in params}
    spellings |= {xgb: ours for xgb, ours in _XGBOOST_NAMES.items() if ours in params}
    first: tuple[int, str] | None = None
    for spelling, name in spellings.items():
        # \b: "lambda" is not found inside "reg_lambda" (the underscore is a word character)
        match = re.search(rf"\b{re.escape(spelling)}\b", text)
        if match and (first is None or match.start() < first[0]):
            first = (match.start(), name)
    return first[1] if first else None


def classify_error(exc: BaseException, params: Mapping[str, Any] | None = None) -> SagedockError:
    """A UserError when *exc* is about the data or parameters, else an AlgorithmError.

    SageMaker's own data and parameter messages are kept word for word; a refusal that names
    one of the job's *params* (XGBoost's parameters) says which, with its value.
    """
    text = xgboost_error_text(exc)
    if isinstance(exc, MetricInputError) or any(m in text for m in USER_ERROR_MARKERS):
        return UserError(text)
    given = params or {}
    name = blamed_hyperparameter(text, given)
    if name is not None:
        return UserError(f"Hyperparameter {name}: XGBoost refused {given[name]}: {text}")
    return AlgorithmError(f"XGB train call failed with exception:\n {text}")


@contextlib.contextmanager
def xgboost_errors(params: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Turn XGBoost's errors into ours (:func:`classify_error`), blaming *params* where named."""
    try:
        yield
    except (xgboost.core.XGBoostError, MetricInputError) as exc:
        raise classify_error(exc, params) from exc


# -- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How this job trains, decided from hyperparameters before any data is read."""

    hyperparameters: Hyperparameters
    params: dict[str, Any]
    container_metrics: tuple[str, ...]
    early_stopping_metric: str | None

    @property
    def objective(self) -> str:
        return str(self.params.get("objective", DEFAULT_OBJECTIVE))


def make_plan(hps: Hyperparameters, *, has_validation: bool) -> Plan:
    """XGBoost parameters, metrics and early stopping for *hps*."""
    params = hps.xgboost_params()
    metrics = list(hps.eval_metric)
    tuning = hps.tuning_metric
    if tuning:
        # Sorted so that every host of a distributed job prints the same order.
        metrics = sorted(set(metrics) | {tuning})
    native, ours = split_metrics(metrics)
    if native:
        params["eval_metric"] = native
    stop_metric = None
    if hps.early_stopping_rounds:
        stop_metric = tuning or (hps.eval_metric[-1] if hps.eval_metric else None)
        if not has_validation:
            logger.warning(
                "early_stopping_rounds=%d is ignored: early stopping needs a validation channel",
                hps.early_stopping_rounds,
            )
            stop_metric = None
        elif stop_metric is None:
            # SageMaker's container ignores it silently; say so instead.
            logger.warning(
                "early_stopping_rounds=%d is ignored: set eval_metric (or tune with an objective "
                "metric) to name the validation metric that decides when to stop",
                hps.early_stopping_rounds,
            )
    return Plan(hps, params, tuple(ours), stop_metric)


def custom_metric(names: Sequence[str], objective: str) -> Callable[[np.ndarray, Any], Any]:
    """The ``custom_metric`` computing the container metrics *names*."""
    labels_of: dict[int, np.ndarray] = {}

    def compute(preds: np.ndarray, dmatrix: Any) -> list[tuple[str, float]]:
        labels = labels_of.get(id(dmatrix))
        if labels is None:
            labels = labels_of[id(dmatrix)] = dmatrix.get_label()
        return evaluate(names, preds, labels, objective)

    return compute


# -- reading the channels -----------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    train: xgb_data.ChannelData | None
    validation: xgb_data.ChannelData | None
    has_validation_channel: bool
    train_path: Path
    validation_path: Path

    def close(self) -> None:
        """Drop spilled batches (once the matrices exist)."""
        for data in (self.train, self.validation):
            if data is not None:
                data.close()


SCRATCH_ENV = "SAGEDOCK_SCRATCH_DIR"


def scratch_dir(env: TrainingEnv) -> Path:
    """Where parsed batches are spilled and a Pipe-mode parquet stream's files are copied to
    be read: ``SAGEDOCK_SCRATCH_DIR``, else ``/opt/ml/tmp`` (the training volume, which holds
    the input data too)."""
    given = os.environ.get(SCRATCH_ENV, "").strip()
    return Path(given) if given else env.paths.base / "tmp"


def read_inputs(
    env: TrainingEnv,
    channels: Mapping[str, Mapping[str, Any]],
    csv_weights: bool,
    spill_dir: Path | None = None,
) -> Inputs:
    """Read the train and validation channels of this host (batches spilled to *spill_dir*
    when given, else kept in memory)."""
    train_config = channels[TRAIN]
    fmt = parse_content_type(train_config["ContentType"]).format
    pipe = train_config.get("TrainingInputMode") == "Pipe"
    validation_config = channels.get(VALIDATION)
    if validation_config is not None:
        other = parse_content_type(validation_config["ContentType"]).format
        if other != fmt:
            logger.warning(
                "the validation channel says %s but is read as %s, the train channel's format",
                other,
                fmt,
            )

    def load(name: str) -> xgb_data.ChannelData | None:
        config = channels[name]
        if config.get("TrainingInputMode") == "Pipe":
            from sagedock.toolkit.channels import open_channel

            with open_channel(env, name).open_epoch(0) as stream:
                return xgb_data.load_stream(
                    f"{name}_0",
                    stream,
                    fmt,
                    csv_weights=csv_weights,
                    spill_dir=spill_dir,
                    scratch_dir=scratch_dir(env),
                )
        return xgb_data.load_files(
            name, env.paths.channel_dir(name), fmt, csv_weights=csv_weights, spill_dir=spill_dir
        )

    if not pipe and validation_config is not None:
        warn_identical_files(
            list_data_files(env.paths.channel_dir(TRAIN)),
            list_data_files(env.paths.channel_dir(VALIDATION)),
        )
    inputs = Inputs(
        load(TRAIN),
        None,
        validation_config is not None,
        env.paths.channel_dir(TRAIN),
        env.paths.channel_dir(VALIDATION),
    )
    try:
        if validation_config is not None:
            inputs = dataclasses.replace(inputs, validation=load(VALIDATION))
        for data in (inputs.train, inputs.validation):
            if data is not None:
                xgb_data.check_labels(data)
    except BaseException:
        inputs.close()
        raise
    return inputs


# -- training -------------------------------------------------------------------------------


@contextlib.contextmanager
def stop_saves_model(enabled: bool, model_dir: Path) -> Iterator[None]:
    """With ``save_model_on_termination``, a stop signal ends the job successfully with the
    model saved after the last finished round (and nothing else in the model dir)."""
    try:
        yield
    except TrainingStopped:
        if not enabled:
            raise
        logger.info("stopped by a signal: keeping the model of the last finished round")
        cb.keep_only_models(model_dir)
        raise SystemExit(0) from None


def _keep_saved_model(saver: cb.SaveModelEachRound, model_dir: Path, signum: int) -> Outcome:
    """The outcome of a stop that the main thread could not act on (blocked in the
    collective): as :func:`stop_saves_model` once a round's model has been saved."""
    if not saver.saved:
        return blocked_outcome(signum)
    logger.info("stopped by a signal: keeping the model of the last finished round")
    cb.keep_only_models(model_dir)
    return SUCCESS


def _matrices(
    plan: Plan, train: Sequence[Batch], validation: Sequence[Batch] | None, num_cols: int
) -> tuple[Any, Any]:
    quantile = xgb_data.wants_quantile(plan.params)
    max_bin = plan.params.get("max_bin")
    nthread = plan.params.get("nthread")
    with xgboost_errors(plan.params):
        dtrain = xgb_data.build_matrix(
            train, num_cols=num_cols, quantile=quantile, max_bin=max_bin, nthread=nthread
        )
        dval = None
        if validation:
            dval = xgb_data.build_matrix(
                validation,
                num_cols=num_cols,
                quantile=quantile,
                ref=dtrain if quantile else None,
                max_bin=max_bin,
                nthread=nthread,
            )
    return dtrain, dval


def _early_stopping(plan: Plan, *, has_validation: bool) -> list[Any]:
    """XGBoost's EarlyStopping on the validation set, when the job asks for it."""
    if not (plan.early_stopping_metric and has_validation):
        return []
    return [
        xgboost.callback.EarlyStopping(
            rounds=int(plan.hyperparameters.early_stopping_rounds or 0),
            metric_name=plan.early_stopping_metric,
            data_name="validation",
            maximize=is_maximized(plan.early_stopping_metric),
            save_best=plan.params.get("booster") != "gblinear",
        )
    ]


def _train_once(
    plan: Plan,
    dtrain: Any,
    dval: Any,
    *,
    callbacks: list[Any],
    start: int = 0,
    xgb_model: Any = None,
    evals_result: dict[str, Any] | None = None,
) -> Any:
    watchlist = [(dtrain, "train")]
    if dval is not None:
        watchlist.append((dval, "validation"))
    metric = (
        custom_metric(plan.container_metrics, plan.objective) if plan.container_metrics else None
    )
    with xgboost_errors(plan.params):
        return xgboost.train(
            plan.params,
            dtrain,
            num_boost_round=max(plan.hyperparameters.num_round - start, 0),
            evals=watchlist,
            custom_metric=metric,
            callbacks=[cb.InOrder([*callbacks, cb.StopOnSignal()])],
            xgb_model=xgb_model,
            evals_result=evals_result,
            verbose_eval=False,
        )


def train_model(
    env: TrainingEnv,
    plan: Plan,
    inputs: Inputs,
    *,
    is_master: bool,
    stop_guard: StopGuard | None = None,
) -> None:
    """Train on this host's data (inside the collective group when there are several hosts;
    *stop_guard* then learns how a stop keeps the model of ``save_model_on_termination``)."""
    assert inputs.train is not None
    num_cols = max(inputs.train.num_cols, inputs.validation.num_cols if inputs.validation else 0)
    logger.info(
        "Train matrix has %d rows and %d columns", inputs.train.num_rows, inputs.train.num_cols
    )
    if inputs.validation is not None:
        logger.info("Validation matrix has %d rows", inputs.validation.num_rows)
    if plan.hyperparameters.kfold:
        _cross_validate(env, plan, inputs, num_cols=num_cols, is_master=is_master)
        return
    started = time.monotonic()
    dtrain, dval = _matrices(
        plan,
        inputs.train.batches,
        inputs.validation.batches if inputs.validation else None,
        num_cols,
    )
    inputs.close()
    logger.info(
        "built the %s in %.1f s",
        "QuantileDMatrix" if xgb_data.wants_quantile(plan.params) else "DMatrix",
        time.monotonic() - started,
    )
    hps = plan.hyperparameters
    checkpoint_dir = env.checkpoint_dir if env.paths.checkpoint_config_file.is_file() else None
    xgb_model, start = cb.load_checkpoint(checkpoint_dir)
    finished = start >= hps.num_round
    if finished:
        logger.info(
            "the checkpoint already has all %d rounds (num_round): nothing left to train",
            hps.num_round,
        )
    callbacks: list[Any] = [cb.EvaluationLog(start_iteration=start, enabled=is_master)]
    # Early stopping before the checkpoint: a checkpoint then records the best round so far
    # including its own, which a restart with no rounds left cuts the model to. A finished
    # checkpoint that records no best round (its job trained without early stopping) has
    # nothing to cut, and is kept as it is.
    kept_as_is = (
        finished and xgb_model is not None and "best_iteration" not in xgb_model.attributes()
    )
    if not kept_as_is:
        callbacks += _early_stopping(plan, has_validation=dval is not None)
    if checkpoint_dir is not None and is_master:
        callbacks.append(cb.SaveCheckpoint(checkpoint_dir, start_iteration=start))
    if hps.save_model_on_termination and is_master:
        saver = cb.SaveModelEachRound(env.model_dir)
        callbacks.append(saver)
        if stop_guard is not None:
            stop_guard.outcome = functools.partial(_keep_saved_model, saver, env.model_dir)
    with stop_saves_model(hps.save_model_on_termination, env.model_dir):
        booster = _train_once(
            plan, dtrain, dval, callbacks=callbacks, start=start, xgb_model=xgb_model
        )
    if is_master:
        env.model_dir.mkdir(parents=True, exist_ok=True)
        cb.save_booster(booster, env.model_dir / MODEL_NAME)
        logger.info("Stored trained model at %s", env.model_dir / MODEL_NAME)


def _cross_validate(
    env: TrainingEnv, plan: Plan, inputs: Inputs, *, num_cols: int, is_master: bool
) -> None:
    """``_kfold``: train and validation combined, one model per fold, ``predictions.csv``."""
    assert inputs.train is not None
    hps = plan.hyperparameters
    k = int(hps.kfold or 0)
    blocks = list(inputs.train.batches) + list(
        inputs.validation.batches if inputs.validation else ()
    )
    everything = concat(xgb_data.uniform_batches(blocks, num_cols))
    labels = everything.label if everything.label is not None else np.zeros(everything.num_rows)
    classification = bool(hps.get("num_class")) or plan.objective.startswith("binary:")
    logger.info(
        "Run %d-round of %d-fold cross validation with %d rows", hps.num_cv_round, k, len(labels)
    )
    recorder = cv.PredictionRecorder(labels, hps.num_cv_round, classification)
    results: list[dict[str, Any]] = []
    boosters: list[Any] = []
    splits = cv.folds(
        len(labels), k, repeats=hps.num_cv_round, labels=labels if classification else None
    )
    for train_rows, val_rows in splits:
        logger.info("Train cross validation fold %d", len(boosters) % k + 1)
        dtrain, dval = _matrices(
            plan,
            [xgb_data.take_rows(everything, train_rows)],
            [xgb_data.take_rows(everything, val_rows)],
            num_cols,
        )
        evals_result: dict[str, Any] = {}
        callbacks = [
            cb.EvaluationLog(enabled=is_master),
            *_early_stopping(plan, has_validation=True),
        ]
        booster = _train_once(plan, dtrain, dval, callbacks=callbacks, evals_result=evals_result)
        boosters.append(booster)
        results.append(evals_result)
        with xgboost_errors(plan.params):
            recorder.record(val_rows, booster.predict(dval))
        if len(boosters) % k == 0 and is_master:
            logger.info("The metrics of round %d cross validation", len(boosters) // k)
            print(cv.format_cv_metrics(hps.num_round, results[-k:]), flush=True)
    if hps.num_cv_round > 1 and is_master:
        logger.info("The overall metrics of %d-round cross validation", hps.num_cv_round)
        print(cv.format_cv_metrics(hps.num_round, results), flush=True)
    if is_master:
        recorder.save(env.output_data_dir)
        env.model_dir.mkdir(parents=True, exist_ok=True)
        for fold, booster in enumerate(boosters):
            cb.save_booster(booster, env.model_dir / f"{MODEL_NAME}-{fold}")


# -- entry point ----------------------------------------------------------------------------


def _refuse_dask(env: TrainingEnv, hps: Hyperparameters, channels: Mapping[str, Any]) -> None:
    problems = []
    if hps.get("tree_method") not in ("gpu_hist", "hist"):
        problems.append("tree_method must be gpu_hist or hist")
    if env.num_gpus < 1:
        problems.append("the instance has no GPU")
    train_config = channels[TRAIN]
    if train_config.get("TrainingInputMode") == "Pipe":
        problems.append("Pipe mode is not supported")
    if parse_content_type(train_config["ContentType"]).format not in ("csv", "parquet"):
        problems.append("only csv and parquet data are supported")
    if len(env.hosts) > 1 and any(
        c.get("S3DistributionType") != "FullyReplicated" for c in channels.values()
    ):
        problems.append("channels must be FullyReplicated when there is more than one host")
    problems.append("sagedock does not implement Dask GPU training")
    raise UserError(
        "Some configurations unsuitable for Dask GPU training were found: " + ". ".join(problems)
    )


def train(env: TrainingEnv) -> None:
    """Train SageMaker's built-in XGBoost on the job described by *env*."""
    hps = validate(job_hyperparameters(env))
    channels = validate_channels(env.input_data_config)
    if hps.use_dask_gpu_training:
        _refuse_dask(env, hps, channels)
    plan = make_plan(hps, has_validation=VALIDATION in channels)
    # Spill parsed batches to disk when the matrix is built in several passes over them.
    spill = xgb_data.wants_quantile(plan.params) and not hps.kfold
    inputs = read_inputs(env, channels, hps.csv_weights, scratch_dir(env) if spill else None)
    try:
        _train(env, plan, inputs)
    finally:
        inputs.close()


def _train(env: TrainingEnv, plan: Plan, inputs: Inputs) -> None:
    hosts = tuple(env.hosts)
    if len(hosts) <= 1:
        if inputs.train is None:
            require_data([], TRAIN, inputs.train_path)
        if inputs.has_validation_channel and inputs.validation is None:
            require_data([], VALIDATION, inputs.validation_path)
        logger.info("Single node training.")
        train_model(env, plan, inputs, is_master=True)
        return
    _train_distributed(env, plan, inputs, hosts)


def _train_distributed(
    env: TrainingEnv, plan: Plan, inputs: Inputs, hosts: tuple[str, ...]
) -> None:
    from sagedock.toolkit.launch.hosts import resolve_host

    current = env.current_host
    has_data = inputs.train is not None
    if inputs.train is None:
        logger.warning(
            "Host %s does not have training data; it will not take part in distributed "
            "training. Divide the training data across instances (ShardedByS3Key).",
            current,
        )
    if inputs.has_validation_channel and inputs.validation is None:
        logger.warning(
            "Host %s does not have validation data; it will not take part in distributed "
            "training. Divide the validation data across instances.",
            current,
        )
        has_data = False
    logger.info("Distributed node training with %d hosts: %s", len(hosts), ", ".join(hosts))
    port = tracker_port()

    def resolve(name: str) -> str:
        return str(resolve_host(name))

    # A host waiting in the collective for a slow or stopped host sits in one native call,
    # where Python never runs the handler of a stop signal: the guard acts on it instead.
    with stop_when_blocked(env.paths):
        included = agree_on_hosts_with_data(hosts, current, has_data, port, resolve)
    if not included:
        raise UserError(
            f"No data in training channel path {inputs.train_path} on any of the hosts "
            f"{', '.join(sorted(hosts))}"
        )
    if current not in included:
        logger.info("Host %s has no data and leaves the training group", current)
        return
    group = Group(included, current)
    if len(included) == 1:
        train_model(env, plan, inputs, is_master=True)
        return
    with stop_when_blocked(env.paths) as guard, communicator(group, port + 1, resolve):
        train_model(env, plan, inputs, is_master=group.is_master, stop_guard=guard)
