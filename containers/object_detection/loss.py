"""The SSD training loss (MultiBoxTarget targets, softmax cross-entropy plus smooth-L1), batched.

:func:`multibox_loss` takes a batch of network outputs and the batch's ground truth, padded per
image to ``M`` objects with a validity mask (as a data loader gives it), and returns the loss
and its two parts (the ``train cross_entropy`` and ``train smooth_l1`` of the training log,
§5.4). Per image (all images in one vectorised pass):

1. :func:`~.boxes.match` assigns objects to anchors (bipartite step, then IoU >=
   ``overlap_threshold``), giving class targets (0 background, ``class + 1`` objects) and the
   encoded box targets (variances 0.1, 0.1, 0.2, 0.2). Anchors with a matched object are the
   positives, ``P`` of them in the whole batch.
2. :func:`~.boxes.hard_negatives` picks, per image, the ``floor(negative_ratio * positives of
   that image)`` unmatched anchors with the highest background loss ``-log softmax(s)[0]``
   (3:1 at the default ratio; ties to the lower anchor index). The choice is not
   differentiated through.
3. ``cross_entropy = sum over positives and chosen negatives of -log softmax(s)[target] / P``
   and ``smooth_l1 = sum over positives and the 4 coordinates of huber(offset - target) / P``
   with ``huber(x) = x**2 / 2`` for ``|x| < 1`` and ``|x| - 1/2`` otherwise (MXNet's
   ``smooth_l1`` with ``scalar=1``, torch's ``smooth_l1_loss`` with ``beta=1``); ``total =
   cross_entropy + smooth_l1``. Background anchors contribute no box loss.

Normalisation by the batch's positive count ``P`` follows the SSD paper (``L = (L_conf +
L_loc) / N``). MXNet's example/ssd normalises differently (its ``SoftmaxOutput(...,
normalization="valid")`` divides the classification part by the number of anchors it trains on,
positives plus negatives); this is the documented choice here.

Zero positives: an image without any matched anchor (no valid objects, or none overlapping)
gets no hard negatives either (``3 * 0 = 0``), so it adds nothing to either sum. When the
whole batch has no positive, the divisor is ``max(P, 1) = 1`` and both parts are exactly 0,
still connected to the graph: ``backward()`` works and gives zero gradients, never NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional

from .boxes import VARIANCES, hard_negatives, match

__all__ = ["MultiBoxLoss", "multibox_loss"]


class MultiBoxLoss(NamedTuple):
    """What :func:`multibox_loss` gives: three scalar tensors."""

    total: Tensor
    """``cross_entropy + smooth_l1``: what training differentiates."""
    cross_entropy: Tensor
    """The classification part (positives and hard negatives), over the positive count."""
    smooth_l1: Tensor
    """The box regression part (positives only), over the positive count."""
    num_positives: int
    """``P``: the matched anchors in the batch (the divisor is ``max(P, 1)``)."""


def multibox_loss(
    scores: Tensor,
    offsets: Tensor,
    anchors: Tensor,
    gt_boxes: Tensor,
    gt_classes: Tensor,
    gt_valid: Tensor,
    overlap_threshold: float = 0.5,
    negative_ratio: float = 3.0,
    variances: tuple[float, float, float, float] = VARIANCES,
) -> MultiBoxLoss:
    """SSD loss of a batch of ``B`` images with ``N`` anchors and ``C`` object classes.

    :param scores: ``(B, N, C + 1)`` class logits, background in column 0.
    :param offsets: ``(B, N, 4)`` box regression outputs (the :func:`~.boxes.encode` coding).
    :param anchors: ``(N, 4)`` corner anchors, normalised coordinates.
    :param gt_boxes: ``(B, M, 4)`` corner boxes of the objects, padded per image to ``M``.
    :param gt_classes: ``(B, M)`` 0-based object classes (padding rows: anything).
    :param gt_valid: ``(B, M)`` bool, True for real objects, False for padding.
    :param overlap_threshold: MultiBoxTarget's ``overlap_threshold``.
    :param negative_ratio: hard negatives per positive (MultiBoxTarget's
        ``negative_mining_ratio``).
    """
    if scores.dim() != 3 or offsets.shape != (*scores.shape[:2], 4):
        raise ValueError(
            f"scores (B, N, C + 1) and offsets (B, N, 4) expected, got {tuple(scores.shape)} "
            f"and {tuple(offsets.shape)}"
        )
    if anchors.shape != (scores.shape[1], 4):
        raise ValueError(f"anchors ({scores.shape[1]}, 4) expected, got {tuple(anchors.shape)}")
    classes = torch.where(gt_valid.bool(), gt_classes.long(), -1)
    with torch.no_grad():
        target = match(anchors.detach(), gt_boxes.detach(), classes, overlap_threshold, variances)
    positive = target.matched >= 0  # (B, N)
    log_probs = functional.log_softmax(scores, dim=-1)
    negative = hard_negatives(-log_probs[..., 0], positive, negative_ratio)
    picked = positive | negative
    nll = -log_probs.gather(-1, target.classes[..., None]).squeeze(-1)  # (B, N)
    num_positives = int(positive.sum())
    divisor = float(max(num_positives, 1))
    cross_entropy = torch.where(picked, nll, 0.0).sum() / divisor
    huber = functional.smooth_l1_loss(
        offsets, target.boxes.to(offsets.dtype), reduction="none", beta=1.0
    ).sum(-1)
    smooth_l1 = torch.where(positive, huber, 0.0).sum() / divisor
    return MultiBoxLoss(cross_entropy + smooth_l1, cross_entropy, smooth_l1, num_positives)
