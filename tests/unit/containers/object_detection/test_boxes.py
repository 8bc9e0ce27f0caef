"""SSD box arithmetic (sagedock.containers.object_detection.boxes) against brute-force
references written as plain Python loops: IoU, the MultiBoxTarget coding and matching
(bipartite step, then the overlap threshold), hard negative mining, greedy class-aware NMS
and MultiBoxDetection; hypothesis properties on random boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagedock.containers.object_detection.boxes import (
    VARIANCES,
    box_iou,
    center_to_corner,
    corner_to_center,
    decode,
    detect,
    encode,
    hard_negatives,
    match,
    nms,
    strip_padding,
)

from .references import Box, encode_ref, iou_ref

# ---------------------------------------------------------------- references (plain loops)


def decode_ref(t: Box, a: Box, clip: bool) -> Box:
    ax, ay, aw, ah = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2, a[2] - a[0], a[3] - a[1]
    vx, vy, vw, vh = VARIANCES
    x, y = t[0] * vx * aw + ax, t[1] * vy * ah + ay
    w, h = math.exp(t[2] * vw) * aw, math.exp(t[3] * vh) * ah
    box = [x - w / 2, y - h / 2, x + w / 2, y + h / 2]
    return [min(1.0, max(0.0, v)) for v in box] if clip else box


def match_ref(anchors: list[Box], gts: list[Box], classes: list[int], thr: float) -> list[int]:
    """Per anchor, the matched object index or -1 (MultiBoxTarget's two steps)."""
    matched = [-1] * len(anchors)
    free_a = set(range(len(anchors)))
    free_g = {g for g, c in enumerate(classes) if c >= 0}
    while free_g and free_a:
        best, pair = 0.0, None
        for a in range(len(anchors)):  # anchor-major: ties go to the lowest (anchor, object)
            for g in range(len(gts)):
                if a in free_a and g in free_g:
                    v = iou_ref(anchors[a], gts[g])
                    if v > best:
                        best, pair = v, (a, g)
        if pair is None:
            break
        matched[pair[0]] = pair[1]
        free_a.discard(pair[0])
        free_g.discard(pair[1])
    for a in range(len(anchors)):
        if matched[a] >= 0:
            continue
        best, arg = -1.0, -1
        for g in range(len(gts)):
            if classes[g] >= 0:
                v = iou_ref(anchors[a], gts[g])
                if v > best:
                    best, arg = v, g
        if arg >= 0 and best >= thr:
            matched[a] = arg
    return matched


def nms_ref(
    boxes: list[Box], scores: list[float], classes: list[int], thr: float, topk: int
) -> list[int]:
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])  # stable: ties by index
    if topk > 0:
        order = order[:topk]
    kept: list[int] = []
    for i in order:
        if all(classes[k] != classes[i] or iou_ref(boxes[k], boxes[i]) <= thr for k in kept):
            kept.append(i)
    return kept


def detect_ref(
    probs: list[list[float]],
    locs: list[Box],
    anchors: list[Box],
    threshold: float,
    nms_thr: float,
    topk: int,
) -> list[list[float]]:
    cand = []
    for i, p in enumerate(probs):
        best, cls = -1.0, -1
        for c in range(1, len(p)):
            if p[c] > best:
                best, cls = p[c], c - 1
        if best >= threshold:
            cand.append((i, cls, best))
    cand.sort(key=lambda t: -t[2])
    if topk > 0:
        cand = cand[:topk]
    rows: list[list[float]] = []
    for i, cls, score in cand:
        box = decode_ref(locs[i], anchors[i], clip=True)
        if all(r[0] != cls or iou_ref(r[2:], box) <= nms_thr for r in rows):
            rows.append([float(cls), score, *box])
    return rows


# ---------------------------------------------------------------- strategies

unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def boxes_st(
    draw: st.DrawFn, min_size: int = 0, max_size: int = 12, min_side: float = 0.0
) -> list[Box]:
    n = draw(st.integers(min_size, max_size))
    out = []
    for _ in range(n):
        x0, x1 = sorted((draw(unit), draw(unit)))
        y0, y1 = sorted((draw(unit), draw(unit)))
        if min_side > 0:
            x1 = max(x1, x0 + min_side)
            y1 = max(y1, y0 + min_side)
        out.append([x0, y0, x1, y1])
    return out


def t(rows: list[Box]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 4)


# ---------------------------------------------------------------- IoU and coding


def test_iou_of_known_pairs() -> None:
    a = t([[0, 0, 1, 1], [0, 0, 0.5, 0.5], [0.2, 0.2, 0.2, 0.6]])
    b = t([[0, 0, 1, 1], [0.5, 0.5, 1, 1], [0.25, 0, 0.75, 1]])
    expected = [[iou_ref(x, y) for y in b.tolist()] for x in a.tolist()]
    torch.testing.assert_close(box_iou(a, b), torch.tensor(expected, dtype=torch.float64))
    assert float(box_iou(a, b)[0, 0]) == 1.0
    assert float(box_iou(a, b)[1, 1]) == 0.0  # touching corners
    assert float(box_iou(a[2:], a[2:])[0, 0]) == 0.0  # empty union


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=boxes_st(), b=boxes_st())
def test_iou_equals_the_loop(a: list[Box], b: list[Box]) -> None:
    got = box_iou(t(a), t(b))
    expected = torch.tensor([[iou_ref(x, y) for y in b] for x in a], dtype=torch.float64)
    torch.testing.assert_close(got, expected.reshape(len(a), len(b)), rtol=0, atol=1e-12)


def test_iou_broadcasts_over_a_batch() -> None:
    anchors = t([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]])
    gts = torch.stack([t([[0, 0, 0.5, 0.5]]), t([[0.5, 0.5, 1, 1]])])
    assert box_iou(anchors, gts).tolist() == [[[1.0], [0.0]], [[0.0], [1.0]]]


def test_corner_centre_round_trip() -> None:
    b = t([[0.1, 0.2, 0.5, 0.9]])
    c = corner_to_center(b)
    torch.testing.assert_close(c, t([[0.3, 0.55, 0.4, 0.7]]))
    torch.testing.assert_close(center_to_corner(c), b)


def test_encoding_is_multibox_target_with_variances() -> None:
    anchor, gt = [0.2, 0.2, 0.6, 0.4], [0.3, 0.1, 0.5, 0.5]
    got = encode(t([gt]), t([anchor]))[0].tolist()
    # centre (0.4, 0.3) vs (0.4, 0.3); size (0.2, 0.4) vs (0.4, 0.2)
    expected = [0.0, 0.0, math.log(0.5) / 0.2, math.log(2.0) / 0.2]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    np.testing.assert_allclose(got, encode_ref(gt, anchor), atol=1e-12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_decode_inverts_encode(data: st.DataObject) -> None:
    gts = data.draw(boxes_st(1, 10, min_side=1e-3))
    anchors = data.draw(boxes_st(len(gts), len(gts), min_side=1e-3))
    deltas = encode(t(gts), t(anchors))
    for g, a, d in zip(gts, anchors, deltas.tolist(), strict=True):
        np.testing.assert_allclose(d, encode_ref(g, a), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(decode(deltas, t(anchors)), t(gts), rtol=0, atol=1e-9)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_decode_equals_the_loop_with_clip(data: st.DataObject) -> None:
    anchors = data.draw(boxes_st(1, 8, min_side=1e-2))
    deltas = [[data.draw(st.floats(-5, 5)) for _ in range(4)] for _ in anchors]
    got = decode(t(deltas), t(anchors), clip=True)
    expected = t([decode_ref(d, a, clip=True) for d, a in zip(deltas, anchors, strict=True)])
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- matching


def test_every_object_gets_its_own_anchor_even_below_the_threshold() -> None:
    anchors = t([[0, 0, 0.4, 0.4], [0.6, 0.6, 1, 1], [0.0, 0.0, 0.3, 0.3]])
    # both objects prefer anchor 0; the second is bipartite-matched to anchor 2 (IoU < 0.5)
    gts = t([[0, 0, 0.4, 0.4], [0, 0, 0.35, 0.35]])
    r = match(anchors, gts, torch.tensor([3, 1]), overlap_threshold=0.5)
    assert r.matched.tolist() == [0, -1, 1]
    assert r.classes.tolist() == [4, 0, 2]
    torch.testing.assert_close(r.boxes[1], torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(r.boxes[2], encode(gts[1], anchors[2]))
    torch.testing.assert_close(decode(r.boxes[0], anchors[0]), gts[0])


def test_threshold_step_and_padding_rows() -> None:
    anchors = t([[0, 0, 0.5, 0.5], [0.05, 0, 0.55, 0.5], [0.5, 0.5, 1, 1]])
    gts = torch.stack(
        [t([[0, 0, 0.5, 0.5], [0, 0, 0, 0]]), t([[0.5, 0.5, 1, 1], [0, 0, 0.5, 0.5]])]
    )
    cls = torch.tensor([[0, -1], [5, -1]])
    r = match(anchors, gts, cls, overlap_threshold=0.5)
    assert r.matched.tolist() == [[0, 0, -1], [-1, -1, 0]]
    assert r.classes.tolist() == [[1, 1, 0], [0, 0, 6]]
    np.testing.assert_allclose(r.overlaps[1].tolist(), [0.0, 0.0, 1.0])


def test_no_objects_is_all_background() -> None:
    anchors = t([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]])
    r = match(anchors, torch.zeros((2, 0, 4), dtype=torch.float64), torch.zeros((2, 0)))
    assert r.classes.tolist() == [[0, 0], [0, 0]]
    assert r.matched.tolist() == [[-1, -1], [-1, -1]]
    assert r.boxes.shape == (2, 2, 4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    thr=st.sampled_from([0.3, 0.5, 0.7]),
)
def test_match_equals_the_loop_and_every_object_is_matched(data: st.DataObject, thr: float) -> None:
    anchors = data.draw(boxes_st(1, 12, min_side=1e-3))
    images = data.draw(st.integers(1, 3))
    m = data.draw(st.integers(0, 5))
    gts, classes = [], []
    for _ in range(images):
        g = data.draw(boxes_st(m, m, min_side=1e-3))
        c = data.draw(st.lists(st.integers(-1, 4), min_size=m, max_size=m))
        gts.append(g)
        classes.append(c)
    gt_t = torch.tensor(gts, dtype=torch.float64).reshape(images, m, 4)
    r = match(t(anchors), gt_t, torch.tensor(classes, dtype=torch.long).reshape(images, m), thr)
    for b in range(images):
        expected = match_ref(anchors, gts[b], classes[b], thr)
        assert r.matched[b].tolist() == expected
        assert r.classes[b].tolist() == [0 if g < 0 else classes[b][g] + 1 for g in expected]
        for a, g in enumerate(expected):
            if g >= 0:
                torch.testing.assert_close(
                    decode(r.boxes[b, a], t([anchors[a]])[0]), t([gts[b][g]])[0]
                )
        # every object gets its best anchor: where each valid object has one anchor of highest
        # IoU (> 0) and no two share it, that anchor is the object's
        valid = [g for g in range(m) if classes[b][g] >= 0]
        best = {}
        for g in valid:
            ious = [iou_ref(a, gts[b][g]) for a in anchors]
            top = max(ious)
            if top > 0 and ious.count(top) == 1:
                best[g] = ious.index(top)
        if len(best) == len(valid) and len(set(best.values())) == len(best):
            for g, a in best.items():
                assert int(r.matched[b, a]) == g
        # an object left without an anchor overlaps only anchors that other objects hold
        for g in valid:
            if g not in expected:
                for a in range(len(anchors)):
                    if iou_ref(anchors[a], gts[b][g]) > 0:
                        assert expected[a] not in (-1, g)


# ---------------------------------------------------------------- hard negatives


def hard_negatives_ref(
    loss: list[float], positive: list[bool], eligible: list[bool], ratio: float
) -> list[bool]:
    cand = [i for i in range(len(loss)) if eligible[i] and not positive[i]]
    cand.sort(key=lambda i: -loss[i])
    n = math.floor(sum(positive) * ratio)
    chosen = set(cand[:n])
    return [i in chosen for i in range(len(loss))]


def test_hard_negatives_take_three_per_positive_by_highest_loss() -> None:
    loss = torch.tensor([[0.1, 5.0, 0.2, 4.0, 3.0, 2.0, 1.0, 9.0]])
    positive = torch.tensor([[False, False, False, False, False, False, False, True]])
    got = hard_negatives(loss, positive)
    assert got.tolist() == [[False, True, False, True, True, False, False, False]]
    eligible = torch.tensor([[True, False, True, True, True, True, True, True]])
    assert hard_negatives(loss, positive, eligible=eligible)[0].nonzero().flatten().tolist() == [
        3,
        4,
        5,
    ]
    assert hard_negatives(loss, positive & False, min_negatives=2)[
        0
    ].nonzero().flatten().tolist() == [1, 7]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), ratio=st.sampled_from([1.0, 2.5, 3.0]))
def test_hard_negatives_equal_the_loop(data: st.DataObject, ratio: float) -> None:
    images, n = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 20))
    # float32 values, as the tensor holds them: a float64 like 3.9e-119 is 0 in float32 and
    # would tie with a 0 there but not in the reference
    loss = [[data.draw(st.floats(0, 10, width=32)) for _ in range(n)] for _ in range(images)]
    pos = [[data.draw(st.booleans()) for _ in range(n)] for _ in range(images)]
    eli = [[data.draw(st.booleans()) for _ in range(n)] for _ in range(images)]
    got = hard_negatives(
        torch.tensor(loss), torch.tensor(pos), ratio=ratio, eligible=torch.tensor(eli)
    )
    for b in range(images):
        assert got[b].tolist() == hard_negatives_ref(loss[b], pos[b], eli[b], ratio)


# ---------------------------------------------------------------- NMS and detection


def test_nms_suppresses_only_within_a_class() -> None:
    boxes = t([[0, 0, 0.5, 0.5], [0.01, 0, 0.51, 0.5], [0.02, 0, 0.52, 0.5], [0.6, 0.6, 1, 1]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95], dtype=torch.float64)
    assert nms(boxes, scores, torch.tensor([0, 0, 1, 0]), 0.5).tolist() == [3, 0, 2]
    assert nms(boxes, scores, torch.tensor([0, 0, 0, 0]), 0.5).tolist() == [3, 0]
    assert nms(boxes, scores, torch.tensor([0, 1, 2, 3]), 0.5, topk=2).tolist() == [3, 0]
    assert nms(boxes[:0], scores[:0], torch.tensor([], dtype=torch.long), 0.5).tolist() == []


def test_nms_keeps_a_box_whose_suppressor_was_suppressed() -> None:
    # a chain: 0 suppresses 1, 1 would suppress 2 but is gone, so 2 stays (greedy, exact)
    boxes = t([[0, 0, 0.4, 1], [0.15, 0, 0.55, 1], [0.3, 0, 0.7, 1]])
    scores = torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64)
    assert nms(boxes, scores, torch.zeros(3, dtype=torch.long), 0.3).tolist() == [0, 2]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    thr=st.sampled_from([0.0, 0.3, 0.45, 0.7]),
    topk=st.sampled_from([-1, 3, 10]),
)
def test_nms_equals_the_greedy_loop(data: st.DataObject, thr: float, topk: int) -> None:
    boxes = data.draw(boxes_st(0, 25))
    n = len(boxes)
    scores = data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    classes = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    got = nms(
        t(boxes),
        torch.tensor(scores, dtype=torch.float64),
        torch.tensor(classes, dtype=torch.long),
        thr,
        topk,
    )
    assert got.tolist() == nms_ref(boxes, scores, classes, thr, topk)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), topk=st.sampled_from([-1, 5, 400]), nms_thr=st.sampled_from([0.3, 0.45]))
def test_detect_equals_multibox_detection_loop(
    data: st.DataObject, topk: int, nms_thr: float
) -> None:
    images, n, c = (
        data.draw(st.integers(1, 2)),
        data.draw(st.integers(1, 30)),
        data.draw(st.integers(1, 3)),
    )
    anchors = data.draw(boxes_st(n, n, min_side=0.05))
    seed = data.draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(images, n, c + 1, generator=gen, dtype=torch.float64) * 3, -1)
    locs = torch.randn(images, n, 4, generator=gen, dtype=torch.float64)
    got = detect(probs, locs, t(anchors), threshold=0.05, nms_threshold=nms_thr, nms_topk=topk)
    width = min(topk, n) if topk > 0 else n
    assert got.shape == (images, width, 6)
    for b, rows in enumerate(strip_padding(got)):
        expected = detect_ref(probs[b].tolist(), locs[b].tolist(), anchors, 0.05, nms_thr, topk)
        np.testing.assert_allclose(
            rows.numpy().reshape(-1, 6), np.array(expected).reshape(-1, 6), atol=1e-12
        )
        assert (got[b, len(expected) :] == -1).all()


def test_detect_rows_are_sagemaker_predictions() -> None:
    anchors = t([[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3], [0.6, 0.6, 0.9, 0.9], [0, 0, 1, 1]])
    probs = torch.tensor(
        [[[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.3, 0.0, 0.7], [0.995, 0.002, 0.003]]],
        dtype=torch.float64,
    )
    got = detect(probs, torch.zeros(1, 4, 4, dtype=torch.float64), anchors, nms_threshold=0.45)
    rows = strip_padding(got)[0].tolist()
    assert [r[:2] for r in rows] == [[0.0, 0.9], [1.0, 0.7]]  # anchor 1 suppressed, 3 below 0.01
    np.testing.assert_allclose(rows[0][2:], [0.1, 0.1, 0.3, 0.3])
    assert got.shape == (1, 4, 6) and (got[0, 2:] == -1).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_detect_handles_nothing_above_threshold(dtype: torch.dtype) -> None:
    probs = torch.zeros(2, 3, 3, dtype=dtype)
    probs[..., 0] = 1
    got = detect(
        probs, torch.zeros(2, 3, 4, dtype=dtype), torch.rand(3, 4, dtype=dtype).sort(-1).values
    )
    assert (got == -1).all() and [r.shape[0] for r in strip_padding(got)] == [0, 0]
