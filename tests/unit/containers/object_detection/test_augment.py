"""SSD augmentation (sagedock.containers.object_detection.augment) against independent
references: hand-computed flips, a brute-force IoU, and synthetic images whose bright
rectangles must follow the transformed boxes pixel for pixel; hypothesis properties on
random boxes."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagedock.containers.object_detection.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    color_jitter,
    eval_transform,
    normalize,
    random_crop,
    random_expand,
    random_flip,
    resize,
    sample_crop,
    train_transform,
)

from .references import iou_ref


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def bright_image(h: int, w: int, px: tuple[int, int, int, int]) -> torch.Tensor:
    """uint8 (3, h, w), black with a white rectangle on pixels [x0, x1) x [y0, y1)."""
    x0, y0, x1, y1 = px
    img = torch.zeros((3, h, w), dtype=torch.uint8)
    img[:, y0:y1, x0:x1] = 255
    return img


def bright_extent(img: torch.Tensor) -> tuple[int, int, int, int]:
    """Pixel extent (x0, y0, x1, y1), exclusive ends, of pixels brighter than mid-grey."""
    mask = img.float().mean(0) > 127.5
    ys, xs = mask.nonzero(as_tuple=True)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def assert_box_on_bright(img: torch.Tensor, box: torch.Tensor, tol: float = 1.0) -> None:
    h, w = img.shape[-2:]
    x0, y0, x1, y1 = bright_extent(img)
    expect = (box[1] * w, box[2] * h, box[3] * w, box[4] * h)
    for got, want in zip((x0, y0, x1, y1), expect, strict=True):
        assert abs(got - float(want)) <= tol, ((x0, y0, x1, y1), expect)


def assert_valid(boxes: torch.Tensor) -> None:
    assert boxes.shape[0] >= 1
    xy = boxes[:, 1:5]
    assert bool(((xy >= 0) & (xy <= 1)).all()), boxes
    assert bool((boxes[:, 1] < boxes[:, 3]).all()), boxes
    assert bool((boxes[:, 2] < boxes[:, 4]).all()), boxes


# one object on pixels x 20..50, y 10..30 of a 60 x 80 image
H, W = 60, 80
PX = (20, 10, 50, 30)
BOX = torch.tensor([[3.0, 20 / W, 10 / H, 50 / W, 30 / H]])


# ---------------------------------------------------------------- flip


def test_flip_of_a_box_is_the_hand_computed_mirror() -> None:
    boxes = torch.tensor([[1.0, 0.1, 0.2, 0.4, 0.9], [0.0, 0.5, 0.0, 1.0, 0.5]])
    _, out = random_flip(torch.zeros(3, 4, 4), boxes, gen(0), p=1.0)
    want = torch.tensor([[1.0, 0.6, 0.2, 0.9, 0.9], [0.0, 0.0, 0.0, 0.5, 0.5]])
    torch.testing.assert_close(out, want)


def test_flip_twice_is_identity() -> None:
    img = torch.randint(0, 256, (3, 7, 9), dtype=torch.uint8)
    boxes = torch.tensor([[2.0, 0.1, 0.3, 0.35, 0.8]])
    i1, b1 = random_flip(img, boxes, gen(0), p=1.0)
    i2, b2 = random_flip(i1, b1, gen(0), p=1.0)
    assert torch.equal(i2, img)
    torch.testing.assert_close(b2, boxes)


def test_flip_moves_the_pixels_with_the_box() -> None:
    img, box = random_flip(bright_image(H, W, PX), BOX, gen(0), p=1.0)
    assert bright_extent(img) == (W - 50, 10, W - 20, 30)
    assert_box_on_bright(img, box[0], tol=1e-4)


def test_flip_with_p_zero_changes_nothing() -> None:
    img = bright_image(H, W, PX)
    out, box = random_flip(img, BOX, gen(0), p=0.0)
    assert torch.equal(out, img) and torch.equal(box, BOX)


# ---------------------------------------------------------------- expand


def test_expand_keeps_the_object_pixels_at_the_box() -> None:
    for seed in range(10):
        img, box = random_expand(bright_image(H, W, PX), BOX, gen(seed), max_ratio=4.0, p=1.0)
        assert img.shape[0] == 3 and img.shape[1] >= H and img.shape[2] >= W
        assert_box_on_bright(img, box[0], tol=1e-3)
        assert box[0, 0] == 3.0


def test_expand_fills_with_the_given_mean() -> None:
    img = torch.full((3, 10, 10), 255, dtype=torch.uint8)
    out, _ = random_expand(img, BOX, gen(1), max_ratio=3.0, fill=(10.0, 20.4, 30.6), p=1.0)
    background = out[:, (out == 255).all(0).logical_not()]
    assert background.shape[1] > 0
    assert torch.equal(
        background.unique(dim=1), torch.tensor([[10], [20], [31]], dtype=torch.uint8)
    )


# ---------------------------------------------------------------- crop


def test_crop_keeps_the_iou_constraint_and_centres() -> None:
    boxes = torch.tensor(
        [[0.0, 0.1, 0.1, 0.5, 0.6], [1.0, 0.4, 0.3, 0.9, 0.95], [2.0, 0.05, 0.7, 0.25, 0.9]]
    )
    accepted = 0
    for seed in range(40):
        window = sample_crop(boxes, H, W, gen(seed), min_object_covered=(0.7,))
        img, out = random_crop(torch.zeros(3, H, W), boxes, gen(seed), min_object_covered=(0.7,))
        if window is None:
            assert torch.equal(out, boxes) and img.shape == (3, H, W)
            continue
        accepted += 1
        left, top, right, bottom = window
        w = [left / W, top / H, right / W, bottom / H]
        assert img.shape == (3, bottom - top, right - left)
        ious = [iou_ref(w, b[1:].tolist()) for b in boxes]
        assert max(ious) >= 0.7 - 1e-9
        centres_in = [
            w[0] < (b[1] + b[3]) / 2 < w[2] and w[1] < (b[2] + b[4]) / 2 < w[3]
            for b in boxes.tolist()
        ]
        kept = boxes[torch.tensor(centres_in)]
        assert out.shape[0] == sum(centres_in) >= 1
        assert torch.equal(out[:, 0], kept[:, 0])
        assert_valid(out)
        # reference renormalisation, one box at a time
        for got, b in zip(out.tolist(), kept.tolist(), strict=True):
            ref = [
                (min(max(b[1], w[0]), w[2]) - w[0]) / (w[2] - w[0]),
                (min(max(b[2], w[1]), w[3]) - w[1]) / (w[3] - w[1]),
                (min(max(b[3], w[0]), w[2]) - w[0]) / (w[2] - w[0]),
                (min(max(b[4], w[1]), w[3]) - w[1]) / (w[3] - w[1]),
            ]
            assert max(abs(g - r) for g, r in zip(got[1:], ref, strict=True)) < 1e-5
    assert accepted > 10


def test_crop_moves_the_pixels_with_the_box() -> None:
    changed = 0
    for seed in range(20):
        img, box = random_crop(bright_image(H, W, PX), BOX, gen(seed))
        changed += img.shape != (3, H, W)
        assert box.shape[0] == 1
        assert_box_on_bright(img, box[0], tol=1e-3)
    assert changed > 5


def test_crop_returns_input_when_no_trial_succeeds() -> None:
    tiny = torch.tensor([[0.0, 0.0, 0.0, 0.05, 0.05]])
    img = torch.zeros(3, H, W)
    out, box = random_crop(img, tiny, gen(0), min_object_covered=(0.9,), max_trials=5)
    assert out is img and box is tiny
    empty = torch.zeros(0, 5)
    out, box = random_crop(img, empty, gen(0))
    assert out is img and box is empty


# ---------------------------------------------------------------- photometric, resize, normalise


def test_color_jitter_stays_in_range_and_zero_strength_is_identity() -> None:
    img = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    out = color_jitter(img, gen(0), brightness=0.5, contrast=0.5, saturation=0.5, hue=0.1)
    assert out.dtype == torch.float32 and out.shape == img.shape
    assert float(out.min()) >= 0.0 and float(out.max()) <= 255.0
    assert not torch.allclose(out, img.float())
    same = color_jitter(img, gen(0), brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)
    torch.testing.assert_close(same, img.float(), atol=1e-3, rtol=0)


def test_color_jitter_keeps_gray_gray_under_hue() -> None:
    img = torch.full((3, 4, 4), 100.0)
    out = color_jitter(img, gen(3), brightness=0.0, contrast=0.0, saturation=0.0, hue=0.5)
    torch.testing.assert_close(out, img, atol=1e-3, rtol=0)


def test_resize_is_square_bilinear_and_keeps_boxes() -> None:
    img = bright_image(H, W, PX)
    out, box = resize(img, BOX, 120)
    assert out.shape == (3, 120, 120) and box is BOX
    assert_box_on_bright(out, box[0], tol=1.0)
    flat, _ = resize(torch.full((3, 5, 7), 42, dtype=torch.uint8), BOX, 9)
    torch.testing.assert_close(flat, torch.full((3, 9, 9), 42.0))


def test_normalize_uses_imagenet_statistics() -> None:
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None].expand(3, 2, 2)
    torch.testing.assert_close(normalize(mean), torch.zeros(3, 2, 2))
    plus_std = mean + torch.tensor(IMAGENET_STD)[:, None, None]
    torch.testing.assert_close(normalize(plus_std), torch.ones(3, 2, 2))
    torch.testing.assert_close(
        torch.tensor(IMAGENET_MEAN) / 255, torch.tensor((0.485, 0.456, 0.406))
    )


def test_eval_and_train_transforms() -> None:
    img = bright_image(H, W, PX)
    x, b = eval_transform(img, BOX, 32)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and b is BOX
    for seed in range(10):
        x, b = train_transform(img, BOX, gen(seed), 32)
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
        assert_valid(b)
        assert b[0, 0] == 3.0
    geometric, b = train_transform(img, BOX, gen(5), 64, jitter=False)
    assert_box_on_bright(
        geometric * torch.tensor(IMAGENET_STD)[:, None, None]
        + torch.tensor(IMAGENET_MEAN)[:, None, None],
        b[0],
        tol=1.5,
    )


def test_same_seed_same_output() -> None:
    img = torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8)
    boxes = torch.tensor([[0.0, 0.1, 0.2, 0.6, 0.7], [4.0, 0.5, 0.5, 0.9, 0.8]])
    a = train_transform(img, boxes, gen(11), 48)
    b = train_transform(img, boxes, gen(11), 48)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = [train_transform(img, boxes, gen(s), 48)[0] for s in range(12, 16)]
    assert any(not torch.equal(a[0], x) for x in c)


# ---------------------------------------------------------------- properties


@st.composite
def boxes_strategy(draw: st.DrawFn) -> torch.Tensor:
    n = draw(st.integers(1, 5))
    rows = []
    for i in range(n):
        x0 = draw(st.floats(0.0, 0.95))
        y0 = draw(st.floats(0.0, 0.95))
        x1 = draw(st.floats(x0 + 0.02, 1.0)) if x0 + 0.02 <= 1.0 else 1.0
        y1 = draw(st.floats(y0 + 0.02, 1.0)) if y0 + 0.02 <= 1.0 else 1.0
        rows.append([float(i), x0, y0, x1, y1])
    return torch.tensor(rows, dtype=torch.float32)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    boxes=boxes_strategy(),
    h=st.integers(8, 48),
    w=st.integers(8, 48),
    seed=st.integers(0, 2**31 - 1),
)
def test_geometric_transforms_return_valid_boxes(
    boxes: torch.Tensor, h: int, w: int, seed: int
) -> None:
    img = torch.zeros(3, h, w, dtype=torch.uint8)
    g = gen(seed)
    for name, step in (
        ("expand", lambda i, b: random_expand(i, b, g, p=1.0)),
        ("crop", lambda i, b: random_crop(i, b, g)),
        ("flip", lambda i, b: random_flip(i, b, g, p=1.0)),
    ):
        out_img, out = step(img, boxes)
        assert_valid(out)
        classes = out[:, 0].tolist()
        assert set(classes) <= set(boxes[:, 0].tolist()), name
        assert classes == sorted(classes), name  # kept in order, none invented or relabelled
        if name != "crop":
            assert torch.equal(out[:, 0], boxes[:, 0]), name
        assert out_img.shape[0] == 3 and out_img.shape[1] >= 1 and out_img.shape[2] >= 1
