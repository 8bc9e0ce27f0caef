"""VOC mAP (sagedock.containers.object_detection.map_metric) against hand-computed cases, a
brute-force reference written as plain loops, and scikit-learn's average_precision_score;
hypothesis properties (range, detection order, batching)."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from sagedock.containers.object_detection.map_metric import (
    MeanAveragePrecision,
    average_precision,
    mean_average_precision,
)

Row = list[float]
Image = tuple[list[Row], list[Row]]  # (detections, ground truth)


# ---------------------------------------------------------------- reference (plain loops)


def iou_ref(a: Row, b: Row) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def map_ref(images: list[Image], voc07: bool, threshold: float = 0.5) -> float:
    """VOC mAP the textbook way: per class, all detections of all images by descending score;
    each takes its best-IoU object of the class in its image; difficult objects ignored."""
    classes = {int(g[0]) for _, gts in images for g in gts}
    aps = []
    for c in sorted(classes):
        n_objects = sum(
            1 for _, gts in images for g in gts if int(g[0]) == c and not (len(g) > 5 and g[5])
        )
        if n_objects == 0:
            continue
        dets = [(d[1], k, d[2:6]) for k, (ds, _) in enumerate(images) for d in ds if d[0] == c]
        dets.sort(key=lambda t: -t[0])  # stable: image order, then input order on ties
        taken: set[tuple[int, int]] = set()
        flags: list[bool] = []
        for _, k, box in dets:
            best, best_j = -1.0, -1
            for j, g in enumerate(images[k][1]):
                if int(g[0]) == c:
                    o = iou_ref(box, g[1:5])
                    if o > best:
                        best, best_j = o, j
            if best > threshold:
                g = images[k][1][best_j]
                if len(g) > 5 and g[5]:
                    continue  # matched a difficult object: neither TP nor FP
                if (k, best_j) not in taken:
                    taken.add((k, best_j))
                    flags.append(True)
                    continue
            flags.append(False)
        recall, precision, tp = [], [], 0
        for i, f in enumerate(flags):
            tp += f
            recall.append(tp / n_objects)
            precision.append(tp / (i + 1))
        if voc07:
            ap = 0.0
            for t in range(11):
                ps = [p for r, p in zip(recall, precision, strict=True) if r >= t / 10]
                ap += (max(ps) if ps else 0.0) / 11
        else:
            ap, previous = 0.0, 0.0
            for i, r in enumerate(recall):
                ap += (r - previous) * max(precision[i:])
                previous = r
        aps.append(ap)
    return sum(aps) / len(aps) if aps else math.nan


def ours(images: list[Image], voc07: bool) -> float:
    return mean_average_precision([d for d, _ in images], [g for _, g in images], voc07=voc07)


# ---------------------------------------------------------------- hand-computed cases

A = [0.1, 0.1, 0.4, 0.4]
B = [0.5, 0.5, 0.9, 0.9]
FAR = [0.0, 0.6, 0.2, 0.9]


@pytest.mark.parametrize("voc07", [True, False])
def test_perfect_detections_give_one(voc07: bool) -> None:
    images: list[Image] = [
        ([[0, 0.9, *A], [1, 0.8, *B]], [[0, *A], [1, *B]]),
        ([[1, 0.3, *A]], [[1, *A]]),
    ]
    assert ours(images, voc07) == 1.0


@pytest.mark.parametrize("voc07", [True, False])
def test_one_false_positive_ahead_of_the_true_positive_gives_one_half(voc07: bool) -> None:
    # precision 0 at recall 0, then 1/2 at recall 1: both variants give 1/2
    images: list[Image] = [([[0, 0.9, *FAR], [0, 0.5, *A]], [[0, *A]])]
    assert ours(images, voc07) == pytest.approx(0.5)


def test_tp_fp_tp_separates_the_two_variants() -> None:
    # two objects, ranking TP, FP, TP: precision 1 at recall 1/2, 2/3 at recall 1
    images: list[Image] = [([[0, 0.9, *A], [0, 0.8, *FAR], [0, 0.7, *B]], [[0, *A], [0, *B]])]
    assert ours(images, voc07=False) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert ours(images, voc07=True) == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)  # 28/33


def test_eleven_points_are_exact_tenths() -> None:
    # recall reaches exactly 3/10 with precision 1, then nothing more: points 0, .1, .2, .3
    recall = np.array([0.1, 0.2, 0.3])
    precision = np.array([1.0, 1.0, 1.0])
    assert average_precision(recall, precision, voc07=True) == pytest.approx(4 / 11)
    assert average_precision(recall, precision, voc07=False) == pytest.approx(0.3)
    assert average_precision(np.zeros(0), np.zeros(0)) == 0.0


def test_duplicates_and_low_overlap_are_false_positives() -> None:
    shifted = [0.25, 0.1, 0.55, 0.4]  # IoU with A: 0.15 * 0.3 / (2 * 0.09 - 0.045) = 1/3
    images: list[Image] = [([[0, 0.9, *A], [0, 0.8, *A], [0, 0.7, *shifted]], [[0, *A]])]
    assert ours(images, voc07=False) == pytest.approx(1.0)  # TP first: AP 1, FPs after
    images = [([[0, 0.9, *shifted], [0, 0.8, *A], [0, 0.7, *A]], [[0, *A]])]
    assert ours(images, voc07=False) == pytest.approx(0.5)


def test_iou_exactly_at_the_threshold_is_not_a_match() -> None:
    square = [0.0, 0.0, 0.5, 0.5]
    half = [0.0, 0.0, 0.5, 0.25]  # half the square (exact in binary): IoU exactly 0.5
    assert iou_ref(half, square) == 0.5
    assert ours([([[0, 0.9, *half]], [[0, *square]])], voc07=False) == 0.0
    assert ours([([[0, 0.9, 0.0, 0.0, 0.5, 0.3]], [[0, *square]])], voc07=False) == 1.0


def test_classes_do_not_match_each_other_and_a_class_without_objects_is_left_out() -> None:
    images: list[Image] = [
        ([[1, 0.99, *A], [0, 0.5, *A], [2, 0.9, *B]], [[0, *A], [1, *B]]),
    ]
    metric = MeanAveragePrecision(voc07=False)
    metric.update([d for d, _ in images], [g for _, g in images])
    # class 0: AP 1; class 1: its only detection hits the class-0 object: AP 0; class 2 has
    # no objects: left out although it has a detection
    assert metric.average_precisions() == {0: 1.0, 1: 0.0}
    assert metric.value() == pytest.approx(0.5)


def test_detections_in_images_without_objects_are_false_positives() -> None:
    images: list[Image] = [([[0, 0.9, *A]], []), ([[0, 0.5, *A]], [[0, *A]])]
    assert ours(images, voc07=False) == pytest.approx(0.5)


def test_difficult_objects_are_ignored_unless_asked() -> None:
    images: list[Image] = [
        ([[0, 0.9, *A], [0, 0.8, *FAR], [0, 0.7, *B]], [[0, *A, 1], [0, *B, 0]]),
    ]
    # A is difficult: its detection is ignored, leaving FP then TP over one object
    assert ours(images, voc07=False) == pytest.approx(0.5)
    assert map_ref(images, voc07=False) == pytest.approx(0.5)
    both = mean_average_precision([images[0][0]], [images[0][1]], voc07=False, use_difficult=True)
    assert both == pytest.approx(0.5 + 0.5 * 2 / 3)
    # only difficult objects: the class is left out, so no class remains
    assert math.isnan(ours([([[0, 0.9, *A]], [[0, *A, 1]])], voc07=True))


def test_padded_batches_as_detect_gives_them() -> None:
    dets = torch.full((2, 4, 6), -1.0)
    dets[0, 0] = torch.tensor([0, 0.9, *A])
    dets[1, 0] = torch.tensor([1, 0.8, *FAR])
    dets[1, 1] = torch.tensor([1, 0.7, *B])
    labels = torch.full((2, 3, 5), -1.0)
    labels[0, 0] = torch.tensor([0, *A])
    labels[1, 0] = torch.tensor([1, *B])
    metric = MeanAveragePrecision(voc07=False)
    metric.update(dets, labels)
    assert metric.average_precisions() == {0: 1.0, 1: pytest.approx(0.5)}
    metric.reset()
    assert math.isnan(metric.value())
    with pytest.raises(ValueError, match="images"):
        metric.update(dets, labels[:1])
    with pytest.raises(ValueError, match="at least 6"):
        metric.update([[[0, 0.9, 0.1]]], [[]])


# ---------------------------------------------------------------- random cases


def random_images(rng: random.Random, n: int, num_classes: int = 3) -> list[Image]:
    images: list[Image] = []
    scores = rng.sample(range(1, 100_000), 10 * n)  # distinct scores
    for _ in range(n):
        gts: list[Row] = []
        for _ in range(rng.randint(0, 4)):
            x, y = rng.uniform(0, 0.7), rng.uniform(0, 0.7)
            w, h = rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3)
            gts.append([rng.randrange(num_classes), x, y, x + w, y + h, float(rng.random() < 0.2)])
        dets: list[Row] = []
        for _ in range(rng.randint(0, 8)):
            if gts and rng.random() < 0.7:
                g = rng.choice(gts)
                jitter = [rng.uniform(-0.02, 0.02) for _ in range(4)]
                box = [g[1 + k] + jitter[k] for k in range(4)]
                box[2], box[3] = max(box[2], box[0] + 0.01), max(box[3], box[1] + 0.01)
                cls = g[0] if rng.random() < 0.9 else rng.randrange(num_classes)
            else:
                x, y = rng.uniform(0, 0.8), rng.uniform(0, 0.8)
                box = [x, y, x + rng.uniform(0.02, 0.2), y + rng.uniform(0.02, 0.2)]
                cls = rng.randrange(num_classes)
            dets.append([cls, scores.pop() / 100_000, *box])
        images.append((dets, gts))
    return images


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("voc07", [True, False])
def test_matches_the_brute_force_reference(seed: int, voc07: bool) -> None:
    images = random_images(random.Random(seed), n=6)
    expected = map_ref(images, voc07)
    got = ours(images, voc07)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(40))
def test_single_class_area_ap_against_sklearn(seed: int) -> None:
    """sklearn's ``average_precision_score`` is ``sum_k (R_k - R_k-1) * P_k`` over the ranking,
    with R over the positives *among the detections* and no interpolation. It equals the VOC
    area AP when (a) every object is detected (so that its positives are all the objects),
    (b) scores are distinct (sklearn merges tied scores into one threshold), and (c) the
    precision at successive true positives never rises, so that the VOC envelope
    ``max(P_j : j >= k)`` is ``P_k`` itself. Otherwise VOC's interpolated AP is >= sklearn's
    (the envelope only raises precisions)."""
    rng = random.Random(seed)
    n_objects = rng.randint(1, 9)
    ranking: list[int] = []  # 1: true positive, 0: false positive, best score first
    if seed % 2:  # any order
        ranking = [1] * n_objects + [0] * rng.randint(0, 8)
        rng.shuffle(ranking)
    else:  # a true positive only where it does not raise the precision: (c) holds
        last = 1.0
        while sum(ranking) < n_objects:
            tp, k = sum(ranking), len(ranking)
            if (tp + 1) / (k + 1) <= last and rng.random() < 0.6:
                ranking.append(1)
                last = (tp + 1) / (k + 1)
            else:
                ranking.append(0)
        ranking += [0] * rng.randint(0, 3)
    n_images = (n_objects + 2) // 3
    images: list[Image] = [([], []) for _ in range(n_images)]
    for j in range(n_objects):  # 3 disjoint objects per image
        k, i = divmod(j, 3)
        images[k][1].append([0, 0.1 * i, 0.1 * k, 0.1 * i + 0.08, 0.1 * k + 0.08])
    objects = [(k, g) for k, (_, gts) in enumerate(images) for g in gts]
    rng.shuffle(objects)
    y_score = [1.0 - r / (len(ranking) + 1) for r in range(len(ranking))]  # distinct: (b)
    for label, score in zip(ranking, y_score, strict=True):
        if label:  # each object found exactly once: (a)
            k, g = objects.pop()
            images[k][0].append([0, score, *g[1:5]])
        else:  # a miss, far from every object
            x = rng.uniform(0.5, 0.9)
            images[rng.randrange(n_images)][0].append([0, score, x, 0.6, x + 0.05, 0.65])
    for dets, _ in images:
        rng.shuffle(dets)
    got = ours(images, voc07=False)
    sk = float(average_precision_score(ranking, y_score))
    tp_precisions = [sum(ranking[: i + 1]) / (i + 1) for i, t in enumerate(ranking) if t]
    if all(a >= b for a, b in itertools.pairwise(tp_precisions)):
        assert got == pytest.approx(sk, abs=1e-12)
    else:
        assert seed % 2
        assert got > sk


Images = st.integers(0, 2**32 - 1).map(lambda s: random_images(random.Random(s), n=5))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images=Images, voc07=st.booleans(), seed=st.integers(0, 1000), split=st.integers(0, 5))
def test_map_is_in_unit_range_and_ignores_detection_order_and_batching(
    images: list[Image], voc07: bool, seed: int, split: int
) -> None:
    value = ours(images, voc07)
    if math.isnan(value):  # no class with a (non-difficult) object
        assert all(all(g[5] for g in gts) for _, gts in images)
        return
    assert 0.0 <= value <= 1.0
    rng = random.Random(seed)
    shuffled = [(rng.sample(d, len(d)), g) for d, g in images]
    assert ours(shuffled, voc07) == pytest.approx(value, abs=1e-12)
    metric = MeanAveragePrecision(voc07=voc07)  # streaming: two batches, then value
    metric.update([d for d, _ in shuffled[:split]], [g for _, g in shuffled[:split]])
    metric.update([d for d, _ in shuffled[split:]], [g for _, g in shuffled[split:]])
    assert metric.value() == pytest.approx(value, abs=1e-12)
