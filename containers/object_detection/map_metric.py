"""PASCAL VOC mean average precision over classes, accumulated batch by batch.

The validation ``mAP`` of the Object Detection training log (§5.4). :class:`MeanAveragePrecision`
follows MXNet example/ssd's ``MApMetric`` / ``VOC07MApMetric`` (``evaluate/eval_metric.py``):

- **Inputs**, per image: detections ``[class_id, score, xmin, ymin, xmax, ymax]`` (what
  :func:`~.boxes.detect` gives; rows with a negative class are padding and dropped) and ground
  truth ``[class_id, xmin, ymin, xmax, ymax]`` with an optional 6th column ``difficult``
  (rows with a negative class are padding). Coordinates in any one unit, normally [0, 1].
- **Matching**, per image and class, greedy by score: detections are visited by descending
  score (equal scores in input order); each takes the object of its class with the highest IoU
  (the first such object on ties). When that IoU is > ``iou_threshold`` (0.5; strictly above,
  as MApMetric and the VOC python devkit) and the object is not yet taken, the detection is a
  true positive and takes it; a second detection of a taken object, or one below the
  threshold, or one in an image without objects of its class, is a false positive.
- **Difficult objects** (6th column > 0) are ignored unless ``use_difficult``: they are not
  counted as objects to find, and a detection whose best object is a difficult one counts as
  neither a true nor a false positive.
- **Per class**: all its detections over the whole pass sorted by descending score give
  ``recall_k = TP_k / n_objects`` and ``precision_k = TP_k / k``, and from them the average
  precision, either

  - ``voc07=True`` (the default), the VOC2007 11-point interpolation: ``AP = 1/11 * sum over
    t in {0, 0.1, ..., 1} of max(precision_k : recall_k >= t)`` (0 where no recall reaches
    ``t``); the points are ``k / 10`` exactly (MApMetric's ``np.arange(0, 1.1, 0.1)`` makes
    0.3, 0.6 and 0.7 a rounding error larger, which only differs when a recall is exactly one
    of those); or
  - ``voc07=False``, VOC2010+: the area under the interpolated curve, ``AP = sum over the
    recall steps of (r_k - r_{k-1}) * max(precision_j : j >= k)``.

- **Mean** over the classes that have at least one (non-difficult) object in the pass; a class
  without objects has no defined recall and is left out (its detections change nothing). When
  no class has an object the value is NaN (as MApMetric's empty mean).

Default: the training log uses the VOC07 11-point variant, because MXNet example/ssd's
``train.py`` defaults to ``--voc07 True`` (``VOC07MApMetric``) and the SageMaker algorithm is
that example (§5.1); which one SageMaker prints is not confirmed (§8 item 5).

Differences from MApMetric, on purpose: MApMetric skips images without any valid object
(their detections are not counted as false positives); here they are false positives, as in
the VOC devkit. MApMetric averages over classes that appear in detections or ground truth,
so a class with detections but no objects enters its mean with AP 0; here it is left out.

Streaming: :meth:`MeanAveragePrecision.update` matches one batch and keeps, per class, only
the scores and true-positive flags of its detections and the object count;
:meth:`MeanAveragePrecision.value` computes the mean from those.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from .boxes import box_iou

__all__ = ["MeanAveragePrecision", "average_precision", "mean_average_precision"]

Array = NDArray[np.float64]
ElevenPoints = np.arange(11, dtype=np.float64) / 10.0


def _rows(value: Any, width: int, name: str) -> Array:
    """``value`` as a float64 ``(K, width+)`` array (a tensor, array or nested list)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().to(torch.float64).numpy()
    rows = np.asarray(value, dtype=np.float64)
    if rows.size == 0:
        return np.zeros((0, width))
    if rows.ndim != 2 or rows.shape[1] < width:
        raise ValueError(f"{name}: rows of at least {width} numbers expected, got {rows.shape}")
    return rows


def _images(value: Any) -> Iterable[Any]:
    """The per-image entries of a batch: a ``(B, K, w)`` tensor/array or a sequence."""
    if isinstance(value, torch.Tensor | np.ndarray) and value.ndim == 2:
        raise ValueError("a batch is expected: (B, K, width) or a sequence of (K, width)")
    return value  # type: ignore[no-any-return]


def average_precision(recall: Array, precision: Array, voc07: bool = True) -> float:
    """AP of one class from its cumulative ``recall`` and ``precision`` (by descending score).

    ``voc07``: the 11-point interpolation; otherwise the area under the interpolated curve.
    Empty inputs (no detection) give 0.
    """
    if recall.size == 0:
        return 0.0
    # precision envelope: the best precision at this or any later (higher recall) point
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    if voc07:
        first = np.searchsorted(recall, ElevenPoints, side="left")
        reached = first < recall.size
        points = np.where(reached, envelope[np.minimum(first, recall.size - 1)], 0.0)
        return float(points.sum() / 11.0)
    steps = np.diff(recall, prepend=0.0)
    return float((steps * envelope).sum())


class MeanAveragePrecision:
    """Streaming VOC mAP: :meth:`update` per batch, then :meth:`value` (see the module doc)."""

    def __init__(
        self, iou_threshold: float = 0.5, voc07: bool = True, use_difficult: bool = False
    ) -> None:
        self.iou_threshold = iou_threshold
        self.voc07 = voc07
        self.use_difficult = use_difficult
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far (start of a validation pass)."""
        self._scores: dict[int, list[Array]] = {}
        self._true: dict[int, list[NDArray[np.bool_]]] = {}
        self._objects: dict[int, int] = {}

    def update(self, detections: Any, ground_truth: Any) -> None:
        """Add one batch: per image, detection rows ``[class_id, score, xmin, ymin, xmax,
        ymax]`` and ground-truth rows ``[class_id, xmin, ymin, xmax, ymax(, difficult)]``.

        Each may be a ``(B, K, width)`` tensor or array with negative-class padding rows, or a
        sequence of per-image ``(K_b, width)`` tensors, arrays or lists.
        """
        classes: list[NDArray[np.int64]] = []
        scores: list[Array] = []
        true: list[NDArray[np.bool_]] = []
        dets_batch = list(_images(detections))
        gts_batch = list(_images(ground_truth))
        if len(dets_batch) != len(gts_batch):
            raise ValueError(
                f"{len(dets_batch)} images of detections but {len(gts_batch)} of ground truth"
            )
        for dets_in, gts_in in zip(dets_batch, gts_batch, strict=True):
            dets = _rows(dets_in, 6, "detections")
            gts = _rows(gts_in, 5, "ground truth")
            c, s, t = self._match_image(dets[dets[:, 0] >= 0], gts[gts[:, 0] >= 0])
            classes.append(c)
            scores.append(s)
            true.append(t)
        if not classes:
            return
        all_classes = np.concatenate(classes)
        all_scores = np.concatenate(scores)
        all_true = np.concatenate(true)
        for cid in np.unique(all_classes).tolist():
            mine = all_classes == cid
            self._scores.setdefault(cid, []).append(all_scores[mine])
            self._true.setdefault(cid, []).append(all_true[mine])

    def _match_image(
        self, dets: Array, gts: Array
    ) -> tuple[NDArray[np.int64], Array, NDArray[np.bool_]]:
        """One image: (class, score, is true positive) of its counted detections, in
        descending score order; also adds the image's objects to the per-class counts."""
        gt_classes = gts[:, 0].astype(np.int64)
        difficult = (
            gts[:, 5] > 0
            if gts.shape[1] >= 6 and not self.use_difficult
            else np.zeros(gts.shape[0], dtype=bool)
        )
        counted, counts = np.unique(gt_classes[~difficult], return_counts=True)
        for cid, n in zip(counted.tolist(), counts.tolist(), strict=True):
            self._objects[cid] = self._objects.get(cid, 0) + n
        order = np.argsort(-dets[:, 1], kind="stable")
        dets = dets[order]
        det_classes = dets[:, 0].astype(np.int64)
        true = np.zeros(dets.shape[0], dtype=bool)
        keep = np.ones(dets.shape[0], dtype=bool)
        if dets.shape[0] and gts.shape[0]:
            iou = box_iou(torch.from_numpy(dets[:, 2:6]), torch.from_numpy(gts[:, 1:5])).numpy()
            iou = np.where(det_classes[:, None] == gt_classes[None, :], iou, -1.0)
            best = iou.argmax(1)
            hit = iou[np.arange(dets.shape[0]), best] > self.iou_threshold
            ignored = hit & difficult[best]
            candidate = np.flatnonzero(hit & ~ignored)
            # greedy by score: the first (best-scored) detection of each object takes it
            _, first = np.unique(best[candidate], return_index=True)
            true[candidate[first]] = True
            keep = ~ignored
        return det_classes[keep], dets[keep, 1], true[keep]

    def average_precisions(self) -> dict[int, float]:
        """AP per class, for the classes with at least one object so far."""
        aps: dict[int, float] = {}
        for cid in sorted(self._objects):
            n_objects = self._objects[cid]
            if n_objects <= 0:
                continue
            if cid in self._scores:
                scores = np.concatenate(self._scores[cid])
                true = np.concatenate(self._true[cid])
            else:
                scores, true = np.zeros(0), np.zeros(0, dtype=bool)
            order = np.argsort(-scores, kind="stable")
            tp = np.cumsum(true[order])
            ranks = np.arange(1, tp.size + 1)
            aps[cid] = average_precision(tp / n_objects, tp / ranks, self.voc07)
        return aps

    def value(self) -> float:
        """The mean AP over the classes with objects; NaN when there are none."""
        aps = self.average_precisions()
        return float(np.mean(list(aps.values()))) if aps else float("nan")


def mean_average_precision(
    detections: Sequence[Any],
    ground_truth: Sequence[Any],
    iou_threshold: float = 0.5,
    voc07: bool = True,
    use_difficult: bool = False,
) -> float:
    """One-shot :class:`MeanAveragePrecision` over all images given."""
    metric = MeanAveragePrecision(iou_threshold, voc07, use_difficult)
    metric.update(detections, ground_truth)
    return metric.value()
