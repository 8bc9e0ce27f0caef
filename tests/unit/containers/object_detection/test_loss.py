"""The SSD loss (sagedock.containers.object_detection.loss) against a reference written as plain
per-anchor Python loops (its own IoU, bipartite-then-threshold matching, box coding,
log-softmax, hard negative mining and smooth-L1), on small random batches; gradients; images
and batches without positives."""

from __future__ import annotations

import math

import pytest
import torch

from sagedock.containers.object_detection.loss import multibox_loss

from .references import Box, encode_ref, iou_ref

# ---------------------------------------------------------------- reference (plain loops)


def match_ref(anchors: list[Box], gts: list[Box], threshold: float) -> list[int]:
    """Per anchor, the matched object's index or -1 (MultiBoxTarget)."""
    n, m = len(anchors), len(gts)
    iou = [[iou_ref(anchors[i], gts[j]) for j in range(m)] for i in range(n)]
    matched = [-1] * n
    free_a, free_g = set(range(n)), set(range(m))
    while free_g:
        best, pair = 0.0, None
        for i in range(n):  # lowest anchor, then object, on ties
            for j in range(m):
                if i in free_a and j in free_g and iou[i][j] > best:
                    best, pair = iou[i][j], (i, j)
        if pair is None:
            break
        matched[pair[0]] = pair[1]
        free_a.discard(pair[0])
        free_g.discard(pair[1])
    for i in range(n):
        if matched[i] < 0 and m:
            j = max(range(m), key=lambda k: (iou[i][k], -k))
            if iou[i][j] >= threshold:
                matched[i] = j
    return matched


def huber(x: float) -> float:
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


def loss_ref(
    scores: list[list[list[float]]],
    offsets: list[list[Box]],
    anchors: list[Box],
    gts: list[list[tuple[int, Box]]],
    threshold: float = 0.5,
    ratio: float = 3.0,
) -> tuple[float, float]:
    """(cross_entropy, smooth_l1), both over the batch's positive count (at least 1)."""
    ce_sum, l1_sum, positives = 0.0, 0.0, 0
    for b, objects in enumerate(gts):
        boxes = [box for _, box in objects]
        matched = match_ref(anchors, boxes, threshold)
        nll: list[list[float]] = []
        for i in range(len(anchors)):
            row = scores[b][i]
            top = max(row)
            lse = top + math.log(sum(math.exp(v - top) for v in row))
            nll.append([lse - v for v in row])
        pos = [i for i in range(len(anchors)) if matched[i] >= 0]
        positives += len(pos)
        for i in pos:
            ce_sum += nll[i][objects[matched[i]][0] + 1]
            target = encode_ref(boxes[matched[i]], anchors[i])
            l1_sum += sum(huber(offsets[b][i][k] - target[k]) for k in range(4))
        candidates = [i for i in range(len(anchors)) if matched[i] < 0]
        candidates.sort(key=lambda i: (-nll[i][0], i))
        for i in candidates[: math.floor(ratio * len(pos))]:
            ce_sum += nll[i][0]
    d = max(positives, 1)
    return ce_sum / d, l1_sum / d


# ---------------------------------------------------------------- cases


def random_box(g: torch.Generator, lo: float = 0.05, hi: float = 0.5) -> Box:
    w, h = (lo + (hi - lo) * torch.rand(2, generator=g)).tolist()
    x, y = (torch.rand(2, generator=g) * torch.tensor([1 - w, 1 - h])).tolist()
    return [x, y, x + w, y + h]


def random_case(
    seed: int, batch: int = 3, anchors: int = 30, max_objects: int = 4, num_classes: int = 3
) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    anc = torch.tensor([random_box(g, 0.1, 0.6) for _ in range(anchors)], dtype=torch.float64)
    gt_boxes = torch.zeros((batch, max_objects, 4), dtype=torch.float64)
    gt_classes = torch.zeros((batch, max_objects), dtype=torch.long)
    gt_valid = torch.zeros((batch, max_objects), dtype=torch.bool)
    for b in range(batch):
        count = int(torch.randint(0, max_objects + 1, (1,), generator=g))
        for j in range(count):
            # near an anchor, so that some anchors pass the threshold
            a = anc[int(torch.randint(0, anchors, (1,), generator=g))]
            jitter = (torch.rand(4, generator=g, dtype=torch.float64) - 0.5) * 0.1
            box = a + jitter
            box = torch.stack((box[:2].clamp(0, 0.9), box[2:]))
            box[1] = torch.maximum(box[1], box[0] + 0.05)
            gt_boxes[b, j] = box.reshape(4)
            gt_classes[b, j] = int(torch.randint(0, num_classes, (1,), generator=g))
            gt_valid[b, j] = True
        # padding rows hold garbage, which the mask must hide
        gt_boxes[b, count:] = torch.rand((max_objects - count, 4), generator=g).sort(-1).values
        gt_classes[b, count:] = 7
    scores = torch.randn((batch, anchors, num_classes + 1), generator=g, dtype=torch.float64)
    offsets = torch.randn((batch, anchors, 4), generator=g, dtype=torch.float64)
    return scores, offsets, anc, gt_boxes, gt_classes, gt_valid


def reference_of(case: tuple[torch.Tensor, ...], **kw: float) -> tuple[float, float]:
    scores, offsets, anc, gt_boxes, gt_classes, gt_valid = case
    gts = [
        [
            (int(gt_classes[b, j]), gt_boxes[b, j].tolist())
            for j in range(gt_boxes.shape[1])
            if bool(gt_valid[b, j])
        ]
        for b in range(gt_boxes.shape[0])
    ]
    return loss_ref(scores.tolist(), offsets.tolist(), anc.tolist(), gts, **kw)


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("seed", range(12))
def test_loss_matches_the_per_anchor_loop_reference(seed: int) -> None:
    case = random_case(seed)
    got = multibox_loss(*case)
    ce, l1 = reference_of(case)
    assert got.cross_entropy.item() == pytest.approx(ce, rel=1e-9, abs=1e-12)
    assert got.smooth_l1.item() == pytest.approx(l1, rel=1e-9, abs=1e-12)
    assert got.total.item() == pytest.approx(ce + l1, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("threshold", "ratio"), [(0.3, 3.0), (0.7, 1.5), (0.5, 0.0)])
def test_threshold_and_ratio_are_honoured(threshold: float, ratio: float) -> None:
    case = random_case(100 + int(10 * threshold))
    got = multibox_loss(*case, overlap_threshold=threshold, negative_ratio=ratio)
    ce, l1 = reference_of(case, threshold=threshold, ratio=ratio)
    assert got.cross_entropy.item() == pytest.approx(ce, rel=1e-9, abs=1e-12)
    assert got.smooth_l1.item() == pytest.approx(l1, rel=1e-9, abs=1e-12)


def test_three_negatives_per_positive_enter_the_cross_entropy() -> None:
    # one object equal to anchor 0: one positive, so 3 negatives, the 3 most confident
    # non-background anchors (the others have a huge background logit)
    anchors = torch.tensor(
        [[0.1, 0.1, 0.3, 0.3]] + [[0.6, 0.6, 0.7 + 0.01 * i, 0.9] for i in range(9)]
    )
    gt_boxes = torch.tensor([[[0.1, 0.1, 0.3, 0.3]]])
    scores = torch.zeros((1, 10, 2))
    scores[0, :, 0] = 50.0
    scores[0, 0] = torch.tensor([0.0, 0.0])  # positive anchor, object logit 0: nll log 2
    for i, v in zip((4, 7, 2), (5.0, 4.0, 3.0), strict=True):
        scores[0, i] = torch.tensor([0.0, v])  # the hard negatives
    out = multibox_loss(
        scores, torch.zeros((1, 10, 4)), anchors, gt_boxes, torch.zeros((1, 1)), torch.ones(1, 1)
    )
    expected = math.log(2) + sum(math.log1p(math.exp(v)) for v in (5.0, 4.0, 3.0))
    assert out.num_positives == 1
    assert out.cross_entropy.item() == pytest.approx(expected, rel=1e-5)
    assert out.smooth_l1.item() == pytest.approx(0.0, abs=1e-6)  # target deltas are all 0


def test_smooth_l1_is_huber_with_beta_one() -> None:
    anchors = torch.tensor([[0.1, 0.1, 0.3, 0.3], [0.6, 0.6, 0.9, 0.9]])
    gt_boxes = torch.tensor([[[0.1, 0.1, 0.3, 0.3]]])
    offsets = torch.zeros((1, 2, 4))
    offsets[0, 0] = torch.tensor([0.5, -2.0, 0.0, 3.0])
    offsets[0, 1] = torch.tensor([9.0, 9.0, 9.0, 9.0])  # background: no box loss
    out = multibox_loss(
        torch.zeros((1, 2, 2)), offsets, anchors, gt_boxes, torch.zeros((1, 1)), torch.ones(1, 1)
    )
    assert out.smooth_l1.item() == pytest.approx(0.125 + 1.5 + 0.0 + 2.5)


def test_gradients_exist_are_finite_and_match_finite_differences() -> None:
    scores, offsets, anc, gt_boxes, gt_classes, gt_valid = random_case(3, batch=2, anchors=12)
    scores.requires_grad_(True)
    offsets.requires_grad_(True)
    out = multibox_loss(scores, offsets, anc, gt_boxes, gt_classes, gt_valid)
    assert out.num_positives > 0
    out.total.backward()
    assert scores.grad is not None and offsets.grad is not None
    assert bool(torch.isfinite(scores.grad).all()) and bool(torch.isfinite(offsets.grad).all())
    assert float(scores.grad.abs().sum()) > 0 and float(offsets.grad.abs().sum()) > 0

    def total(s: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        return multibox_loss(s, o, anc, gt_boxes, gt_classes, gt_valid).total

    s = scores.detach().clone().requires_grad_(True)
    o = offsets.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(total, (s, o), eps=1e-6, atol=1e-5, fast_mode=True)


def test_float32_network_outputs_with_float32_anchors() -> None:
    scores, offsets, anc, gt_boxes, gt_classes, gt_valid = random_case(5)
    out = multibox_loss(
        scores.float().requires_grad_(True),
        offsets.float(),
        anc.float(),
        gt_boxes.float(),
        gt_classes,
        gt_valid,
    )
    ce, l1 = reference_of(random_case(5))
    assert out.total.dtype == torch.float32
    assert out.total.item() == pytest.approx(ce + l1, rel=1e-4)


def test_images_without_positives_add_nothing() -> None:
    case = random_case(7, batch=3)
    scores, offsets, anc, gt_boxes, gt_classes, gt_valid = case
    gt_valid = gt_valid.clone()
    gt_valid[1] = False  # image 1: no objects at all
    one = multibox_loss(scores[:1], offsets[:1], anc, gt_boxes[:1], gt_classes[:1], gt_valid[:1])
    both = multibox_loss(scores[:2], offsets[:2], anc, gt_boxes[:2], gt_classes[:2], gt_valid[:2])
    assert both.num_positives == one.num_positives
    assert both.total.item() == pytest.approx(one.total.item(), rel=1e-12)


def test_a_batch_without_positives_gives_zero_loss_and_zero_gradients() -> None:
    scores, offsets, anc, gt_boxes, gt_classes, _ = random_case(9)
    scores.requires_grad_(True)
    offsets.requires_grad_(True)
    none = torch.zeros(gt_classes.shape, dtype=torch.bool)
    out = multibox_loss(scores, offsets, anc, gt_boxes, gt_classes, none)
    assert out.num_positives == 0
    assert out.total.item() == 0.0 and out.cross_entropy.item() == 0.0
    assert out.smooth_l1.item() == 0.0
    out.total.backward()
    assert scores.grad is not None and offsets.grad is not None
    assert not bool(scores.grad.any()) and not bool(offsets.grad.any())
    assert bool(torch.isfinite(scores.grad).all())


def test_objects_that_overlap_no_anchor_give_no_positive() -> None:
    # every anchor in the left half, the object in the far right corner: IoU 0 everywhere
    anchors = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.1, 0.1, 0.4, 0.4]])
    gt_boxes = torch.tensor([[[0.9, 0.9, 1.0, 1.0]]])
    out = multibox_loss(
        torch.randn(1, 2, 3),
        torch.randn(1, 2, 4),
        anchors,
        gt_boxes,
        torch.ones((1, 1)),
        torch.ones((1, 1), dtype=torch.bool),
    )
    assert out.num_positives == 0
    assert out.total.item() == 0.0


def test_zero_object_slots() -> None:
    scores, offsets, anc, *_ = random_case(11)
    b = scores.shape[0]
    out = multibox_loss(
        scores,
        offsets,
        anc,
        torch.zeros((b, 0, 4), dtype=torch.float64),
        torch.zeros((b, 0), dtype=torch.long),
        torch.zeros((b, 0), dtype=torch.bool),
    )
    assert out.num_positives == 0 and out.total.item() == 0.0


def test_bad_shapes_are_refused() -> None:
    scores, offsets, anc, gt_boxes, gt_classes, gt_valid = random_case(1)
    with pytest.raises(ValueError, match="offsets"):
        multibox_loss(scores, offsets[:, :-1], anc, gt_boxes, gt_classes, gt_valid)
    with pytest.raises(ValueError, match="anchors"):
        multibox_loss(scores, offsets, anc[:-1], gt_boxes, gt_classes, gt_valid)
