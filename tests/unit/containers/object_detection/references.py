"""Plain-loop references for the box maths, written from the definitions (one box at a time,
no tensors), that the vectorised code of ``containers/object_detection`` is tested against."""

from __future__ import annotations

import math

from sagedock.containers.object_detection.boxes import VARIANCES

Box = list[float]


def iou_ref(a: Box, b: Box) -> float:
    """Intersection over union of two corner boxes; 0 when the union is empty."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def encode_ref(g: Box, a: Box) -> Box:
    """SSD's coding of ground truth *g* against anchor *a*, with the variances."""
    ax, ay, aw, ah = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2, a[2] - a[0], a[3] - a[1]
    gx, gy, gw, gh = (g[0] + g[2]) / 2, (g[1] + g[3]) / 2, g[2] - g[0], g[3] - g[1]
    vx, vy, vw, vh = VARIANCES
    return [
        (gx - ax) / aw / vx,
        (gy - ay) / ah / vy,
        math.log(gw / aw) / vw,
        math.log(gh / ah) / vh,
    ]
