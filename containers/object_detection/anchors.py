"""SSD anchor boxes (MXNet's MultiBoxPrior) for the base networks of SageMaker's Object Detection.

The configurations are those of MXNet ``example/ssd/symbol/symbol_factory.py`` (reference
§5.1). Per source layer the config gives ``sizes`` ``[s, s']`` and ``ratios`` ``[1, r2, ...]``;
MultiBoxPrior puts, at each feature-map cell, ``len(sizes) + len(ratios) - 1`` boxes:

- one box of ratio 1 per size, in order (``s``, then ``s'``; the configs already hold
  ``s' = sqrt(s_k * s_k+1)``, e.g. ``.141 = sqrt(.1 * .2)``, ``.272 = sqrt(.2 * .37)``, so it is
  used as given, not square-rooted again);
- then one box per further ratio ``r`` with the first size: width ``s * sqrt(r)``, height
  ``s / sqrt(r)`` (width also times ``h / w`` of the feature map, 1 for square maps).

Cells are visited row by row (y outer, x inner), boxes within a cell in the order above, and
the layers are concatenated in order: the row order of the network's class and box heads
once those are laid out ``(N, H, W, A * C)`` and flattened. The centre of cell ``(i, j)`` is
``((j + 0.5) * step_x, (i + 0.5) * step_y)``, with the config's steps as fractions of the
image (VGG-16 at input < 448: ``8, 16, 32, 64, 100, 300`` px over 300, whatever the input),
or ``1 / feature size`` where the config gives no steps (ResNet-50). Anchors are not clipped
(MultiBoxPrior's ``clip=False``, the SSD example's setting): boxes at the border extend
past [0, 1].

Anchor count: ``sum over layers of H * W * (len(sizes) + len(ratios) - 1)``. At 300:
VGG-16 reduced, maps 38, 19, 10, 5, 3, 1 with 4, 6, 6, 6, 4, 4 boxes:
``5776 + 2166 + 600 + 150 + 36 + 4 = 8732``; ResNet-50, maps 19, 10, 5, 3, 2, 1:
``1444 + 600 + 150 + 54 + 16 + 4 = 2268``.

Not here: VGG-16 at inputs >= 448 (7 layers; §5.1 gives only ".07 ... .9" for its sizes and
no ratios or extra-layer shapes, so that configuration is not reproduced): :func:`config_for`
refuses it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "RESNET50",
    "VGG16_REDUCED_300",
    "AnchorConfig",
    "anchor_count",
    "anchors_for",
    "config_for",
    "feature_map_sizes",
    "generate_anchors",
    "multibox_prior",
]

_R3 = (1.0, 2.0, 0.5)
_R5 = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
_SIZES = ((0.1, 0.141), (0.2, 0.272), (0.37, 0.447), (0.54, 0.619), (0.71, 0.79), (0.88, 0.961))


@dataclass(frozen=True)
class AnchorConfig:
    """One network's anchor layout: per source layer, sizes, ratios and (optionally) steps."""

    sizes: tuple[tuple[float, ...], ...]
    ratios: tuple[tuple[float, ...], ...]
    steps: tuple[float, ...] | None
    """Cell steps as fractions of the image; None: ``1 / feature size`` per layer."""

    def anchors_per_cell(self) -> tuple[int, ...]:
        """Boxes per feature-map cell, per layer: ``len(sizes) + len(ratios) - 1``."""
        return tuple(len(s) + len(r) - 1 for s, r in zip(self.sizes, self.ratios, strict=True))


VGG16_REDUCED_300 = AnchorConfig(
    sizes=_SIZES,
    ratios=(_R3, _R5, _R5, _R5, _R3, _R3),
    steps=tuple(px / 300.0 for px in (8, 16, 32, 64, 100, 300)),
)
"""``vgg16_reduced`` for inputs < 448: relu4_3, relu7 and four extra layers."""

RESNET50 = AnchorConfig(sizes=_SIZES, ratios=(_R3, _R5, _R5, _R5, _R3, _R3), steps=None)
"""``resnet50``: ``_plus12``, ``_plus15`` and four extra layers. §5.1 gives its sizes ("same
6 sizes") but not its ratios or steps; the ratios are symbol_factory's (the same as VGG-16's)
and it gives no steps, so MultiBoxPrior's default ``1 / feature size`` applies."""


def _conv(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def feature_map_sizes(base_network: str, image_size: int) -> tuple[int, ...]:
    """Side of each source layer's (square) feature map for a square input of ``image_size``.

    - ``vgg-16`` (vgg16_reduced): 3x3 convolutions keep the size; pool1, pool2 and pool4 are
      2x2 stride 2 rounding down, pool3 rounds up (``pooling_convention="full"``); pool5 (3x3,
      stride 1, pad 1) and the dilated fc6 keep it. relu4_3 is after pool3, relu7 after pool4;
      the extra layers are 3x3 with strides 2, 2, 1, 1 and pads 1, 1, 0, 0 (300: 38, 19, 10,
      5, 3, 1).
    - ``resnet-50``: the 7x7 stride-2 stem, the 3x3 stride-2 pool and the stride-2 stages each
      map ``s`` to ``ceil(s / 2)``; ``_plus12`` ends stage 3 (stride 16), ``_plus15`` stage 4;
      the extra layers are 3x3, stride 2, pad 1 (300: 19, 10, 5, 3, 2, 1).
    """
    if base_network == "vgg-16":
        if image_size >= 448:
            raise ValueError(_NO_VGG512)
        s = image_size // 2 // 2  # pool1, pool2
        relu4_3 = -(-(s - 2) // 2) + 1  # pool3, rounding up
        relu7 = relu4_3 // 2  # pool4; pool5 and fc6/fc7 keep the size
        sizes = [relu4_3, relu7]
        for stride, pad in ((2, 1), (2, 1), (1, 0), (1, 0)):
            sizes.append(_conv(sizes[-1], 3, stride, pad))
        return tuple(sizes)
    if base_network == "resnet-50":
        s = image_size
        for _ in range(4):  # stem conv, pool, stage 2, stage 3
            s = _conv(s, 3, 2, 1)
        sizes = [s, _conv(s, 3, 2, 1)]
        for _ in range(4):
            sizes.append(_conv(sizes[-1], 3, 2, 1))
        return tuple(sizes)
    raise ValueError(f"unknown base_network {base_network!r}; allowed: vgg-16, resnet-50")


_NO_VGG512 = (
    "vgg-16 anchors for image_shape >= 448 (the 7-layer configuration) are not implemented: "
    "the reference (§5.1) does not give that configuration in full"
)


def config_for(base_network: str, image_size: int) -> AnchorConfig:
    """The anchor configuration MXNet's symbol_factory picks for a network and input size."""
    if base_network == "vgg-16":
        if image_size >= 448:
            raise ValueError(_NO_VGG512)
        return VGG16_REDUCED_300
    if base_network == "resnet-50":
        return RESNET50
    raise ValueError(f"unknown base_network {base_network!r}; allowed: vgg-16, resnet-50")


def multibox_prior(
    height: int,
    width: int,
    sizes: tuple[float, ...],
    ratios: tuple[float, ...],
    steps: tuple[float, float] | None = None,
    offsets: tuple[float, float] = (0.5, 0.5),
    clip: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """One layer's anchors, ``(height * width * (len(sizes) + len(ratios) - 1), 4)`` corners.

    ``steps`` is ``(step_y, step_x)`` as fractions of the image (default ``1 / height``,
    ``1 / width``); ``offsets`` ``(offset_y, offset_x)`` place the centre within a cell.
    """
    step_y, step_x = steps if steps is not None else (1.0 / height, 1.0 / width)
    cy = (torch.arange(height, dtype=torch.float64) + offsets[0]) * step_y
    cx = (torch.arange(width, dtype=torch.float64) + offsets[1]) * step_x
    aspect = height / width
    half_w = [s * aspect / 2 for s in sizes]
    half_h = [s / 2 for s in sizes]
    for r in ratios[1:]:
        half_w.append(sizes[0] * aspect * math.sqrt(r) / 2)
        half_h.append(sizes[0] / math.sqrt(r) / 2)
    hw = torch.tensor(half_w, dtype=torch.float64)
    hh = torch.tensor(half_h, dtype=torch.float64)
    a = hw.shape[0]
    gy = cy[:, None, None].expand(height, width, a)
    gx = cx[None, :, None].expand(height, width, a)
    boxes = torch.stack((gx - hw, gy - hh, gx + hw, gy + hh), -1).reshape(-1, 4)
    if clip:
        boxes = boxes.clamp(0.0, 1.0)
    return boxes.to(dtype)


def generate_anchors(
    config: AnchorConfig,
    feature_sizes: Sequence[int | tuple[int, int]],
    clip: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """All layers' anchors concatenated, ``(num_anchors, 4)`` corner boxes.

    ``feature_sizes`` gives each layer's side (square maps) or ``(height, width)``.
    """
    if len(feature_sizes) != len(config.sizes):
        raise ValueError(f"{len(config.sizes)} feature maps expected, got {len(feature_sizes)}")
    layers = []
    for k, fs in enumerate(feature_sizes):
        h, w = (fs, fs) if isinstance(fs, int) else fs
        step = None if config.steps is None else (config.steps[k], config.steps[k])
        layers.append(
            multibox_prior(h, w, config.sizes[k], config.ratios[k], step, clip=clip, dtype=dtype)
        )
    return torch.cat(layers, 0)


def anchors_for(
    base_network: str, image_size: int, clip: bool = False, dtype: torch.dtype = torch.float32
) -> Tensor:
    """The anchors of ``base_network`` (vgg-16 | resnet-50) at a square input size."""
    config = config_for(base_network, image_size)
    return generate_anchors(config, feature_map_sizes(base_network, image_size), clip, dtype)


def anchor_count(base_network: str, image_size: int) -> int:
    """``sum(H * W * anchors per cell)`` over the source layers: 8732 for vgg-16 at 300."""
    config = config_for(base_network, image_size)
    sizes = feature_map_sizes(base_network, image_size)
    return sum(s * s * a for s, a in zip(sizes, config.anchors_per_cell(), strict=True))
