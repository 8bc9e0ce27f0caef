"""SSD networks on torch.nn: the VGG-16 reduced and ResNet-50 bases, the extra layers, the heads.

:func:`build_ssd` gives an :class:`SSD` whose ``forward(images)`` maps ``(N, 3, S, S)`` images
to :class:`SSDOutput` ``scores`` ``(N, num_anchors, num_classes + 1)`` (class 0 is background)
and ``offsets`` ``(N, num_anchors, 4)`` (box coding of :mod:`.boxes`), row ``i`` belonging to
anchor ``i`` of :func:`.anchors.anchors_for` at the same base network and input size.

The layout is that of MXNet ``example/ssd`` (reference §5.1):

- ``vgg-16`` (:class:`VGG16Reduced`): conv1_1 .. conv5_3 (3x3, pad 1, ReLU), max-pools 2x2
  stride 2 after each block (pool3 rounding up, as MXNet's ``pooling_convention="full"``),
  pool5 3x3 stride 1 pad 1, fc6 a 3x3 convolution with 1024 filters, dilation 6 and pad 6, fc7
  a 1x1 convolution with 1024 filters. Source layers: relu4_3, L2-normalised across channels at
  every position and multiplied by a learned per-channel scale initialised to 20
  (:class:`L2Norm`), and relu7.
- ``resnet-50`` (:class:`ResNet50`): torchvision's ResNet-50 (v1.5: stride on the 3x3
  convolution of a bottleneck; blocks 3, 4, 6, 3) without its pooling and classifier. MXNet's
  source layers ``_plus12`` and ``_plus15`` are the outputs of the last unit of stage 3 and of
  stage 4 (MXNet numbers the residual additions ``_plus0`` .. ``_plus15`` over the 3 + 4 + 6 + 3
  units), here the outputs of ``layer3`` (1024 channels, stride 16) and ``layer4`` (2048,
  stride 32).
- Extra layers (:class:`ExtraLayer`), as MXNet's ``multi_layer_feature``: a 1x1 convolution to
  ``max(128, num_filters // 2)`` channels, ReLU, a 3x3 convolution with ``num_filters``, the
  stride and the pad, ReLU. vgg-16: num_filters 512, 256, 256, 256, strides 2, 2, 1, 1, pads
  1, 1, 0, 0; resnet-50: 512, 256, 256, 128, stride 2, pad 1.
- Heads, as MXNet's ``multibox_layer``: per source layer a 3x3 pad-1 convolution with
  ``anchors_per_cell * (num_classes + 1)`` outputs for the class scores and one with
  ``anchors_per_cell * 4`` for the offsets, each laid out ``(N, H, W, A * C)`` and flattened to
  ``(N, H * W * A, C)``: cells row by row, then the anchors of a cell, then the layers in order,
  which is the anchor order of :mod:`.anchors`.

At input 300 the source maps are 38, 19, 10, 5, 3, 1 (vgg-16: 8732 anchors) and 19, 10, 5, 3,
2, 1 (resnet-50: 2268). Every operation works on channels-last tensors
(``model.to(memory_format=torch.channels_last)``); the heads' ``permute`` is then free.

:func:`load_backbone_state_dict` loads torchvision's published ImageNet weights
(``vgg16-397923af.pth``, ``resnet50-0676ba61.pth`` or ``resnet50-11ad3fa6.pth``) into the base.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from sagedock.toolkit.errors import UserError

from .anchors import config_for

__all__ = [
    "SSD",
    "BackboneLoad",
    "Bottleneck",
    "ExtraLayer",
    "L2Norm",
    "ResNet50",
    "SSDOutput",
    "VGG16Reduced",
    "build_ssd",
    "load_backbone_state_dict",
]


class SSDOutput(NamedTuple):
    """The heads' outputs, one row per anchor in :mod:`.anchors`' order."""

    scores: Tensor
    """``(N, num_anchors, num_classes + 1)`` class logits; class 0 is background."""
    offsets: Tensor
    """``(N, num_anchors, 4)`` box offsets to the anchors (:func:`.boxes.encode`'s coding)."""


class L2Norm(nn.Module):
    """``x / sqrt(sum_c x_c^2 + eps)`` at every position, times a learned per-channel scale.

    MXNet's ``L2Normalization(mode="channel")`` (eps 1e-10) followed by the SSD example's scale
    variable ``relu4_3_scale``, initialised to ``scale`` (20).
    """

    def __init__(self, channels: int, scale: float = 20.0, eps: float = 1e-10) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x: Tensor) -> Tensor:
        norm = torch.rsqrt(x.square().sum(1, keepdim=True) + self.eps)
        return x * norm * self.scale.view(1, -1, 1, 1)


def _relu_conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


#: (name, in channels, out channels) of VGG-16's convolutions, and the index of each in
#: torchvision's ``vgg16().features`` (ReLUs and pools take the indices in between).
_VGG_CONVS: tuple[tuple[str, int, int, int], ...] = (
    ("conv1_1", 3, 64, 0),
    ("conv1_2", 64, 64, 2),
    ("conv2_1", 64, 128, 5),
    ("conv2_2", 128, 128, 7),
    ("conv3_1", 128, 256, 10),
    ("conv3_2", 256, 256, 12),
    ("conv3_3", 256, 256, 14),
    ("conv4_1", 256, 512, 17),
    ("conv4_2", 512, 512, 19),
    ("conv4_3", 512, 512, 21),
    ("conv5_1", 512, 512, 24),
    ("conv5_2", 512, 512, 26),
    ("conv5_3", 512, 512, 28),
)


class VGG16Reduced(nn.Module):
    """VGG-16 reduced: returns ``(L2Norm(relu4_3), relu7)``, 512 and 1024 channels.

    Parameters keep MXNet's layer names (``conv1_1`` .. ``conv5_3``, ``fc6``, ``fc7``; the scale
    of the normalised relu4_3 is ``norm4_3.scale``), so a ``freeze_layer_pattern`` such as
    ``^(conv1_|conv2_).*`` reads as it does on SageMaker.
    """

    out_channels: tuple[int, ...] = (512, 1024)

    def __init__(self) -> None:
        super().__init__()
        for name, cin, cout, _ in _VGG_CONVS:
            self.add_module(name, _relu_conv(cin, cout))
        self.pool = nn.MaxPool2d(2, 2)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.pool5 = nn.MaxPool2d(3, 1, padding=1)
        self.fc6 = nn.Conv2d(512, 1024, 3, padding=6, dilation=6)
        self.fc7 = nn.Conv2d(1024, 1024, 1)
        self.norm4_3 = L2Norm(512)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _block(self, x: Tensor, names: Sequence[str]) -> Tensor:
        for name in names:
            x = torch.relu(self.get_submodule(name)(x))
        return x

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.pool(self._block(x, ("conv1_1", "conv1_2")))
        x = self.pool(self._block(x, ("conv2_1", "conv2_2")))
        x = self.pool3(self._block(x, ("conv3_1", "conv3_2", "conv3_3")))
        relu4_3 = self._block(x, ("conv4_1", "conv4_2", "conv4_3"))
        x = self.pool5(self._block(self.pool(relu4_3), ("conv5_1", "conv5_2", "conv5_3")))
        relu7 = torch.relu(self.fc7(torch.relu(self.fc6(x))))
        return self.norm4_3(relu4_3), relu7


class Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck: 1x1, 3x3 (with the stride), 1x1 to ``4 * planes``."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        width = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or inplanes != width:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + identity)


class ResNet50(nn.Module):
    """ResNet-50 in torchvision's naming (conv1, bn1, layer1 .. layer4, ``downsample.0/1``);
    returns ``(layer3, layer4)`` outputs (MXNet's ``_plus12``, ``_plus15``), 1024 and 2048
    channels."""

    out_channels: tuple[int, ...] = (1024, 2048)

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        stages = []
        for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            layers = [Bottleneck(inplanes, planes, stride)]
            inplanes = planes * Bottleneck.expansion
            layers += [Bottleneck(inplanes, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        stage3 = self.layer3(self.layer2(self.layer1(x)))
        return stage3, self.layer4(stage3)


class ExtraLayer(nn.Module):
    """MXNet's ``multi_layer_feature`` extra layer: 1x1 to ``max(128, num_filters // 2)``,
    ReLU, 3x3 with ``num_filters``, ``stride`` and ``pad``, ReLU."""

    def __init__(self, in_channels: int, num_filters: int, stride: int, pad: int) -> None:
        super().__init__()
        width = max(128, num_filters // 2)
        self.conv_1x1 = nn.Conv2d(in_channels, width, 1)
        self.conv_3x3 = nn.Conv2d(width, num_filters, 3, stride=stride, padding=pad)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.conv_3x3(torch.relu(self.conv_1x1(x))))


#: Per base network: the extra layers' (num_filters, stride, pad) (§5.1).
_EXTRAS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "vgg-16": ((512, 2, 1), (256, 2, 1), (256, 1, 0), (256, 1, 0)),
    "resnet-50": ((512, 2, 1), (256, 2, 1), (256, 2, 1), (128, 2, 1)),
}


class SSD(nn.Module):
    """A base network, its extra layers and one class head and one box head per source layer."""

    def __init__(
        self,
        base_network: str,
        base: VGG16Reduced | ResNet50,
        num_classes: int,
        anchors_per_cell: Sequence[int],
        image_shape: int,
    ) -> None:
        super().__init__()
        self.base_network = base_network
        self.num_classes = num_classes
        self.image_shape = image_shape
        self.anchors_per_cell = tuple(anchors_per_cell)
        self.base = base
        channels = list(base.out_channels)
        extras = []
        for num_filters, stride, pad in _EXTRAS[base_network]:
            extras.append(ExtraLayer(channels[-1], num_filters, stride, pad))
            channels.append(num_filters)
        self.extras = nn.ModuleList(extras)
        self.source_channels = tuple(channels)
        if len(self.anchors_per_cell) != len(channels):
            raise ValueError(f"{len(channels)} anchors_per_cell expected, got {anchors_per_cell}")
        c = num_classes + 1
        self.class_heads = nn.ModuleList(
            nn.Conv2d(ch, a * c, 3, padding=1)
            for ch, a in zip(channels, self.anchors_per_cell, strict=True)
        )
        self.box_heads = nn.ModuleList(
            nn.Conv2d(ch, a * 4, 3, padding=1)
            for ch, a in zip(channels, self.anchors_per_cell, strict=True)
        )
        for m in (*self.extras.modules(), *self.class_heads, *self.box_heads):
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def features(self, images: Tensor) -> list[Tensor]:
        """The source feature maps, ``(N, C_k, H_k, W_k)`` per layer, in anchor order."""
        maps = list(self.base(images))
        for extra in self.extras:
            maps.append(extra(maps[-1]))
        return maps

    def heads(self, maps: Sequence[Tensor]) -> SSDOutput:
        """The heads over given source maps, flattened in :mod:`.anchors`' order."""
        n = maps[0].shape[0]
        c = self.num_classes + 1
        scores = [
            h(x).permute(0, 2, 3, 1).reshape(n, -1, c)
            for h, x in zip(self.class_heads, maps, strict=True)
        ]
        offsets = [
            h(x).permute(0, 2, 3, 1).reshape(n, -1, 4)
            for h, x in zip(self.box_heads, maps, strict=True)
        ]
        return SSDOutput(torch.cat(scores, 1), torch.cat(offsets, 1))

    def forward(self, images: Tensor) -> SSDOutput:
        return self.heads(self.features(images))


def build_ssd(base_network: str, num_classes: int, image_shape: int) -> SSD:
    """An SSD for ``base_network`` (vgg-16 | resnet-50), ``num_classes`` object classes (plus
    background) and square inputs of ``image_shape``, randomly initialised.

    Raises UserError for a configuration the anchors do not cover (vgg-16 at >= 448).
    """
    if num_classes < 1:
        raise UserError(f"num_classes must be a positive integer, got {num_classes}")
    try:
        config = config_for(base_network, image_shape)
    except ValueError as e:
        raise UserError(f"base_network={base_network}, image_shape={image_shape}: {e}") from e
    base: VGG16Reduced | ResNet50 = VGG16Reduced() if base_network == "vgg-16" else ResNet50()
    return SSD(base_network, base, num_classes, config.anchors_per_cell(), image_shape)


@dataclass(frozen=True)
class BackboneLoad:
    """What :func:`load_backbone_state_dict` did, in the base's own names."""

    loaded: tuple[str, ...]
    """The base's parameters and buffers now holding the given weights."""
    missing: tuple[str, ...]
    """The base's parameters the dict has no counterpart for (kept as initialised)."""
    unused: tuple[str, ...]
    """The dict's keys nothing was loaded from (e.g. the ImageNet classifier)."""


_VGG_FILE = (
    "torchvision's VGG-16 ImageNet weights (vgg16-397923af.pth, i.e. "
    "torchvision.models.vgg16(weights='IMAGENET1K_V1').state_dict(): keys features.N.weight, "
    "features.N.bias, classifier.0.weight, classifier.3.weight, ...)"
)
_RESNET_FILE = (
    "torchvision's ResNet-50 ImageNet weights (resnet50-0676ba61.pth or resnet50-11ad3fa6.pth, "
    "i.e. torchvision.models.resnet50(weights=...).state_dict(): keys conv1.weight, bn1.*, "
    "layer1.0.conv1.weight, ..., layer1.0.downsample.0.weight, fc.weight)"
)


def _vgg_sources() -> dict[str, tuple[str, tuple[int, ...]]]:
    """Our name -> (torchvision key, its shape) for every VGG weight the dict provides."""
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, cin, cout, index in _VGG_CONVS:
        out[f"{name}.weight"] = (f"features.{index}.weight", (cout, cin, 3, 3))
        out[f"{name}.bias"] = (f"features.{index}.bias", (cout,))
    out["fc6.weight"] = ("classifier.0.weight", (4096, 512 * 7 * 7))
    out["fc6.bias"] = ("classifier.0.bias", (4096,))
    out["fc7.weight"] = ("classifier.3.weight", (4096, 4096))
    out["fc7.bias"] = ("classifier.3.bias", (4096,))
    return out


def _decimate(name: str, value: Tensor) -> Tensor:
    """torchvision's fc6/fc7 as the reduced convolutions (the SSD paper's subsampling).

    fc6 ``(4096, 25088)`` is read as ``(4096, 512, 7, 7)`` (torchvision flattens pool5's
    ``(512, 7, 7)`` C-order) and decimated to ``(1024, 512, 3, 3)`` by taking every 4th output
    (0, 4, ..., 4092) and every 3rd row and column of the 7x7 kernel (0, 3, 6); fc7
    ``(4096, 4096)`` to ``(1024, 1024, 1, 1)`` by every 4th output and every 4th input; the
    biases by every 4th entry. The 3x3 kernel sampled every 3rd tap of the 7x7 is applied with
    dilation 6 rather than 3 because pool5 no longer halves the map.
    """
    if name == "fc6.weight":
        return value.reshape(4096, 512, 7, 7)[::4, :, ::3, ::3]
    if name == "fc7.weight":
        return value[::4, ::4].reshape(1024, 1024, 1, 1)
    if name in ("fc6.bias", "fc7.bias"):
        return value[::4]
    return value


def _check_layout(
    state_dict: Mapping[str, object], expected: Mapping[str, tuple[int, ...]], what: str
) -> None:
    problems = []
    for key, shape in expected.items():
        value = state_dict.get(key)
        if value is None:
            problems.append(f"{key} is missing")
        elif not isinstance(value, Tensor):
            problems.append(f"{key} is a {type(value).__name__}, not a tensor")
        elif tuple(value.shape) != shape:
            problems.append(f"{key} has shape {tuple(value.shape)}, expected {shape}")
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; and {len(problems) - 3} more" if problems[3:] else ""
        )
        raise UserError(
            f"the pretrained weights are not of the expected layout ({shown}): provide {what}"
        )


def load_backbone_state_dict(model: SSD, state_dict: Mapping[str, Tensor]) -> BackboneLoad:
    """Load torchvision's published ImageNet weights into ``model.base``.

    - vgg-16 (``vgg16-*.pth``): ``features.N`` convolutions onto ``conv1_1`` .. ``conv5_3``
      directly; fc6 and fc7 from ``classifier.0`` and ``classifier.3`` decimated as the SSD
      paper does (:func:`_decimate`: outputs 0::4, kernel taps 0::3, fc7 inputs 0::4);
      ``classifier.6`` is unused and ``norm4_3.scale`` missing (it keeps its 20).
    - resnet-50 (``resnet50-*.pth``): every key by its own name (``num_batches_tracked``,
      absent from the older files, is optional); ``fc.*`` is unused.

    Raises UserError naming the file to provide when a key is missing or of another shape.
    """
    base = model.base
    own = dict(base.state_dict(keep_vars=True))
    loads: dict[str, tuple[str, Tensor]] = {}
    if isinstance(base, VGG16Reduced):
        sources = _vgg_sources()
        _check_layout(state_dict, {key: shape for key, shape in sources.values()}, _VGG_FILE)
        for name, (key, _) in sources.items():
            loads[name] = (key, _decimate(name, state_dict[key]))
    else:
        required = {
            k: tuple(v.shape) for k, v in own.items() if not k.endswith("num_batches_tracked")
        }
        _check_layout(state_dict, required, _RESNET_FILE)
        for name in own:
            if name in state_dict:
                loads[name] = (name, state_dict[name])
    with torch.no_grad():
        for name, (_, value) in loads.items():
            own[name].copy_(value)
    used = {key for key, _ in loads.values()}
    optional = [n for n in own if n.endswith("num_batches_tracked")]
    return BackboneLoad(
        loaded=tuple(loads),
        missing=tuple(n for n in own if n not in loads and n not in optional),
        unused=tuple(k for k in state_dict if k not in used),
    )
