"""SSD networks (sagedock.containers.object_detection.networks): source maps of the sizes the
anchors expect, heads flattened in the anchors' order, torchvision's published state dicts
loaded by their documented key names and shapes, gradients on every parameter."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from sagedock.containers.object_detection.anchors import (
    anchor_count,
    anchors_for,
    config_for,
    feature_map_sizes,
)
from sagedock.containers.object_detection.networks import (
    SSD,
    L2Norm,
    ResNet50,
    VGG16Reduced,
    build_ssd,
    load_backbone_state_dict,
)
from sagedock.toolkit.errors import UserError

NETWORKS = ("vgg-16", "resnet-50")


@pytest.fixture(scope="module")
def models() -> dict[str, SSD]:
    torch.manual_seed(0)
    return {net: build_ssd(net, 20, 300).eval() for net in NETWORKS}


# torchvision's documented architectures, written out here (torchvision is not importable):
# vgg16 is configuration "D", features built as conv+ReLU per number and a max-pool per "M";
# classifier Linear(512*7*7, 4096), ReLU, Dropout, Linear(4096, 4096), ReLU, Dropout,
# Linear(4096, 1000).
VGG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def torchvision_vgg16_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    index, cin = 0, 3
    for v in VGG_D:
        if v == "M":
            index += 1
            continue
        assert isinstance(v, int)
        shapes[f"features.{index}.weight"] = (v, cin, 3, 3)
        shapes[f"features.{index}.bias"] = (v,)
        index, cin = index + 2, v
    for i, (cout, cin_) in zip((0, 3, 6), ((4096, 25088), (4096, 4096), (1000, 4096)), strict=True):
        shapes[f"classifier.{i}.weight"] = (cout, cin_)
        shapes[f"classifier.{i}.bias"] = (cout,)
    return shapes


def torchvision_resnet50_shapes(batches_tracked: bool) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (c,)
        if batches_tracked:
            shapes[f"{prefix}.num_batches_tracked"] = ()

    bn("bn1", 64)
    inplanes = 64
    for layer, (planes, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), 1):
        for b in range(blocks):
            p = f"layer{layer}.{b}"
            shapes[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            bn(f"{p}.bn1", planes)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            bn(f"{p}.bn3", planes * 4)
            if b == 0:
                shapes[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
    shapes["fc.weight"] = (1000, 2048)
    shapes["fc.bias"] = (1000,)
    return shapes


def synthetic(shapes: dict[str, tuple[int, ...]]) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(1)
    out = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        else:
            out[key] = torch.randn(shape, generator=g)
    return out


def test_published_parameter_counts_match_torchvision_architectures() -> None:
    # torchvision's documented counts: vgg16 138,357,544, resnet50 25,557,032 parameters.
    vgg = torchvision_vgg16_shapes()
    assert sum(torch.Size(s).numel() for s in vgg.values()) == 138_357_544
    res = torchvision_resnet50_shapes(batches_tracked=True)
    assert len(res) == 320
    params = {k: s for k, s in res.items() if "running" not in k and "tracked" not in k}
    assert sum(torch.Size(s).numel() for s in params.values()) == 25_557_032
    # ResNet50 holds exactly those keys bar the classifier.
    own = {k: tuple(v.shape) for k, v in ResNet50().state_dict().items()}
    assert own == {k: s for k, s in res.items() if not k.startswith("fc.")}


@pytest.mark.parametrize("net", NETWORKS)
def test_source_maps_have_the_sizes_anchors_expect_at_300(models: dict[str, SSD], net: str) -> None:
    model = models[net]
    with torch.no_grad():
        maps = model.features(torch.randn(2, 3, 300, 300))
        out = model.heads(maps)
    expected = {"vgg-16": (38, 19, 10, 5, 3, 1), "resnet-50": (19, 10, 5, 3, 2, 1)}[net]
    assert feature_map_sizes(net, 300) == expected
    assert tuple(m.shape[-1] for m in maps) == expected
    assert tuple(m.shape[-2] for m in maps) == expected
    assert tuple(m.shape[1] for m in maps) == model.source_channels
    assert all(m.shape[0] == 2 for m in maps)
    n = anchor_count(net, 300)
    assert n == {"vgg-16": 8732, "resnet-50": 2268}[net]
    assert out.scores.shape == (2, n, 21)
    assert out.offsets.shape == (2, n, 4)
    assert anchors_for(net, 300).shape[0] == n


@pytest.mark.parametrize(("net", "size"), [("vgg-16", 320), ("resnet-50", 416)])
def test_source_maps_follow_anchors_at_other_sizes(net: str, size: int) -> None:
    model = build_ssd(net, 3, size).eval()
    with torch.no_grad():
        maps = model.features(torch.randn(1, 3, size, size))
    assert tuple(m.shape[-1] for m in maps) == feature_map_sizes(net, size)


def test_source_channels() -> None:
    assert build_ssd("vgg-16", 1, 300).source_channels == (512, 1024, 512, 256, 256, 256)
    assert build_ssd("resnet-50", 1, 300).source_channels == (1024, 2048, 512, 256, 256, 128)


def test_l2_norm_scale_starts_at_20_and_output_has_that_norm_per_position() -> None:
    model = build_ssd("vgg-16", 2, 300)
    assert isinstance(model.base, VGG16Reduced)
    scale = model.base.norm4_3.scale
    assert scale.shape == (512,)
    assert torch.all(scale == 20.0)
    norm = L2Norm(8)
    x = torch.randn(2, 8, 5, 3)
    y = norm(x)
    torch.testing.assert_close(y.norm(dim=1), torch.full((2, 5, 3), 20.0))
    torch.testing.assert_close(y / 20.0, x / x.norm(dim=1, keepdim=True))
    with torch.no_grad():
        norm.scale.copy_(torch.arange(1.0, 9.0))
    torch.testing.assert_close(
        norm(x), x / x.norm(dim=1, keepdim=True) * torch.arange(1.0, 9.0).view(1, 8, 1, 1)
    )


@pytest.mark.parametrize("net", NETWORKS)
def test_head_output_i_comes_from_the_cell_of_anchor_i(net: str) -> None:
    num_classes = 2
    c = num_classes + 1
    model = build_ssd(net, num_classes, 300)
    sizes = feature_map_sizes(net, 300)
    config = config_for(net, 300)
    per_cell = config.anchors_per_cell()
    # Each head: output channel o = (o + 1) * input channel 0 at the centre tap only, so a
    # map that is 1 in one cell gives outputs only there, and channel o says which one it is.
    with torch.no_grad():
        for head in (*model.class_heads, *model.box_heads):
            head.weight.zero_()
            head.bias.zero_()
            head.weight[:, 0, 1, 1] = torch.arange(1.0, head.out_channels + 1)
    # One image per lit (layer, cell): the corners and one inner cell of every layer.
    lit = []
    for k, s in enumerate(sizes):
        cells = {(0, 0), (0, s - 1), (s - 1, 0), (s - 1, s - 1), (s // 2, (s - 1) // 3)}
        lit += [(k, i, j) for i, j in sorted(cells)]
    maps = [
        torch.zeros(len(lit), ch, s, s) for ch, s in zip(model.source_channels, sizes, strict=True)
    ]
    for b, (k, i, j) in enumerate(lit):
        maps[k][b, 0, i, j] = 1.0
    with torch.no_grad():
        out = model.heads(maps)
    anchors = anchors_for(net, 300, dtype=torch.float64)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    starts = [0]
    for s, a in zip(sizes, per_cell, strict=True):
        starts.append(starts[-1] + s * s * a)
    for b, (k, i, j) in enumerate(lit):
        rows = torch.nonzero(out.scores[b].abs().sum(1)).flatten()
        assert torch.equal(rows, torch.nonzero(out.offsets[b].abs().sum(1)).flatten())
        a = per_cell[k]
        first = starts[k] + (i * sizes[k] + j) * a  # cells row by row, then the cell's anchors
        assert rows.tolist() == list(range(first, first + a))
        assert first + a <= starts[k + 1]
        step = config.steps[k] if config.steps is not None else 1.0 / sizes[k]
        expected_centre = torch.tensor([(j + 0.5) * step, (i + 0.5) * step], dtype=torch.float64)
        torch.testing.assert_close(centres[rows], expected_centre.expand(a, 2))
        # Within the cell, output row r is the cell's r-th anchor: channels r*C .. r*C + C-1.
        want_scores = torch.arange(1.0, a * c + 1).view(a, c)
        want_offsets = torch.arange(1.0, a * 4 + 1).view(a, 4)
        torch.testing.assert_close(out.scores[b, rows], want_scores)
        torch.testing.assert_close(out.offsets[b, rows], want_offsets)


@pytest.mark.parametrize("net", NETWORKS)
def test_channels_last_gives_the_same_outputs(models: dict[str, SSD], net: str) -> None:
    model = models[net]
    x = torch.randn(1, 3, 300, 300)
    with torch.no_grad():
        ref = model(x)
        model.to(memory_format=torch.channels_last)
        try:
            out = model(x.contiguous(memory_format=torch.channels_last))
        finally:
            model.to(memory_format=torch.contiguous_format)
    # Another summation order: equal up to float32 rounding of the largest values.
    for got, want in ((out.scores, ref.scores), (out.offsets, ref.offsets)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


@pytest.mark.parametrize("net", NETWORKS)
def test_backward_reaches_every_parameter(net: str) -> None:
    torch.manual_seed(2)
    model = build_ssd(net, 3, 300).train()
    out = model(torch.randn(2 if net == "resnet-50" else 1, 3, 300, 300))
    (out.scores.square().mean() + out.offsets.square().mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().sum()) > 0, name


def test_vgg16_state_dict_maps_features_and_decimates_fc6_fc7() -> None:
    model = build_ssd("vgg-16", 20, 300)
    base = model.base
    assert isinstance(base, VGG16Reduced)
    state = synthetic(torchvision_vgg16_shapes())
    report = load_backbone_state_dict(model, state)
    assert report.missing == ("norm4_3.scale",)
    assert set(report.unused) == {"classifier.6.weight", "classifier.6.bias"}
    assert len(report.loaded) == 30
    names = [
        f"conv{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in range(1, n + 1)
    ]
    indices = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    for name, index in zip(names, indices, strict=True):
        conv = base.get_submodule(name)
        assert torch.equal(conv.weight, state[f"features.{index}.weight"])
        assert torch.equal(conv.bias, state[f"features.{index}.bias"])
    # fc6[k, c, u, v] = classifier.0[4k, c * 49 + 7 * 3u + 3v]; fc7[k, m] = classifier.3[4k, 4m].
    w6, w7 = state["classifier.0.weight"], state["classifier.3.weight"]
    assert base.fc6.weight.shape == (1024, 512, 3, 3)
    g = torch.Generator().manual_seed(3)
    for k, c_, u, v in torch.stack(
        [torch.randint(0, n, (200,), generator=g) for n in (1024, 512, 3, 3)], 1
    ).tolist():
        assert base.fc6.weight[k, c_, u, v] == w6[4 * k, c_ * 49 + 21 * u + 3 * v]
    for k, m in torch.randint(0, 1024, (200, 2), generator=g).tolist():
        assert base.fc7.weight[k, m, 0, 0] == w7[4 * k, 4 * m]
    assert torch.equal(base.fc6.weight, w6.view(4096, 512, 7, 7)[::4, :, ::3, ::3])
    assert torch.equal(base.fc6.bias, state["classifier.0.bias"][::4])
    assert torch.equal(base.fc7.bias, state["classifier.3.bias"][::4])
    assert torch.all(base.norm4_3.scale == 20.0)

    bad = dict(state)
    bad["classifier.0.weight"] = torch.zeros(4096, 9216)
    with pytest.raises(UserError, match=r"classifier\.0\.weight has shape.*vgg16-397923af\.pth"):
        load_backbone_state_dict(model, bad)
    del bad["features.28.bias"]
    with pytest.raises(UserError, match=r"features\.28\.bias is missing"):
        load_backbone_state_dict(model, bad)


def test_resnet50_state_dict_loads_by_name() -> None:
    model = build_ssd("resnet-50", 20, 300)
    for batches_tracked in (True, False):
        state = synthetic(torchvision_resnet50_shapes(batches_tracked))
        report = load_backbone_state_dict(model, state)
        assert report.missing == ()
        assert set(report.unused) == {"fc.weight", "fc.bias"}
        own = model.base.state_dict()
        assert set(report.loaded) == {k for k in state if not k.startswith("fc.")}
        for key, value in own.items():
            if key in state:
                assert torch.equal(value, state[key]), key
        assert torch.equal(
            own["layer1.0.downsample.0.weight"], state["layer1.0.downsample.0.weight"]
        )


def test_state_dict_of_the_other_network_is_a_user_error() -> None:
    resnet_state = synthetic(torchvision_resnet50_shapes(False))
    with pytest.raises(UserError, match=r"not of the expected layout.*vgg16-397923af\.pth"):
        load_backbone_state_dict(build_ssd("vgg-16", 1, 300), resnet_state)
    vgg_convs = {k: v for k, v in synthetic(torchvision_vgg16_shapes()).items() if "features" in k}
    with pytest.raises(UserError, match=r"conv1\.weight is missing.*resnet50-"):
        load_backbone_state_dict(build_ssd("resnet-50", 1, 300), vgg_convs)


def test_build_ssd_refuses_what_the_anchors_do_not_cover() -> None:
    with pytest.raises(UserError, match="448"):
        build_ssd("vgg-16", 20, 512)
    with pytest.raises(UserError, match="unknown base_network"):
        build_ssd("resnet-101", 20, 300)
    with pytest.raises(UserError, match="num_classes"):
        build_ssd("resnet-50", 0, 300)
    assert build_ssd("resnet-50", 20, 512).image_shape == 512
