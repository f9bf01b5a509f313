"""Do the captured offsets and the unrolled sampling points say where the network looked?

The oracle for the sampling points is torchvision's own deformable convolution: run on a
map of its own coordinates (channel 0 holds each pixel's row, channel 1 its column) with a
one-hot kernel for tap ``k``, ``deform_conv2d`` returns, at every output pixel, the position
where tap ``k`` sampled, because bilinear interpolation of a linear function is exact. Run
twice, the second layer on the first one's output, it returns the position reached through
both layers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn
from torchvision.ops import deform_conv2d

from labkit.models import DeformConv2d, build_model
from labkit.viz.offsets import (
    LayerOffsets,
    capture_offsets,
    deformable_layer_names,
    plot_sampling_locations,
    sampling_locations,
)


def _coordinates(h: int, w: int) -> torch.Tensor:
    """Tensor[1, 3, H, W]: rows, columns and ones."""
    rows, cols = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    return torch.stack([rows, cols, torch.ones_like(rows)])[None]


def _tap(k: int, c: int = 3) -> torch.Tensor:
    """A 3×3 kernel that copies channel i of tap k to output channel i: Tensor[C, C, 3, 3]."""
    weight = torch.zeros(c, c, 3, 3, dtype=torch.float64)
    for i in range(c):
        weight[i, i, k // 3, k % 3] = 1.0
    return weight


def _layer(name, offset, mask, *, stride=1, padding=1, dilation=1, size):
    return LayerOffsets(
        name=name,
        offset=offset[0].float(),
        mask=None if mask is None else mask[0].float(),
        kernel_size=(3, 3),
        stride=(stride, stride),
        padding=(padding, padding),
        dilation=(dilation, dilation),
        input_size=size,
        image_size=size,
    )


@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (1, 2)])
def test_one_layer_matches_torchvision_sampling(stride, dilation):
    """Are one layer's nine points where torchvision's deform_conv2d samples, mask included?"""
    size, padding = (20, 18), dilation
    coords = _coordinates(*size)
    out_h = (size[0] + 2 * padding - 2 * dilation - 1) // stride + 1
    out_w = (size[1] + 2 * padding - 2 * dilation - 1) // stride + 1
    offset = 0.8 * torch.randn(1, 18, out_h, out_w, dtype=torch.float64)
    mask = torch.rand(1, 9, out_h, out_w, dtype=torch.float64)
    layer = _layer(
        "only", offset, mask, stride=stride, padding=padding, dilation=dilation, size=size
    )
    cell = (out_h // 2, out_w // 2)
    # the output pixel nearest to the image position of this cell's centre
    pixel = tuple((c + 0.5) * s / o - 0.5 for c, s, o in zip(cell, size, (out_h, out_w)))
    got = sampling_locations([layer], pixel)
    assert got.cell == cell and got.points.shape == (9, 2)
    for k in range(9):
        seen = deform_conv2d(
            coords, offset, _tap(k), stride=stride, padding=padding, dilation=dilation, mask=mask
        )[0, :, cell[0], cell[1]]
        torch.testing.assert_close(got.points[k].double(), seen[:2] / seen[2], atol=1e-4, rtol=0)
        torch.testing.assert_close(got.weights[k].double(), seen[2], atol=1e-5, rtol=0)


def test_two_stacked_layers_match_torchvision_twice():
    """Are the 81 points of two stacked layers what two deform_conv2d calls reach?"""
    size = (16, 16)
    coords = _coordinates(*size)
    # smooth offsets, so that fractional positions meet well-defined interpolated offsets
    off1 = 0.4 * torch.randn(1, 18, 4, 4, dtype=torch.float64)
    off1 = nn.functional.interpolate(off1, size=size, mode="bilinear", align_corners=True)
    off2 = 0.4 * torch.randn(1, 18, *size, dtype=torch.float64)
    mask1 = torch.rand(1, 9, *size, dtype=torch.float64)
    mask2 = torch.rand(1, 9, *size, dtype=torch.float64)
    captured = [_layer("first", off1, mask1, size=size), _layer("second", off2, mask2, size=size)]
    got = sampling_locations(captured, (8, 7))
    assert got.points.shape == (81, 2) and [p.shape[0] for p in got.levels] == [9, 81]
    for k2 in range(9):  # tap of the top layer
        for k1 in range(9):  # tap of the layer below
            below = deform_conv2d(coords, off1, _tap(k1), padding=1, mask=mask1)
            # the third channel carried the first mask; the second multiplies it in
            seen = deform_conv2d(below, off2, _tap(k2), padding=1, mask=mask2)[0, :, 8, 7]
            position = deform_conv2d(
                deform_conv2d(coords, off1, _tap(k1), padding=1), off2, _tap(k2), padding=1
            )[0, :2, 8, 7]
            i = k2 * 9 + k1
            torch.testing.assert_close(got.points[i].double(), position, atol=1e-4, rtol=0)
            torch.testing.assert_close(got.weights[i].double(), seen[2], atol=1e-4, rtol=0)


def test_zero_offsets_give_the_regular_dilated_grid():
    """With untrained (zero) offsets, do three stacked dilated layers reach a regular grid?"""
    size, d = (24, 24), 2
    zero = torch.zeros(1, 18, *size)
    captured = [_layer(f"l{i}", zero, None, padding=d, dilation=d, size=size) for i in range(3)]
    got = sampling_locations(captured, (11, 12))
    assert got.points.shape == (729, 2) and torch.all(got.weights == 1)
    # every path is a sum of three taps in {-d, 0, d}²: 7×7 places with multiplicities
    expected = {}
    for a in range(9):
        for b in range(9):
            for c in range(9):
                y = 11 + d * (a // 3 - 1) + d * (b // 3 - 1) + d * (c // 3 - 1)
                x = 12 + d * (a % 3 - 1) + d * (b % 3 - 1) + d * (c % 3 - 1)
                expected[(y, x)] = expected.get((y, x), 0) + 1
    seen = {}
    for y, x in got.points.round().long().tolist():
        seen[(y, x)] = seen.get((y, x), 0) + 1
    assert seen == expected
    torch.testing.assert_close(got.points, got.points.round())


def _constant_model(shift_1, shift_2, mask_logit=None):
    """Two stacked 3×3 deformable layers whose offsets (and masks) are constants."""
    modulated = mask_logit is not None
    model = nn.Sequential(
        nn.Conv2d(3, 4, 1),
        DeformConv2d(4, 4, modulated=modulated),
        nn.ReLU(),
        DeformConv2d(4, 2, modulated=modulated),
    )
    with torch.no_grad():
        for layer, shift in ((model[1], shift_1), (model[3], shift_2)):
            layer.offset_conv.bias[:18] = torch.tensor(shift, dtype=torch.float32).repeat(9)
            if modulated:
                layer.offset_conv.bias[18:] = mask_logit
    return model


def test_capture_and_unroll_a_hand_computed_model():
    """Do known constant offsets land where a hand count puts them, with the v2 mask product?"""
    model = _constant_model((1.0, 0.0), (0.0, 2.0), mask_logit=math.log(0.8 / 0.2))
    captured = capture_offsets(model, torch.randn(3, 12, 14))
    assert deformable_layer_names(model) == ["1", "3"]
    assert [c.name for c in captured] == ["1", "3"] and captured[0].version == "v2"
    assert captured[0].input_size == (12, 14) and captured[1].output_size == (12, 14)
    got = sampling_locations(captured, (5, 6))
    expected = [
        (5 + (k2 // 3 - 1) + 0.0 + (k1 // 3 - 1) + 1.0, 6 + (k2 % 3 - 1) + 2.0 + (k1 % 3 - 1) + 0.0)
        for k2 in range(9)
        for k1 in range(9)
    ]
    torch.testing.assert_close(got.points, torch.tensor(expected))
    torch.testing.assert_close(got.weights, torch.full((81,), 0.64))
    top_only = sampling_locations(captured, (5, 6), layers=[-1])
    torch.testing.assert_close(
        top_only.points, torch.tensor([(5 + k // 3 - 1, 6 + k % 3 - 1 + 2.0) for k in range(9)])
    )
    assert top_only.layers == ["3"] and got.center == (5.0, 6.0)


def test_capture_leaves_the_model_as_it_was():
    """Does capturing keep the model's training mode and the layers' record flags?"""
    model = _constant_model((0.5, 0.5), (0.0, 0.0))
    model.train()
    model[1].record = False
    captured = capture_offsets(model, torch.randn(1, 3, 10, 10))
    assert model.training and model[1].record is False and model[3].record is True
    torch.testing.assert_close(captured[0].offset, torch.full((18, 10, 10), 0.5))


def test_a_plain_conv_is_captured_as_the_regular_grid():
    """Named plain convs give zero offsets, so a plain model shows the grid it samples?"""
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=2, dilation=2)
    )
    captured = capture_offsets(model, torch.randn(3, 9, 9), names=["0", "2"])
    assert [c.version for c in captured] == ["conv", "conv"]
    points = sampling_locations(captured, (4, 4)).points
    assert points[:, 0].min() == 4 - 3 and points[:, 0].max() == 4 + 3


@pytest.mark.parametrize(
    "name, options",
    [
        ("resnet18_transfer", {"deformable": "v1"}),
        ("deeplabv3_resnet50", {"deformable": "v2", "output_stride": 16}),
    ],
)
def test_registry_models_give_their_deformable_stage(name, options):
    """Do build_model's deformable models give every deformable layer and K^L points?"""
    model = build_model(name, num_classes=3, **options)
    image = torch.randn(3, 64, 64)
    captured = capture_offsets(model, image)
    assert len(captured) == len(deformable_layer_names(model)) >= 2
    assert all(c.version == options["deformable"] for c in captured)
    got = sampling_locations(captured, (30, 33), layers=[-2, -1])
    assert got.points.shape == (81, 2) and torch.isfinite(got.points).all()
    # stage 4 runs at 1/16 or 1/32 of the image: the points spread over several image pixels
    assert captured[-1].output_step[0] >= 16
    assert float(got.points[:, 0].max() - got.points[:, 0].min()) >= captured[-1].output_step[0]


def test_bad_inputs_get_clear_messages():
    """Do a model without deformable layers, a batch and a bad layer choice say what to do?"""
    with pytest.raises(ValueError, match="has no deformable convolution.*deformable='v1'"):
        capture_offsets(build_model("baseline_fcn", num_classes=3), torch.randn(3, 32, 32))
    model = _constant_model((0.0, 0.0), (0.0, 0.0))
    with pytest.raises(
        ValueError, match=r"expected one image of shape \[3, H, W\].*\[2, 3, 8, 8\]"
    ):
        capture_offsets(model, torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="no convolution named 'nope'"):
        capture_offsets(model, torch.randn(3, 8, 8), names=["nope"])
    captured = capture_offsets(model, torch.randn(3, 8, 8))
    with pytest.raises(ValueError, match="out of range for 2 captured layers"):
        sampling_locations(captured, (1, 1), layers=[2])
    with pytest.raises(ValueError, match="no captured layer named 'x'"):
        sampling_locations(captured, (1, 1), layers=["x"])


@pytest.mark.parametrize("modulation", ["size", "opacity"])
def test_plot_draws_every_point_scaled_by_its_mask(modulation):
    """Does the figure hold one dot per point, the largest mask product the largest/most opaque?"""
    model = _constant_model((0.3, -0.2), (0.1, 0.4), mask_logit=0.0)
    with torch.no_grad():  # a mask that differs by tap
        model[3].offset_conv.bias[18:] = torch.linspace(-3, 3, 9)
    image = torch.rand(3, 12, 12)
    captured = capture_offsets(model, image)
    loc = sampling_locations(captured, (6, 6))
    fig = plot_sampling_locations(
        image, loc, modulation=modulation, mask=torch.zeros(12, 12, dtype=torch.long), title="v2"
    )
    assert isinstance(fig, Figure)
    dots = fig.axes[0].collections[0]
    np.testing.assert_allclose(dots.get_offsets(), loc.points.flip(-1).numpy(), atol=1e-6)
    scale = dots.get_sizes() if modulation == "size" else dots.get_facecolors()[:, 3]
    assert np.argmax(scale) == int(loc.weights.argmax()) and scale.min() < 0.5 * scale.max()
    with pytest.raises(ValueError, match="modulation"):
        plot_sampling_locations(image, loc, modulation="colour")
