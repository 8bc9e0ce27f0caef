"""Choosing among the parallel models, and the binary classifier's decision threshold.

For a binary classifier every model's threshold is calibrated on a sample (validation rows,
else training rows; ``num_calibration_samples`` of them) to maximise
``binary_classifier_model_selection_criteria``, and the model whose calibrated value is best
wins:

- ``accuracy``, ``f_beta``: the threshold that maximises it;
- ``precision_at_target_recall``: the highest precision among thresholds whose recall is at
  least ``target_recall`` (``recall_at_target_precision`` the other way round);
- ``loss_function``: no calibration (0.5 on probabilities, 0 on hinge margins); the smallest
  objective loss wins.

A threshold ``t`` labels a row positive when its score is ``>= t`` (what serving does). The
candidates are the sample's own scores, all models at once: sort each model's scores, and the
confusion counts of every cut are cumulative sums.

Multiclass classifiers and regressors: the smallest objective loss on the selection data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: The criteria the SDK accepts besides SageMaker's own names, and what they mean.
CRITERION_ALIASES = {"f1": "f_beta", "cross_entropy_loss": "loss_function"}


@dataclass(frozen=True)
class Calibration:
    """Per model: the chosen threshold and the criterion's value there (higher is better)."""

    threshold: torch.Tensor
    value: torch.Tensor


def default_threshold(loss: str) -> float:
    """The uncalibrated cut: probability 0.5 (logistic) or margin 0 (hinge)."""
    return 0.5 if loss == "logistic" else 0.0


def calibrate(
    scores: torch.Tensor,
    label: torch.Tensor,
    criterion: str,
    *,
    beta: float = 1.0,
    target_recall: float = 0.8,
    target_precision: float = 0.8,
) -> Calibration:
    """The best threshold of each model for *criterion*.

    :param scores: (models, rows) binary scores (probabilities or margins).
    :param label: (rows,) 0/1 labels.
    """
    criterion = CRITERION_ALIASES.get(criterion, criterion)
    rows = scores.shape[1]
    order = torch.argsort(scores, dim=1, descending=True)
    ordered = torch.gather(scores, 1, order)
    y = label.to(scores.dtype)[order]
    positives = float(label.sum())
    negatives = rows - positives
    # cut k (k = 1..rows): the top k rows predicted positive
    tp = torch.cumsum(y, dim=1).double()
    predicted = torch.arange(1, rows + 1, device=scores.device, dtype=torch.float64)
    fp = predicted - tp
    # a cut inside a run of equal scores is no threshold: keep the last row of each run
    distinct = torch.ones_like(ordered, dtype=torch.bool)
    distinct[:, :-1] = ordered[:, :-1] != ordered[:, 1:]
    precision = tp / predicted
    recall = tp / positives if positives else torch.zeros_like(tp)
    if criterion == "accuracy":
        value = (tp + (negatives - fp)) / rows
    elif criterion == "f_beta":
        b2 = beta * beta
        denominator = b2 * precision + recall
        value = torch.where(
            denominator > 0, (1 + b2) * precision * recall / denominator, torch.zeros_like(tp)
        )
    elif criterion == "precision_at_target_recall":
        value = torch.where(recall >= target_recall, precision, torch.full_like(tp, -1.0))
    elif criterion == "recall_at_target_precision":
        value = torch.where(precision >= target_precision, recall, torch.full_like(tp, -1.0))
    else:
        raise ValueError(f"no calibration for criterion {criterion!r}")
    value = torch.where(distinct, value, torch.full_like(value, -2.0))
    best_value, best_cut = value.max(dim=1)
    threshold = ordered.gather(1, best_cut.view(-1, 1)).squeeze(1)
    if criterion == "accuracy":
        # predicting every row negative is a cut too (a threshold above every score)
        none_positive = negatives / rows
        above = ordered[:, 0] + ordered[:, 0].abs().clamp(min=1.0) * 1e-6
        use_none = best_value < none_positive
        threshold = torch.where(use_none, above, threshold)
        best_value = torch.where(use_none, torch.full_like(best_value, none_positive), best_value)
    return Calibration(threshold.float(), best_value.float())


def best_index(values: torch.Tensor, *, larger_is_better: bool) -> int:
    """The model with the best value (the first among equals); NaN never wins."""
    finite = torch.where(
        torch.isfinite(values),
        values,
        torch.full_like(values, -torch.inf if larger_is_better else torch.inf),
    )
    index = torch.argmax(finite) if larger_is_better else torch.argmin(finite)
    return int(index.item())
