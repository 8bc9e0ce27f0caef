"""SSD training augmentation on decoded images, as MXNet's ``example/ssd`` and the SSD paper.

Images are ``(C, H, W)`` tensors, uint8 or float in [0, 255]; boxes are ``(N, 5)`` rows
``[cls, xmin, ymin, xmax, ymax]`` with corners normalised to the image (0..1), as the
readers in ``containers/data`` give them. Every random transform draws only from the
``torch.Generator`` it is given, so a seed reproduces its output exactly.

Geometric transforms work on whole pixels: a crop window or an expand offset is a pixel
rectangle, and the boxes are renormalised against that rectangle, so the pixels of an object
stay at its box (within a pixel):

- :func:`random_crop`: SSD's IoU-constrained crop (sample a threshold from
  ``min_object_covered``, then up to ``max_trials`` windows of random area and aspect ratio
  until one has IoU >= the threshold with some object and holds at least one object centre;
  otherwise the input is returned unchanged). Objects whose centre is in the window are kept,
  clipped and renormalised; the others dropped. Never returns zero objects (unless given none).
- :func:`random_expand`: ``zoom out``, the image on a canvas up to ``max_ratio`` times larger
  filled with the mean pixel.
- :func:`random_flip`: horizontal mirror, ``xmin' = 1 - xmax``, ``xmax' = 1 - xmin``.
- :func:`color_jitter`: brightness, contrast, saturation (factors around 1, MXNet's
  ``ColorJitterAug``) and hue (rotation in YIQ space, MXNet's ``HueJitterAug``); float output
  clamped to [0, 255], boxes untouched.
- :func:`resize` (bilinear, to the square ``image_shape``) and :func:`normalize`.

:func:`train_transform` composes them in SSD's order (photometric, expand, crop, flip, resize,
normalise); :func:`eval_transform` only resizes and normalises.

Normalisation uses the ImageNet mean and standard deviation on the [0, 255] scale
(torchvision's ``(0.485, 0.456, 0.406)`` and ``(0.229, 0.224, 0.225)`` times 255), which the
ImageNet-pretrained torchvision VGG-16 and ResNet-50 backbones that ``networks.py`` loads were
trained with. The same mean is the default fill of :func:`random_expand`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional

from .boxes import box_iou

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MIN_OBJECT_COVERED",
    "color_jitter",
    "crop",
    "eval_transform",
    "normalize",
    "random_crop",
    "random_expand",
    "random_flip",
    "resize",
    "sample_crop",
    "train_transform",
]

IMAGENET_MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
"""ImageNet RGB mean on the [0, 255] scale (torchvision's pretrained models' mean x 255)."""
IMAGENET_STD: tuple[float, float, float] = (58.395, 57.12, 57.375)
"""ImageNet RGB standard deviation on the [0, 255] scale (torchvision's x 255)."""
MIN_OBJECT_COVERED: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
"""SSD's IoU thresholds for :func:`random_crop`, one drawn per call."""

Window = tuple[int, int, int, int]
"""A pixel rectangle ``(left, top, right, bottom)``, right and bottom exclusive."""


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen, dtype=torch.float64))


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in ``[low, high]`` inclusive."""
    return int(torch.randint(low, high + 1, (), generator=gen))


def _centres_inside(boxes: Tensor, window: Tensor) -> Tensor:
    """``(N,)`` bool: box centres strictly inside the normalised ``window`` (4,)."""
    cx = (boxes[:, 1] + boxes[:, 3]) / 2
    cy = (boxes[:, 2] + boxes[:, 4]) / 2
    return (cx > window[0]) & (cx < window[2]) & (cy > window[1]) & (cy < window[3])


def _normalised_window(window: Window, height: int, width: int, like: Tensor) -> Tensor:
    left, top, right, bottom = window
    return torch.tensor(
        (left / width, top / height, right / width, bottom / height),
        dtype=like.dtype if like.is_floating_point() else torch.float32,
    )


def sample_crop(
    boxes: Tensor,
    height: int,
    width: int,
    gen: torch.Generator,
    min_object_covered: Sequence[float] = MIN_OBJECT_COVERED,
    aspect_ratio_range: tuple[float, float] = (0.5, 2.0),
    area_range: tuple[float, float] = (0.3, 1.0),
    max_trials: int = 50,
) -> Window | None:
    """The pixel window :func:`random_crop` takes for an image of ``height x width``, or None.

    One threshold is drawn from ``min_object_covered``; then up to ``max_trials`` windows of
    area fraction in ``area_range`` and aspect ratio (width / height, in pixels) in
    ``aspect_ratio_range``, placed uniformly, rounded to whole pixels (at least one). The first
    window with IoU >= the threshold with some object and at least one object centre strictly
    inside is returned; None when no trial succeeds (or there are no objects).
    """
    if boxes.shape[0] == 0 or not min_object_covered:
        return None
    pick = _randint(gen, 0, len(min_object_covered) - 1)
    threshold = float(min_object_covered[pick])
    corners = boxes[:, 1:5].to(torch.float64)
    for _ in range(max_trials):
        area = _uniform(gen, *area_range)
        log_lo, log_hi = math.log(aspect_ratio_range[0]), math.log(aspect_ratio_range[1])
        ratio = math.exp(_uniform(gen, log_lo, log_hi))
        w = math.sqrt(area * ratio * height / width)  # normalised width
        h = math.sqrt(area / ratio * width / height)  # so that (w W) / (h H) = ratio
        if w > 1.0 or h > 1.0:
            continue
        x0 = _uniform(gen, 0.0, 1.0 - w)
        y0 = _uniform(gen, 0.0, 1.0 - h)
        left, top = round(x0 * width), round(y0 * height)
        right = min(width, max(left + 1, round((x0 + w) * width)))
        bottom = min(height, max(top + 1, round((y0 + h) * height)))
        left, top = min(left, right - 1), min(top, bottom - 1)
        window = (left, top, right, bottom)
        norm = _normalised_window(window, height, width, corners)
        iou = box_iou(norm[None], corners)[0]
        inside = _centres_inside(boxes.to(torch.float64), norm)
        if bool((iou >= threshold).any()) and bool(inside.any()):
            return window
    return None


def crop(image: Tensor, boxes: Tensor, window: Window) -> tuple[Tensor, Tensor]:
    """``image`` cut to the pixel ``window`` and the boxes whose centre lies strictly inside
    it, clipped to it and renormalised to it (class column unchanged)."""
    height, width = image.shape[-2:]
    left, top, right, bottom = window
    wide = boxes.to(torch.float64)  # the same precision as sample_crop's centre test
    norm = _normalised_window(window, height, width, wide)
    keep = _centres_inside(wide, norm)
    kept = boxes[keep].clone()
    size = torch.stack((norm[2] - norm[0], norm[3] - norm[1]))
    lo = norm[:2]
    xy = wide[keep][:, 1:5].reshape(-1, 2, 2)
    xy = torch.minimum(torch.maximum(xy, lo), norm[2:])
    kept[:, 1:5] = ((xy - lo) / size).clamp(0.0, 1.0).reshape(-1, 4).to(boxes.dtype)
    return image[..., top:bottom, left:right].contiguous(), kept


def random_crop(
    image: Tensor,
    boxes: Tensor,
    gen: torch.Generator,
    min_object_covered: Sequence[float] = MIN_OBJECT_COVERED,
    aspect_ratio_range: tuple[float, float] = (0.5, 2.0),
    area_range: tuple[float, float] = (0.3, 1.0),
    max_trials: int = 50,
) -> tuple[Tensor, Tensor]:
    """SSD's IoU-constrained random crop (see :func:`sample_crop` and :func:`crop`); the
    input unchanged when no window satisfies the constraint within ``max_trials``."""
    height, width = image.shape[-2:]
    window = sample_crop(
        boxes, height, width, gen, min_object_covered, aspect_ratio_range, area_range, max_trials
    )
    if window is None:
        return image, boxes
    return crop(image, boxes, window)


def random_expand(
    image: Tensor,
    boxes: Tensor,
    gen: torch.Generator,
    max_ratio: float = 4.0,
    fill: Sequence[float] = IMAGENET_MEAN,
    p: float = 0.5,
) -> tuple[Tensor, Tensor]:
    """With probability ``p``, ``image`` placed at a random whole-pixel offset on a canvas
    ``ratio`` times its size (``ratio`` uniform in [1, ``max_ratio``]) filled per channel with
    ``fill`` (the mean pixel; rounded for uint8); boxes rescaled to the canvas."""
    if _uniform(gen, 0.0, 1.0) >= p or max_ratio <= 1.0:
        return image, boxes
    ratio = _uniform(gen, 1.0, max_ratio)
    channels, height, width = image.shape
    new_h, new_w = int(height * ratio), int(width * ratio)
    top = _randint(gen, 0, new_h - height)
    left = _randint(gen, 0, new_w - width)
    values = torch.tensor(list(fill), dtype=torch.float64)
    if values.numel() == 1:
        values = values.expand(channels)
    if not image.is_floating_point():
        values = values.round()
    canvas = values.to(image.dtype)[:, None, None].expand(channels, new_h, new_w).clone()
    canvas[:, top : top + height, left : left + width] = image
    out = boxes.clone()
    scale = torch.tensor((width / new_w, height / new_h), dtype=boxes.dtype)
    shift = torch.tensor((left / new_w, top / new_h), dtype=boxes.dtype)
    out[:, 1:5] = (boxes[:, 1:5].reshape(-1, 2, 2) * scale + shift).reshape(-1, 4)
    return canvas, out


def random_flip(
    image: Tensor, boxes: Tensor, gen: torch.Generator, p: float = 0.5
) -> tuple[Tensor, Tensor]:
    """With probability ``p`` the horizontal mirror: ``xmin' = 1 - xmax``, ``xmax' = 1 - xmin``."""
    if _uniform(gen, 0.0, 1.0) >= p:
        return image, boxes
    out = boxes.clone()
    out[:, 1] = 1.0 - boxes[:, 3]
    out[:, 3] = 1.0 - boxes[:, 1]
    return image.flip(-1), out


_GRAY = (0.299, 0.587, 0.114)


def color_jitter(
    image: Tensor,
    gen: torch.Generator,
    brightness: float = 0.125,
    contrast: float = 0.5,
    saturation: float = 0.5,
    hue: float = 0.05,
) -> Tensor:
    """Photometric distortion of a float image in [0, 255] (uint8 is converted to float32).

    Brightness ``x * a``, contrast ``x * a + mean(gray) * (1 - a)``, saturation
    ``x * a + gray * (1 - a)``, each with ``a`` uniform in ``[1 - s, 1 + s]``; hue rotates the
    I/Q plane of YIQ by ``pi * h`` with ``h`` uniform in ``[-hue, hue]`` (MXNet's
    ``HueJitterAug``, with unrounded YIQ coefficients so that grey pixels stay grey).
    Saturation and hue apply to 3-channel images only. Clamped to [0, 255].
    """
    x = image.float() if not image.is_floating_point() else image
    a = _uniform(gen, 1.0 - brightness, 1.0 + brightness)
    x = x * a
    rgb = x.shape[0] == 3
    gray_w = torch.tensor(_GRAY, dtype=x.dtype)[:, None, None]
    a = _uniform(gen, 1.0 - contrast, 1.0 + contrast)
    gray = (x * gray_w).sum(0) if rgb else x.mean(0)
    x = x * a + gray.mean() * (1.0 - a)
    a = _uniform(gen, 1.0 - saturation, 1.0 + saturation)
    h = _uniform(gen, -hue, hue)
    if rgb:
        gray = (x * gray_w).sum(0, keepdim=True)
        x = x * a + gray * (1.0 - a)
        u, w = math.cos(h * math.pi), math.sin(h * math.pi)
        tyiq = torch.tensor(
            # YIQ (FCC NTSC) with the I and Q rows summing to 0, so that grey stays grey
            (
                (0.299, 0.587, 0.114),
                (0.595716, -0.274453, -0.321263),
                (0.211456, -0.522591, 0.311135),
            ),
            dtype=torch.float64,
        )
        bt = torch.tensor(((1.0, 0.0, 0.0), (0.0, u, -w), (0.0, w, u)), dtype=torch.float64)
        t = (torch.linalg.inv(tyiq) @ bt @ tyiq).to(x.dtype)
        x = torch.einsum("ij,jhw->ihw", t, x)
    return x.clamp(0.0, 255.0)


def resize(image: Tensor, boxes: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Bilinear resize to ``size x size`` (float32 for uint8 input); normalised boxes are
    unchanged."""
    x = image.float() if not image.is_floating_point() else image
    out = functional.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False)[
        0
    ]
    return out, boxes


def normalize(
    image: Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Tensor:
    """``(image - mean) / std`` per channel, on the [0, 255] scale (defaults: ImageNet's, as the
    pretrained torchvision backbones expect)."""
    x = image.float() if not image.is_floating_point() else image
    m = torch.tensor(list(mean), dtype=x.dtype)[:, None, None]
    s = torch.tensor(list(std), dtype=x.dtype)[:, None, None]
    return (x - m) / s


def train_transform(
    image: Tensor,
    boxes: Tensor,
    gen: torch.Generator,
    image_shape: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    max_expand_ratio: float = 4.0,
    expand_p: float = 0.5,
    flip_p: float = 0.5,
    jitter: bool = True,
) -> tuple[Tensor, Tensor]:
    """SSD's training pipeline: colour jitter, expand (fill ``mean``), IoU crop, flip, resize to
    ``image_shape``, normalise. Returns a float32 ``(C, image_shape, image_shape)`` image and
    the boxes."""
    x = image.float() if not image.is_floating_point() else image
    if jitter:
        x = color_jitter(x, gen)
    x, b = random_expand(x, boxes, gen, max_ratio=max_expand_ratio, fill=mean, p=expand_p)
    x, b = random_crop(x, b, gen)
    x, b = random_flip(x, b, gen, p=flip_p)
    x, b = resize(x, b, image_shape)
    return normalize(x, mean, std), b


def eval_transform(
    image: Tensor,
    boxes: Tensor,
    image_shape: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> tuple[Tensor, Tensor]:
    """Validation and inference: resize to ``image_shape`` and normalise; boxes unchanged."""
    x, b = resize(image, boxes, image_shape)
    return normalize(x, mean, std), b
