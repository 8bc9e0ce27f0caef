"""SSD anchors (sagedock.containers.object_detection.anchors) against a plain-loop rendering of
MultiBoxPrior: cells row by row, per cell the ratio-1 boxes of every size then the other ratios
with the first size; counts from the reference's feature maps and per-cell boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagedock.containers.object_detection.anchors import (
    RESNET50,
    VGG16_REDUCED_300,
    anchor_count,
    anchors_for,
    config_for,
    feature_map_sizes,
    generate_anchors,
    multibox_prior,
)


def prior_reference(
    h: int,
    w: int,
    sizes: tuple[float, ...],
    ratios: tuple[float, ...],
    step: tuple[float, float] | None,
) -> np.ndarray:
    step_y, step_x = step if step is not None else (1.0 / h, 1.0 / w)
    out = []
    for i in range(h):
        cy = (i + 0.5) * step_y
        for j in range(w):
            cx = (j + 0.5) * step_x
            shapes = [(s * h / w, s) for s in sizes]
            shapes += [
                (sizes[0] * h / w * math.sqrt(r), sizes[0] / math.sqrt(r)) for r in ratios[1:]
            ]
            for bw, bh in shapes:
                out.append([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
    return np.array(out, dtype=np.float64).reshape(-1, 4)


def test_feature_maps_at_300_are_the_reference_shapes() -> None:
    assert feature_map_sizes("vgg-16", 300) == (38, 19, 10, 5, 3, 1)
    assert feature_map_sizes("resnet-50", 300) == (19, 10, 5, 3, 2, 1)


def test_anchor_counts_at_300_follow_the_formula() -> None:
    # sum over layers of H * W * (len(sizes) + len(ratios) - 1)
    assert VGG16_REDUCED_300.anchors_per_cell() == (4, 6, 6, 6, 4, 4)
    assert RESNET50.anchors_per_cell() == (4, 6, 6, 6, 4, 4)
    vgg = 38 * 38 * 4 + 19 * 19 * 6 + 10 * 10 * 6 + 5 * 5 * 6 + 3 * 3 * 4 + 1 * 4
    resnet = 19 * 19 * 4 + 10 * 10 * 6 + 5 * 5 * 6 + 3 * 3 * 6 + 2 * 2 * 4 + 1 * 4
    assert vgg == 8732
    assert resnet == 2268
    assert anchor_count("vgg-16", 300) == 8732 == anchors_for("vgg-16", 300).shape[0]
    assert anchor_count("resnet-50", 300) == 2268 == anchors_for("resnet-50", 300).shape[0]


@pytest.mark.parametrize("network", ["vgg-16", "resnet-50"])
def test_anchors_equal_the_plain_loop_multibox_prior(network: str) -> None:
    config = config_for(network, 300)
    maps = feature_map_sizes(network, 300)
    expected = []
    for k, s in enumerate(maps):
        step = None if config.steps is None else (config.steps[k], config.steps[k])
        expected.append(prior_reference(s, s, config.sizes[k], config.ratios[k], step))
    got = anchors_for(network, 300, dtype=torch.float64).numpy()
    np.testing.assert_allclose(got, np.concatenate(expected), rtol=0, atol=1e-12)


def test_first_vgg_cell_holds_size_s_then_s_prime_then_ratios() -> None:
    a = anchors_for("vgg-16", 300, dtype=torch.float64)[:4].numpy()
    c = 0.5 * 8 / 300
    half = np.array([0.1, 0.141, 0.1 * math.sqrt(2), 0.1 / math.sqrt(2)]) / 2
    half_h = np.array([0.1, 0.141, 0.1 / math.sqrt(2), 0.1 * math.sqrt(2)]) / 2
    expected = np.stack([c - half, c - half_h, c + half, c + half_h], 1)
    np.testing.assert_allclose(a, expected, atol=1e-12)


def test_last_vgg_layer_is_centred_and_unclipped_by_default() -> None:
    a = anchors_for("vgg-16", 300, dtype=torch.float64)
    last = a[-4:]
    centres = (last[:, :2] + last[:, 2:]) / 2
    torch.testing.assert_close(centres, torch.full_like(centres, 0.5))
    assert float(a.min()) < 0 and float(a.max()) > 1
    clipped = anchors_for("vgg-16", 300, clip=True)
    assert float(clipped.min()) >= 0 and float(clipped.max()) <= 1


def test_resnet_steps_are_one_over_the_feature_size() -> None:
    a = anchors_for("resnet-50", 300, dtype=torch.float64)
    first = a[0]
    torch.testing.assert_close((first[:2] + first[2:]) / 2, torch.full((2,), 0.5 / 19).double())


def test_unsupported_configurations_are_refused() -> None:
    with pytest.raises(ValueError, match="448"):
        anchors_for("vgg-16", 512)
    with pytest.raises(ValueError, match="base_network"):
        anchors_for("inception", 300)
    with pytest.raises(ValueError, match="feature maps"):
        generate_anchors(VGG16_REDUCED_300, (38, 19))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 6),
    w=st.integers(1, 6),
    sizes=st.lists(st.floats(0.05, 1.0), min_size=1, max_size=3),
    ratios=st.lists(st.floats(0.2, 5.0), min_size=0, max_size=4),
    step=st.one_of(st.none(), st.tuples(st.floats(0.01, 0.5), st.floats(0.01, 0.5))),
)
def test_multibox_prior_matches_the_loop_on_any_layer(
    h: int,
    w: int,
    sizes: list[float],
    ratios: list[float],
    step: tuple[float, float] | None,
) -> None:
    r = (1.0, *ratios)
    got = multibox_prior(h, w, tuple(sizes), r, step, dtype=torch.float64).numpy()
    np.testing.assert_allclose(got, prior_reference(h, w, tuple(sizes), r, step), atol=1e-12)
