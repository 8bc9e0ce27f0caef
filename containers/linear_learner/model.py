"""The Linear Learner artifact: ``model_algo-1``, a zip as SageMaker's is, and the scores of a
loaded model.

SageMaker's zip holds MXNet files; ours holds, without pickle (``.npy`` members read with
``allow_pickle=False`` and one JSON manifest):

- ``manifest.json``: ``format`` (this layout's version), ``predictor_type``, ``loss``,
  ``feature_dim``, ``num_classes``, ``threshold`` (binary), ``label_mean``/``label_scale``
  (regression), ``hyperparameters`` (the selected model's);
- ``weights.npy`` (feature_dim, outputs) and ``bias.npy`` (outputs,), float32, as trained: on
  features normalised by ``feature_mean.npy`` / ``feature_scale.npy``, predicting
  ``(label - label_mean) / label_scale`` for regression.

Loading folds the scalers into the weights once, so that a request's rows - dense or sparse -
are scored with one matrix product and no per-request normalisation.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np

from sagedock.serving.model_files import is_archive, not_found, visible_files
from sagedock.toolkit.errors import UserError

PredictorType: TypeAlias = Literal["binary_classifier", "multiclass_classifier", "regressor"]

#: The artifact's name inside model.tar.gz, as SageMaker's Linear Learner writes it.
ARTIFACT_NAME = "model_algo-1"
FORMAT = "sagedock-linear-learner/1"
#: Losses whose scores are probabilities (the others answer the raw margin).
PROBABILISTIC_LOSSES = frozenset({"logistic", "softmax_loss"})
_ARRAYS = ("weights", "bias", "feature_mean", "feature_scale")


@dataclass(frozen=True)
class LinearModel:
    """One trained linear model and what serving needs to answer as SageMaker does."""

    predictor_type: PredictorType
    loss: str
    weights: np.ndarray
    bias: np.ndarray
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    num_classes: int | None = None
    threshold: float = 0.5
    label_mean: float = 0.0
    label_scale: float = 1.0
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return int(self.weights.shape[0])

    def raw_space(self) -> tuple[np.ndarray, np.ndarray]:
        """Weights and bias acting on raw features and giving the label's scale."""
        scale = np.where(self.feature_scale == 0, 1.0, self.feature_scale).astype(np.float64)
        weights = self.weights.astype(np.float64) / scale[:, None]
        bias = self.bias.astype(np.float64) - self.feature_mean.astype(np.float64) @ weights
        if self.predictor_type == "regressor":
            weights, bias = weights * self.label_scale, bias * self.label_scale + self.label_mean
        return weights.astype(np.float32), bias.astype(np.float32)


def save_model(model: LinearModel, path: Path) -> Path:
    """Write *model* as the zip at *path* (usually ``/opt/ml/model/model_algo-1``)."""
    manifest = {
        "format": FORMAT,
        "predictor_type": model.predictor_type,
        "loss": model.loss,
        "feature_dim": model.feature_dim,
        "num_classes": model.num_classes,
        "threshold": float(model.threshold),
        "label_mean": float(model.label_mean),
        "label_scale": float(model.label_scale),
        "hyperparameters": dict(model.hyperparameters),
    }
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
        for name in _ARRAYS:
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(getattr(model, name), dtype=np.float32), allow_pickle=False)
            archive.writestr(f"{name}.npy", buffer.getvalue())
    partial.replace(path)  # never a half-written artifact under the final name
    return path


def read_model(path: Path) -> LinearModel:
    """The model in the zip at *path*; a UserError naming the file when it is not one of ours."""
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            arrays = {
                name: np.load(io.BytesIO(archive.read(f"{name}.npy")), allow_pickle=False)
                for name in _ARRAYS
            }
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise UserError(f"{path.name}: not a Linear Learner model ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{path.name}: not a Linear Learner model of format {FORMAT}")
    model = LinearModel(
        predictor_type=manifest["predictor_type"],
        loss=str(manifest["loss"]),
        num_classes=manifest.get("num_classes"),
        threshold=float(manifest.get("threshold", 0.5)),
        label_mean=float(manifest.get("label_mean", 0.0)),
        label_scale=float(manifest.get("label_scale", 1.0)),
        hyperparameters=manifest.get("hyperparameters", {}),
        **{name: arrays[name].astype(np.float32, copy=False) for name in _ARRAYS},
    )
    features, outputs = model.weights.shape if model.weights.ndim == 2 else (0, 0)
    if (
        model.weights.ndim != 2
        or model.bias.shape != (outputs,)
        or model.feature_mean.shape != (features,)
        or model.feature_scale.shape != (features,)
    ):
        raise UserError(f"{path.name}: the model's arrays do not fit together")
    return model


def find_artifact(model_dir: Path) -> Path:
    """``model_algo-1`` in *model_dir* (beside whatever SDK local mode leaves there)."""
    path = model_dir / ARTIFACT_NAME
    if path.is_file():
        return path
    others = [p for p in visible_files(model_dir) if not is_archive(p)]
    raise not_found(model_dir, ARTIFACT_NAME, among=others)


@dataclass(frozen=True)
class Scorer:
    """A loaded model, ready to score rows."""

    model: LinearModel
    weights: np.ndarray
    bias: np.ndarray

    @classmethod
    def of(cls, model: LinearModel) -> Scorer:
        weights, bias = model.raw_space()
        return cls(model, weights, bias)

    @property
    def feature_dim(self) -> int:
        return self.model.feature_dim

    def scores(self, features: Any) -> np.ndarray:
        """Per row: the probability (logistic, softmax) or the raw value (hinge, regression),
        one column for binary and regression, one per class for multiclass."""
        raw: np.ndarray = np.asarray(features @ self.weights, dtype=np.float64) + self.bias
        loss = self.model.loss
        if self.model.predictor_type == "multiclass_classifier":
            if loss == "softmax_loss":
                raw = raw - raw.max(axis=1, keepdims=True)
                exp: np.ndarray = np.exp(raw)
                return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float32)
            return raw.astype(np.float32)
        if self.model.predictor_type == "binary_classifier" and loss in PROBABILISTIC_LOSSES:
            return (0.5 * (1.0 + np.tanh(0.5 * raw))).astype(np.float32)  # a stable sigmoid
        return raw.astype(np.float32)

    def labels(self, scores: np.ndarray) -> np.ndarray | None:
        """The predicted labels for *scores* (``None`` for a regressor)."""
        if self.model.predictor_type == "regressor":
            return None
        if self.model.predictor_type == "multiclass_classifier":
            return np.asarray(scores.argmax(axis=1), dtype=np.float32)
        return np.asarray(scores[:, 0] >= self.model.threshold, dtype=np.float32)
