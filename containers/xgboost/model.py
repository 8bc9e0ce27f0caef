"""Model artifacts: loading what SageMaker's XGBoost versions wrote, and predicting with them.

The models of a directory are its files named ``xgboost-model*``, else every file that is an
XGBoost model (:func:`find_model_files`; hidden files, archives such as the ``model.tar.gz``
SDK local mode leaves beside them, and directories such as ``code/`` are never models); with
``SAGEMAKER_INFERENCE_ENSEMBLE=false`` only the first one (by name) is loaded. Each file may be

- a pickled ``Booster`` (SageMaker XGBoost 0.90 - 1.2; unpickling runs code: load only models
  you trust, as for any pickle),
- XGBoost's legacy binary format (1.3 - 1.7-1), JSON, or UBJSON (3.0-5 and ``sagedock``).

Several models form an ensemble: predictions are averaged, or for ``multi:softmax`` and
``binary:hinge`` (which predict classes) the most frequent class is taken.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sagedock.serving import model_files
from sagedock.toolkit.errors import UserError

logger = logging.getLogger(__name__)

ENSEMBLE_ENV = "SAGEMAKER_INFERENCE_ENSEMBLE"
ModelFormat = Literal["pkl_format", "xgb_format"]

_PICKLE_PROTOCOL_2_PLUS = b"\x80"
#: Objectives whose predictions are classes: an ensemble takes the most frequent one.
_CLASS_OBJECTIVES = frozenset({"multi:softmax", "binary:hinge"})


class FeatureCountError(ValueError):
    """The request has a number of features the model cannot take."""


@dataclass(frozen=True)
class LoadedBooster:
    name: str
    booster: Any
    format: ModelFormat


@dataclass(frozen=True)
class XGBoostModel:
    """One model, or an ensemble of models, ready to predict."""

    boosters: tuple[LoadedBooster, ...]
    objective: str
    num_class: int
    num_features: int

    @property
    def format(self) -> ModelFormat:
        return self.boosters[0].format

    def check_features(self, num_cols: int, data_format: str) -> None:
        """SageMaker's check for pickled models (native models let XGBoost decide).

        :raises FeatureCountError: CSV and recordio-protobuf must have the model's number of
            features (or one less); libsvm at most one more.
        """
        if self.format != "pkl_format":
            return
        x, y = self.num_features, num_cols
        if data_format == "libsvm":
            if y > x + 1:
                raise FeatureCountError(
                    f"Feature size of libsvm inference data {y} is larger than feature size "
                    f"of trained model {x}."
                )
        elif not (x == y or x == y + 1):
            raise FeatureCountError(
                f"Feature size of {data_format} inference data {y} is not consistent with "
                f"feature size of trained model {x}"
            )

    def predict(self, features: Any) -> np.ndarray:
        """Predictions for a dense ``float32`` matrix (``NaN`` missing) or a CSR matrix.

        Like SageMaker: all trees, ``validate_features=False`` (so a CSV request one column
        short of the model is accepted), ensembles averaged or voted.
        """
        import xgboost

        matrix = xgboost.DMatrix(features, missing=np.nan)
        outputs: list[np.ndarray] = [
            np.asarray(lb.booster.predict(matrix, validate_features=False)) for lb in self.boosters
        ]
        if len(outputs) == 1:
            return outputs[0]
        stacked = np.stack(outputs)
        if self.objective in _CLASS_OBJECTIVES:
            return _vote(stacked)
        return np.asarray(stacked.mean(axis=0))


def _vote(stacked: np.ndarray) -> np.ndarray:
    """The most frequent value along axis 0 (the smallest on ties)."""
    out = np.empty(stacked.shape[1:], dtype=stacked.dtype)
    flat = stacked.reshape(stacked.shape[0], -1)
    result = out.reshape(-1)
    for i in range(flat.shape[1]):
        values, counts = np.unique(flat[:, i], return_counts=True)
        result[i] = values[np.argmax(counts)]
    return out


def load_booster(path: Path) -> LoadedBooster:
    """One model file, in whichever format it was written.

    :raises UserError: the file is not an XGBoost model (the message names it).
    """
    import xgboost

    raw = path.read_bytes()
    if raw[:1] == _PICKLE_PROTOCOL_2_PLUS:
        try:
            with warnings.catch_warnings():
                # XGBoost warns that a pickle from another version may not load; it either
                # loads (and is checked below) or fails with its own error.
                warnings.simplefilter("ignore", UserWarning)
                booster = pickle.loads(raw)  # SageMaker 0.90-1.2 artifacts are pickles
        except Exception as exc:
            raise UserError(f"model file {path.name}: cannot be unpickled: {exc}") from None
        if not isinstance(booster, xgboost.Booster):
            raise UserError(
                f"model file {path.name}: holds a pickled {type(booster).__name__}, "
                "not an xgboost Booster"
            )
        fmt: ModelFormat = "pkl_format"
    else:
        booster = xgboost.Booster()
        try:
            booster.load_model(bytearray(raw))
        except xgboost.core.XGBoostError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise UserError(
                f"model file {path.name}: not an XGBoost model (pickle, binary, JSON or "
                f"UBJSON): {first}"
            ) from None
        fmt = "xgb_format"
    booster.set_param("nthread", "1")
    return LoadedBooster(path.name, booster, fmt)


def _learner(booster: Any) -> Mapping[str, Any]:
    config: Mapping[str, Any] = json.loads(booster.save_config())["learner"]
    return config


#: SageMaker's name for the model file (``xgboost-model-<fold>`` for cross-validation folds).
MODEL_FILE_PREFIX = "xgboost-model"
_HEAD_BYTES = 64


def is_model_file(path: Path) -> bool:
    """True when *path* is an XGBoost model :func:`load_booster` reads, judged from its name and
    first bytes (nothing is loaded): a pickled ``Booster``, JSON or UBJSON (``{"learner"``),
    the ``binf`` binary format, or any file named ``xgboost-model*`` (the legacy binary format
    of SageMaker 1.3-1.7 starts without a marker)."""
    if path.name.startswith(MODEL_FILE_PREFIX):
        return True
    try:
        with path.open("rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError:
        return False
    if head[:1] == _PICKLE_PROTOCOL_2_PLUS:
        return b"xgboost.core" in head and b"Booster" in head
    if head.startswith(b"binf"):
        return True
    head = head.lstrip()
    return head[:1] == b"{" and b"learner" in head[:32]


def is_model_dir(model_dir: Path) -> bool:
    """True when *model_dir* holds XGBoost models and nothing else :func:`load_model` would
    try to load (hidden files, archives and folders such as ``code/`` aside)."""
    files = model_files.candidates(model_dir)
    return bool(files) and all(is_model_file(p) for p in files)


def find_model_files(model_dir: Path) -> list[Path]:
    """The files :func:`load_model` loads from *model_dir*: those named ``xgboost-model*``;
    else every file that is an XGBoost model (an ensemble when several); else the one file
    that is not an archive (so that its error names it). Archives are never candidates: SDK
    local mode serves the folder that holds ``model.tar.gz`` beside what it extracted.

    :raises ModelError: nothing to load, or several files none of which is a model.
    """
    found = model_files.candidates(model_dir)
    named = [p for p in found if p.name.startswith(MODEL_FILE_PREFIX)]
    if named:
        chosen = named
    else:
        models = [p for p in found if is_model_file(p)]
        chosen = models or (found if len(found) == 1 else [])
    if not chosen:
        raise model_files.not_found(
            model_dir,
            f"{MODEL_FILE_PREFIX} (an XGBoost pickle, binary, JSON or UBJSON model)",
            among=found,
        )
    for skipped in sorted(set(model_files.visible_files(model_dir)) - set(chosen)):
        logger.info("model directory: not loading %s (not an XGBoost model)", skipped.name)
    return chosen


def ensemble_enabled(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(ENSEMBLE_ENV, "true").strip().lower() != "false"


def load_model(model_dir: Path, *, ensemble: bool | None = None) -> XGBoostModel:
    """The model (or ensemble) in *model_dir*.

    :raises ModelError: no model file, or several files none of which is a model.
    :raises UserError: a file chosen as a model is not one (the message names it).
    """
    files = find_model_files(model_dir)
    if ensemble is None:
        ensemble = ensemble_enabled()
    if not ensemble:
        files = files[:1]
    boosters = tuple(load_booster(f) for f in files)
    learner = _learner(boosters[0].booster)
    objective = str(learner["objective"]["name"])
    num_class = int(learner.get("learner_model_param", {}).get("num_class", 0) or 0)
    logger.info(
        "loaded %d model(s) (%s): objective %s, %d features",
        len(boosters),
        ", ".join(f"{b.name} [{b.format}]" for b in boosters),
        objective,
        boosters[0].booster.num_features(),
    )
    return XGBoostModel(boosters, objective, num_class, boosters[0].booster.num_features())
