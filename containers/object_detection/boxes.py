"""SSD box arithmetic on torch: IoU, box encoding, anchor matching, hard negatives, NMS.

Boxes are corner boxes ``(xmin, ymin, xmax, ymax)`` in coordinates normalised to the image
(0..1), as SageMaker's Object Detection labels and answers hold them. Everything is vectorised
over boxes (and over images where a batch dimension is given); the only Python loops are over
matching *rounds* and NMS *rounds*, never over individual boxes:

- :func:`box_iou`: pairwise intersection over union, broadcast over leading dimensions; a pair
  whose union is empty has IoU 0 (as MXNet's ``CalculateOverlap``).
- :func:`encode` / :func:`decode`: MXNet's MultiBoxTarget / MultiBoxDetection box coding with
  variances ``(vx, vy, vw, vh) = (0.1, 0.1, 0.2, 0.2)``. With an anchor of centre ``(ax, ay)``
  and size ``(aw, ah)`` and a box of centre ``(gx, gy)`` and size ``(gw, gh)``::

      t = ((gx - ax) / aw / vx, (gy - ay) / ah / vy, log(gw / aw) / vw, log(gh / ah) / vh)

  and :func:`decode` is its inverse (optionally clipping to [0, 1], which MultiBoxDetection
  does by default).
- :func:`match`: MultiBoxTarget's assignment of ground truth to anchors. First the bipartite
  step: repeatedly take the (anchor, object) pair of highest IoU among the anchors and objects
  not yet taken and match them, so that every object gets its own best free anchor; then every
  anchor not matched so far takes the object of highest IoU when that IoU >= the overlap
  threshold. Class targets are 0 for background and ``class + 1`` for objects.
- :func:`hard_negatives`: the 3:1 hard negative mining of MultiBoxTarget, batched.
- :func:`nms` and :func:`detect`: class-aware greedy non-maximum suppression and
  MultiBoxDetection's post-processing into SageMaker's ``[class_id, score, xmin, ymin, xmax,
  ymax]`` rows.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "VARIANCES",
    "MatchResult",
    "box_iou",
    "center_to_corner",
    "corner_to_center",
    "decode",
    "detect",
    "encode",
    "hard_negatives",
    "match",
    "nms",
    "strip_padding",
]

VARIANCES: tuple[float, float, float, float] = (0.1, 0.1, 0.2, 0.2)
"""MultiBoxTarget's and MultiBoxDetection's box-coding variances (vx, vy, vw, vh)."""


def corner_to_center(boxes: Tensor) -> Tensor:
    """``(..., 4)`` corner boxes ``(xmin, ymin, xmax, ymax)`` as ``(cx, cy, w, h)``."""
    xmin, ymin, xmax, ymax = boxes.unbind(-1)
    return torch.stack(((xmin + xmax) / 2, (ymin + ymax) / 2, xmax - xmin, ymax - ymin), -1)


def center_to_corner(boxes: Tensor) -> Tensor:
    """``(..., 4)`` centre boxes ``(cx, cy, w, h)`` as ``(xmin, ymin, xmax, ymax)``."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), -1)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU of corner boxes ``a (..., N, 4)`` and ``b (..., M, 4)``: ``(..., N, M)``.

    Leading dimensions broadcast (anchors ``(N, 4)`` against a batch ``(B, M, 4)`` gives
    ``(B, N, M)``). Inverted boxes have area 0; a pair with an empty union has IoU 0.
    """
    lo = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    hi = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (hi - lo).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    union = area_a[..., :, None] + area_b[..., None, :] - inter
    return torch.where(union > 0, inter / torch.where(union > 0, union, 1.0), 0.0)


def _variances(variances: tuple[float, float, float, float], like: Tensor) -> Tensor:
    return torch.tensor(variances, dtype=like.dtype, device=like.device)


def encode(
    boxes: Tensor, anchors: Tensor, variances: tuple[float, float, float, float] = VARIANCES
) -> Tensor:
    """Regression targets of corner ``boxes`` against corner ``anchors`` (broadcast, ``(..., 4)``).

    ``((gx - ax) / aw / vx, (gy - ay) / ah / vy, log(gw / aw) / vw, log(gh / ah) / vh)``.
    """
    g = corner_to_center(boxes)
    a = corner_to_center(anchors)
    v = _variances(variances, g)
    xy = (g[..., :2] - a[..., :2]) / a[..., 2:] / v[:2]
    wh = torch.log(g[..., 2:] / a[..., 2:]) / v[2:]
    return torch.cat((xy, wh), -1)


def decode(
    deltas: Tensor,
    anchors: Tensor,
    variances: tuple[float, float, float, float] = VARIANCES,
    clip: bool = False,
) -> Tensor:
    """Corner boxes from regression ``deltas`` against corner ``anchors``: the inverse of
    :func:`encode`; ``clip`` clamps the corners to [0, 1] (MultiBoxDetection's ``clip=True``).
    """
    a = corner_to_center(anchors)
    v = _variances(variances, deltas)
    xy = deltas[..., :2] * v[:2] * a[..., 2:] + a[..., :2]
    wh = torch.exp(deltas[..., 2:] * v[2:]) * a[..., 2:]
    boxes = center_to_corner(torch.cat((xy, wh), -1))
    return boxes.clamp(0.0, 1.0) if clip else boxes


class MatchResult(NamedTuple):
    """What :func:`match` gives per anchor, each with the batch shape ``(B, N)`` in front."""

    classes: Tensor
    """``(B, N)`` int64: 0 for background, the matched object's class + 1 otherwise."""
    boxes: Tensor
    """``(B, N, 4)``: :func:`encode` of the matched object's box; zeros for background."""
    matched: Tensor
    """``(B, N)`` int64: index of the matched object in ``gt_boxes``, -1 for background."""
    overlaps: Tensor
    """``(B, N)``: each anchor's highest IoU with any valid object (0 where none), the value
    MultiBoxTarget compares with ``negative_mining_thresh``."""


def match(
    anchors: Tensor,
    gt_boxes: Tensor,
    gt_classes: Tensor,
    overlap_threshold: float = 0.5,
    variances: tuple[float, float, float, float] = VARIANCES,
) -> MatchResult:
    """Training targets of ``anchors (N, 4)`` for objects ``gt_boxes (B, M, 4)`` of classes
    ``gt_classes (B, M)`` (0-based; a negative class marks padding, as MXNet's ``-1`` rows).

    Bipartite step first, as MultiBoxTarget does: per image, in rounds, the free
    (anchor, object) pair of highest IoU (> 0) is matched and both leave the pool, until every
    object is matched or no free pair overlaps; one round is one vectorised step over all
    images, so there are at most M rounds. Then each remaining anchor whose best IoU is
    >= ``overlap_threshold`` takes that object. Ties go to the lowest anchor, then object,
    index. Unbatched ``gt_boxes (M, 4)`` and ``gt_classes (M,)`` give results without the batch
    dimension.
    """
    if gt_boxes.dim() == 2:
        r = match(anchors, gt_boxes[None], gt_classes[None], overlap_threshold, variances)
        return MatchResult(r.classes[0], r.boxes[0], r.matched[0], r.overlaps[0])
    batch, num_gt = gt_classes.shape
    num_anchors = anchors.shape[0]
    valid = gt_classes >= 0  # (B, M)
    iou = box_iou(anchors, gt_boxes)  # (B, N, M)
    iou = torch.where(valid[:, None, :], iou, -1.0)
    matched = torch.full((batch, num_anchors), -1, dtype=torch.long, device=anchors.device)
    if num_gt > 0 and num_anchors > 0:
        pool = iou.clone()
        rows = torch.arange(batch, device=anchors.device)
        for _ in range(min(num_gt, num_anchors)):
            best, flat = pool.view(batch, -1).max(1)
            live = best > 0
            if not bool(live.any()):
                break
            b = rows[live]
            a = flat[live] // num_gt
            g = flat[live] % num_gt
            matched[b, a] = g
            pool[b, a, :] = -1.0
            pool[b, :, g] = -1.0
        overlaps, best_gt = iou.max(2)
        take = (matched < 0) & (overlaps >= overlap_threshold)
        matched = torch.where(take, best_gt, matched)
        overlaps = overlaps.clamp(min=0)
    else:
        overlaps = torch.zeros((batch, num_anchors), dtype=anchors.dtype, device=anchors.device)
    positive = matched >= 0
    index = matched.clamp(min=0)
    if num_gt > 0:
        classes = torch.where(positive, torch.gather(gt_classes.long(), 1, index) + 1, 0)
        target = torch.gather(gt_boxes, 1, index[..., None].expand(-1, -1, 4))
        deltas = encode(target, anchors, variances)
        boxes = torch.where(positive[..., None], deltas, 0.0)
    else:
        classes = torch.zeros((batch, num_anchors), dtype=torch.long, device=anchors.device)
        boxes = torch.zeros((batch, num_anchors, 4), dtype=anchors.dtype, device=anchors.device)
    return MatchResult(classes, boxes, matched, overlaps)


def hard_negatives(
    background_loss: Tensor,
    positive: Tensor,
    ratio: float = 3.0,
    eligible: Tensor | None = None,
    min_negatives: int = 0,
) -> Tensor:
    """The negatives to train on, ``(B, N)`` bool: per image the anchors with the highest
    ``background_loss`` (e.g. ``-log softmax(logits)[..., 0]``) among those neither
    ``positive`` nor excluded by ``eligible`` (MultiBoxTarget excludes anchors whose best IoU
    is >= ``negative_mining_thresh``), ``max(int(ratio * positives), min_negatives)`` of them
    or as many as there are. Ties go to the lower anchor index.
    """
    candidate = ~positive if eligible is None else eligible & ~positive
    wanted = (positive.sum(1).to(torch.float64) * ratio).floor().long()
    wanted = wanted.clamp(min=min_negatives)
    loss = background_loss.detach().masked_fill(~candidate, float("-inf"))
    order = loss.argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return candidate & (rank < wanted[:, None])


def _greedy_keep(suppresses: Tensor) -> Tensor:
    """Greedy NMS decisions from ``suppresses (..., K, K)``: ``[i, j]`` is True where box ``i``
    ranks above box ``j`` and would suppress it. Returns ``(..., K)`` bool, kept.

    Exact greedy NMS without a loop over boxes: in each round a box is decided as *removed*
    when a kept box suppresses it, and as *kept* when no box that is kept or still undecided
    suppresses it. The first undecided box always gets decided, so rounds <= K, and in
    practice the number of rounds is the length of the longest suppression chain.
    """
    shape = suppresses.shape[:-1]
    kept = torch.zeros(shape, dtype=torch.bool, device=suppresses.device)
    removed = torch.zeros_like(kept)
    sup = suppresses.to(torch.float32)
    while True:
        undecided = ~(kept | removed)
        if not bool(undecided.any()):
            return kept
        hit = (kept.to(torch.float32)[..., None, :] @ sup)[..., 0, :] > 0
        removed = removed | (undecided & hit)
        blockers = kept | (undecided & ~hit)
        blocked = (blockers.to(torch.float32)[..., None, :] @ sup)[..., 0, :] > 0
        kept = kept | (undecided & ~hit & ~blocked)


def _nms_sorted(boxes: Tensor, classes: Tensor, valid: Tensor, iou_threshold: float) -> Tensor:
    """Kept mask ``(..., K)`` of boxes already sorted by descending score."""
    k = boxes.shape[-2]
    iou = box_iou(boxes, boxes)
    above = torch.ones((k, k), dtype=torch.bool, device=boxes.device).triu(1)
    same = classes[..., :, None] == classes[..., None, :]
    both = valid[..., :, None] & valid[..., None, :]
    return _greedy_keep((iou > iou_threshold) & same & above & both) & valid


def nms(
    boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float, topk: int = -1
) -> Tensor:
    """Class-aware greedy NMS of ``boxes (K, 4)``: the kept indices, by descending score.

    Boxes are visited by descending score (ties: lower index first); a box is dropped when a
    kept box of the same class has IoU > ``iou_threshold`` with it; boxes of different classes
    never suppress each other. ``topk > 0`` first keeps only the ``topk`` best-scored boxes,
    as MultiBoxDetection's ``nms_topk`` ("keep maximum top k detections before nms").
    Implemented as a vectorised pass over the IoU matrix masked by class equality (no
    coordinate offsets), see :func:`_greedy_keep`.
    """
    order = scores.argsort(descending=True, stable=True)
    if topk > 0:
        order = order[:topk]
    valid = torch.ones(order.shape, dtype=torch.bool, device=boxes.device)
    kept = _nms_sorted(boxes[order], classes[order], valid, iou_threshold)
    return order[kept]


def detect(
    class_probs: Tensor,
    loc_preds: Tensor,
    anchors: Tensor,
    threshold: float = 0.01,
    nms_threshold: float = 0.45,
    nms_topk: int = 400,
    clip: bool = True,
    variances: tuple[float, float, float, float] = VARIANCES,
) -> Tensor:
    """MultiBoxDetection: ``(B, K, 6)`` rows ``[class_id, score, xmin, ymin, xmax, ymax]``.

    ``class_probs (B, N, C + 1)`` are softmax probabilities with background in column 0,
    ``loc_preds (B, N, 4)`` the regression outputs for ``anchors (N, 4)``. Per anchor, the
    class is the most probable object class (0-based ``class_id``, as a float) and the score
    its probability; anchors scoring below ``threshold`` are dropped; the rest are sorted by
    score, the best ``nms_topk`` kept (all when ``nms_topk <= 0``), boxes decoded (clipped to
    [0, 1] when ``clip``), and class-aware NMS at ``nms_threshold`` applied. Kept rows come
    first, by descending score; the remaining rows up to ``K`` (``nms_topk``, or N) are -1
    padding, which :func:`strip_padding` removes (SageMaker returns no class -1 rows).
    """
    num_anchors = class_probs.shape[1]
    scores, ids = class_probs[..., 1:].max(-1)  # (B, N): best object class per anchor
    scores = torch.where(scores >= threshold, scores, -1.0)
    order = scores.argsort(dim=1, descending=True, stable=True)
    k = min(nms_topk, num_anchors) if nms_topk > 0 else num_anchors
    order = order[:, :k]
    top_scores = torch.gather(scores, 1, order)
    top_ids = torch.gather(ids, 1, order)
    valid = top_scores >= 0
    deltas = torch.gather(loc_preds, 1, order[..., None].expand(-1, -1, 4))
    boxes = decode(deltas, anchors[order], variances, clip=clip)
    kept = _nms_sorted(boxes, top_ids, valid, nms_threshold)
    rows = torch.cat((top_ids[..., None].to(boxes.dtype), top_scores[..., None], boxes), -1)
    # compact: kept rows first, in their (descending score) order, then padding
    position = torch.where(kept, 0, 1) * k + torch.arange(k, device=rows.device)
    compact = position.argsort(1)
    rows = torch.gather(rows, 1, compact[..., None].expand(-1, -1, 6))
    kept = torch.gather(kept, 1, compact)
    return torch.where(kept[..., None], rows, -1.0)


def strip_padding(detections: Tensor) -> list[Tensor]:
    """Per image, the rows of :func:`detect`'s output whose class is not -1: ``(K_b, 6)``."""
    return [image[image[:, 0] >= 0] for image in detections]
