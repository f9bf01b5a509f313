"""Tests for labkit.models.deformable: the reference against torchvision, the layer, the groups."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair
from torchvision.ops import deform_conv2d

from labkit.models.deformable import (
    DeformConv2d,
    bilinear_sample,
    deform_conv2d_reference,
    offset_param_groups,
)

F64 = torch.float64


def _out_size(size, k, stride, padding, dilation):
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def _case(
    *,
    n=2,
    c=4,
    h=7,
    w=6,
    c_out=6,
    kh=3,
    kw=3,
    stride=1,
    padding=1,
    dilation=1,
    offset_groups=1,
    groups=1,
    offset_scale=2.0,
    integer=False,
    device="cpu",
):
    """Random float64 leaf tensors for one deformable convolution."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    ho, wo = _out_size(h, kh, sh, ph, dh), _out_size(w, kw, sw, pw, dw)
    opts = dict(dtype=F64, device=device)
    offset = torch.randn(n, 2 * offset_groups * kh * kw, ho, wo, **opts) * offset_scale
    if integer:
        offset = offset.round()
    tensors = dict(
        input=torch.randn(n, c, h, w, **opts),
        offset=offset,
        weight=torch.randn(c_out, c // groups, kh, kw, **opts),
        bias=torch.randn(c_out, **opts),
        mask=torch.rand(n, offset_groups * kh * kw, ho, wo, **opts),
    )
    for t in tensors.values():
        t.requires_grad_()
    return tensors, dict(stride=stride, padding=padding, dilation=dilation)


def _assert_same_values_and_grads(tensors, opts, *, use_mask=True, use_bias=True):
    names = ["input", "offset", "weight"] + ["bias"] * use_bias + ["mask"] * use_mask
    args = dict(
        input=tensors["input"],
        offset=tensors["offset"],
        weight=tensors["weight"],
        bias=tensors["bias"] if use_bias else None,
        mask=tensors["mask"] if use_mask else None,
        **opts,
    )
    ours, theirs = deform_conv2d_reference(**args), deform_conv2d(**args)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    grad_out = torch.randn_like(theirs)
    grads_ours = torch.autograd.grad(ours, [tensors[k] for k in names], grad_out)
    grads_theirs = torch.autograd.grad(theirs, [tensors[k] for k in names], grad_out)
    for name, a, b in zip(names, grads_ours, grads_theirs):
        torch.testing.assert_close(
            a, b, atol=1e-4, rtol=1e-4, msg=lambda m, name=name: f"grad {name}: {m}"
        )


@pytest.mark.parametrize("use_mask", [True, False])
@pytest.mark.parametrize(
    "geometry",
    [
        dict(),
        dict(stride=2, padding=0),
        dict(stride=(1, 2), padding=(2, 0), dilation=(2, 1)),
        dict(kh=2, kw=3, padding=(1, 0)),
        dict(kh=1, kw=1, padding=0),
    ],
    ids=["3x3", "stride2", "mixed-pairs", "2x3-kernel", "1x1"],
)
def test_reference_matches_torchvision(geometry, use_mask):
    """Do the reference's values and gradients (input, offset, weight, bias, mask) equal
    torchvision's, with and without a mask, across strides, paddings, dilations and kernels?"""
    tensors, opts = _case(**geometry)
    _assert_same_values_and_grads(tensors, opts, use_mask=use_mask)


@pytest.mark.parametrize(
    "case",
    [
        dict(offset_scale=6.0),
        dict(integer=True, offset_scale=2.0),
        dict(offset_groups=2),
        dict(offset_groups=4, groups=2, c_out=4),
        dict(groups=2, offset_scale=1.0),
    ],
    ids=["far-outside", "integer", "offset-groups", "both-groups", "weight-groups"],
)
def test_reference_matches_torchvision_edge_cases(case):
    """Does the reference equal torchvision where samples leave the image, land on whole
    pixels (and the image border), and with offset groups and weight groups?"""
    tensors, opts = _case(**case)
    _assert_same_values_and_grads(tensors, opts, use_mask=True)


def test_reference_matches_torchvision_without_bias():
    """Does the reference equal torchvision when there is no bias?"""
    tensors, opts = _case(stride=2)
    _assert_same_values_and_grads(tensors, opts, use_bias=False)


def test_reference_hits_border_exactly():
    """Do offsets that put samples exactly on -1, 0, H-1 and H (where torchvision cuts off
    and gradients are one-sided) give torchvision's values and gradients?"""
    tensors, opts = _case(n=1, c=2, h=4, w=4, kh=1, kw=1, padding=0, c_out=3)
    grid = torch.arange(4, dtype=F64)
    targets = torch.tensor([-1.0, 0.0, 3.0, 4.0], dtype=F64)  # one target per output column
    with torch.no_grad():
        tensors["offset"][0, 0] = targets.view(4, 1) - grid.view(4, 1)  # rows land on targets
        tensors["offset"][0, 1] = targets.view(1, 4) - grid.view(1, 4)  # columns too
    _assert_same_values_and_grads(tensors, opts)


@pytest.mark.parametrize(
    "opts",
    [
        dict(stride=1, padding=1, dilation=1, groups=1),
        dict(stride=2, padding=2, dilation=2, groups=2),
    ],
)
def test_zero_offsets_equal_conv2d(opts):
    """With zero offsets and a mask of ones, is the reference a plain F.conv2d?"""
    x = torch.randn(2, 4, 9, 8, dtype=F64)
    w = torch.randn(6, 4 // opts["groups"], 3, 3, dtype=F64)
    b = torch.randn(6, dtype=F64)
    expected = F.conv2d(x, w, b, **opts)
    offset = torch.zeros(2, 18, *expected.shape[-2:], dtype=F64)
    mask = torch.ones(2, 9, *expected.shape[-2:], dtype=F64)
    conv_opts = {k: v for k, v in opts.items() if k != "groups"}
    torch.testing.assert_close(
        deform_conv2d_reference(x, offset, w, b, mask=mask, **conv_opts), expected
    )
    torch.testing.assert_close(deform_conv2d_reference(x, offset, w, b, **conv_opts), expected)


def test_integer_offsets_equal_shifted_conv():
    """Does a whole-pixel offset per kernel tap equal summing 1x1 convs over shifted copies
    of the zero-padded input, including shifts that leave the image?"""
    n, c, h, w, c_out, pad, dil = 2, 3, 6, 7, 4, 1, 2
    x, weight = torch.randn(n, c, h, w, dtype=F64), torch.randn(c_out, c, 3, 3, dtype=F64)
    shifts = torch.randint(-4, 5, (9, 2))  # (K, 2) a (Δy, Δx) per tap, shared by all pixels
    ho, wo = _out_size(h, 3, 1, pad, dil), _out_size(w, 3, 1, pad, dil)
    margin = 10
    big = F.pad(x, (margin,) * 4)  # zeros wide enough for every shifted window
    expected = torch.zeros(n, c_out, ho, wo, dtype=F64)
    for k, (dy, dx) in enumerate(shifts.tolist()):
        i, j = divmod(k, 3)
        top, left = margin - pad + i * dil + dy, margin - pad + j * dil + dx
        window = big[:, :, top : top + ho, left : left + wo]
        expected += torch.einsum("oc,nchw->nohw", weight[:, :, i, j], window)
    offset = shifts.to(F64).view(1, 18, 1, 1).expand(n, 18, ho, wo)
    torch.testing.assert_close(
        deform_conv2d_reference(x, offset, weight, padding=pad, dilation=dil), expected
    )


def test_bilinear_sample_matches_grid_sample():
    """Does bilinear_sample equal F.grid_sample(align_corners=True, zeros) at random points,
    many outside the image, with matching gradients for the image and the coordinates?"""
    img = torch.randn(2, 3, 5, 7, dtype=F64, requires_grad=True)
    y = (torch.rand(2, 4, 6, dtype=F64) * 9 - 2).requires_grad_()
    x = (torch.rand(2, 4, 6, dtype=F64) * 11 - 2).requires_grad_()
    ours = bilinear_sample(img, y, x)  # (N, C, 4, 6)
    grid = torch.stack([2 * x / (7 - 1) - 1, 2 * y / (5 - 1) - 1], dim=-1)  # (N, 4, 6, 2)
    theirs = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    torch.testing.assert_close(ours, theirs)
    g = torch.randn_like(ours)
    for a, b in zip(
        torch.autograd.grad(ours, (img, y, x), g), torch.autograd.grad(theirs, (img, y, x), g)
    ):
        torch.testing.assert_close(a, b)


def test_bilinear_sample_at_pixel_centres_reads_pixels():
    """At whole-pixel coordinates, does bilinear_sample read the pixels, and zero outside?"""
    img = torch.arange(12.0).view(1, 1, 3, 4)
    y, x = torch.tensor([[0.0, 2.0, 1.0, -1.0, 3.0]]), torch.tensor([[0.0, 3.0, 2.0, 0.0, 1.0]])
    out = bilinear_sample(img, y, x)
    assert out.tolist() == [[[0.0, 11.0, 6.0, 0.0, 0.0]]]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(offset=torch.zeros(1, 17, 4, 4)),
            "offset should have 2*offset_groups*kh*kw channels, a multiple of 2*3*3 = 18; "
            "got offset.shape[1]=17",
        ),
        (dict(offset=torch.zeros(1, 18, 3, 4)), "got offset.shape=[1, 18, 3, 4]"),
        (dict(offset=torch.zeros(1, 36, 4, 4)), "offset_groups=2 (from offset.shape[1]=36)"),
        (
            dict(mask=torch.zeros(1, 8, 4, 4)),
            "mask should have shape [N, offset_groups*kh*kw, Ho, Wo] = [1, 9, 4, 4] "
            "(offset_groups*kh*kw = 9 channels); got mask.shape=[1, 8, 4, 4]",
        ),
        (dict(mask=torch.zeros(1, 9, 4, 5)), "got mask.shape=[1, 9, 4, 5]"),
        (dict(bias=torch.zeros(3)), "bias should have shape [2]; got bias.shape=[3]"),
        (dict(weight=torch.zeros(2, 3, 3, 3, 3)), "expected weight to be 4-D"),
    ],
)
def test_reference_shape_errors(kwargs, message):
    """Do wrong offset, mask, bias and weight shapes raise a ValueError naming what was
    expected and what came?"""
    args = (
        dict(
            input=torch.zeros(1, 3, 4, 4),
            offset=torch.zeros(1, 18, 4, 4),
            weight=torch.zeros(2, 3, 3, 3),
            padding=1,
        )
        | kwargs
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        deform_conv2d_reference(**args)


def test_bilinear_sample_shape_error():
    """Do mismatched coordinate shapes raise a ValueError that shows both shapes?"""
    with pytest.raises(ValueError, match=r"got y \[1, 2\] and x \[1, 3\]"):
        bilinear_sample(torch.zeros(1, 1, 3, 3), torch.zeros(1, 2), torch.zeros(1, 3))


@pytest.mark.parametrize("modulated", [False, True])
def test_layer_starts_at_zero_offsets_and_half_mask(modulated):
    """Does a new layer predict zero offsets (and a mask of 0.5) and record them with the
    shapes [N, 2kk, Ho, Wo] and [N, kk, Ho, Wo]?"""
    layer = DeformConv2d(3, 5, 3, stride=2, padding=1, modulated=modulated)
    out = layer(torch.randn(2, 3, 9, 9))
    assert out.shape == (2, 5, 5, 5)
    assert layer.last_offset.shape == (2, 18, 5, 5)
    assert torch.equal(layer.last_offset, torch.zeros(2, 18, 5, 5))
    if modulated:
        assert layer.last_mask.shape == (2, 9, 5, 5)
        assert torch.equal(layer.last_mask, torch.full((2, 9, 5, 5), 0.5))
    else:
        assert layer.last_mask is None
    assert not layer.last_offset.requires_grad


def test_layer_record_flag():
    """With record = False, does forward leave last_offset and last_mask unset?"""
    layer = DeformConv2d(2, 2, modulated=True)
    layer.record = False
    layer(torch.randn(1, 2, 5, 5))
    assert layer.last_offset is None and layer.last_mask is None


@pytest.mark.parametrize("modulated", [False, True])
def test_layer_matches_reference_with_trained_branch(modulated):
    """After the offset branch moves off zero, does the layer equal the reference fed with
    the offsets and mask it recorded (so the channel split is torchvision's layout)?"""
    layer = DeformConv2d(4, 6, (3, 2), padding=(1, 0), groups=2, modulated=modulated).double()
    with torch.no_grad():
        layer.offset_conv.weight.normal_(std=0.5)
        layer.offset_conv.bias.normal_()
    x = torch.randn(2, 4, 6, 7, dtype=F64)
    out = layer(x)
    expected = deform_conv2d_reference(
        x, layer.last_offset, layer.weight, layer.bias, padding=(1, 0), mask=layer.last_mask
    )
    torch.testing.assert_close(out, expected)
    if modulated:  # 2K = 12 offset channels first, then the K mask logits
        torch.testing.assert_close(layer.last_mask, torch.sigmoid(layer.offset_conv(x)[:, 12:]))


@pytest.mark.parametrize(
    "opts",
    [
        dict(kernel_size=3, padding=1),
        dict(kernel_size=3, stride=2, padding=2, dilation=2, groups=2, bias=False),
        dict(kernel_size=(1, 3), padding=(0, 1)),
    ],
)
@pytest.mark.parametrize("modulated", [False, True])
def test_from_conv_starts_as_the_conv(opts, modulated):
    """Does from_conv give conv(x) for v1, and 0.5 * (conv(x) - bias) + bias for v2 (the
    DCN v2 mask of 0.5), with the conv's weights copied?"""
    conv = nn.Conv2d(4, 6, **opts).double()
    layer = DeformConv2d.from_conv(conv, modulated=modulated)
    x = torch.randn(2, 4, 8, 9, dtype=F64)
    expected = conv(x)
    if modulated:
        bias = 0 if conv.bias is None else conv.bias.view(1, -1, 1, 1)
        expected = 0.5 * (expected - bias) + bias
    torch.testing.assert_close(layer(x), expected)
    assert layer.weight.data_ptr() != conv.weight.data_ptr()
    assert layer.offset_conv.weight.dtype == F64


def test_from_conv_rejects_non_zero_padding():
    """Does from_conv refuse a reflect-padded conv with a message naming the padding mode?"""
    with pytest.raises(ValueError, match="padding_mode='reflect'"):
        DeformConv2d.from_conv(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"))


@pytest.mark.parametrize("modulated", [False, True])
def test_backward_reaches_offset_branch(modulated):
    """Does the loss gradient reach the offset (and mask) branch from the zero start?"""
    layer = DeformConv2d(3, 4, modulated=modulated)
    layer(torch.randn(2, 3, 6, 6)).square().sum().backward()
    grad = layer.offset_conv.weight.grad  # (2K [+ K], C_in, 3, 3)
    assert grad[:18].abs().sum() > 0
    if modulated:
        assert grad[18:].abs().sum() > 0


@pytest.mark.parametrize("c_in, k, modulated", [(3, 3, False), (16, 3, True), (5, 1, True)])
def test_offset_branch_parameter_count(c_in, k, modulated):
    """Does the offset branch add (2 or 3)·k²·(c_in·k² + 1) parameters, the formula of a
    k×k conv from c_in to (2 or 3)·k² channels with bias?"""
    layer = DeformConv2d(c_in, 7, k, padding=k // 2, modulated=modulated)
    per_tap = 3 if modulated else 2
    expected = per_tap * k * k * (c_in * k * k + 1)
    assert sum(p.numel() for p in layer.offset_parameters()) == expected
    plain = nn.Conv2d(c_in, 7, k, padding=k // 2)
    assert sum(p.numel() for p in layer.parameters()) == (
        expected + sum(p.numel() for p in plain.parameters())
    )


def _model():
    shared = DeformConv2d(4, 4, modulated=True, offset_lr_mult=0.5)
    branch_sharer = DeformConv2d(4, 4, offset_lr_mult=0.3)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        DeformConv2d(4, 4),
        shared,
        shared,
        branch_sharer,
        nn.Conv2d(4, 2, 1),
    )
    branch_sharer.offset_conv = model[2].offset_conv  # one offset branch in two layers
    model[0].bias.requires_grad_(False)  # a frozen parameter stays out of every group
    return model


def test_offset_param_groups_cover_each_trainable_parameter_once():
    """Does every trainable parameter appear in exactly one group (shared layers and shared
    offset branches included), frozen ones in none, offset branches with lr * mult (the
    first owner's) and the rest with lr?"""
    model = _model()
    groups = offset_param_groups(model, lr=0.01, weight_decay=1e-4)
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(ids) == len(set(ids)) and set(ids) == trainable
    offset_ids = {id(p) for m in (model[2], model[3]) for p in m.offset_conv.parameters()}
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    for m, mult in ((model[2], 0.1), (model[3], 0.5)):
        for p in m.offset_conv.parameters():
            assert lr_of[id(p)] == pytest.approx(0.01 * mult)
    assert all(lr == 0.01 for i, lr in lr_of.items() if i not in offset_ids)
    assert all(g["weight_decay"] == 1e-4 for g in groups)
    torch.optim.SGD(groups, lr=0.01)  # accepted by an optimizer as it is


def test_offset_param_groups_override_and_plain_model():
    """Does offset_lr_mult override every layer's own factor, and does a model without
    deformable layers get one group at lr?"""
    groups = offset_param_groups(_model(), lr=1.0, offset_lr_mult=0.2)
    assert sorted(g["lr"] for g in groups) == pytest.approx([0.2, 1.0])
    plain = nn.Conv2d(2, 2, 3)
    (group,) = offset_param_groups(plain, lr=0.1)
    assert group["lr"] == 0.1 and len(group["params"]) == 2


@pytest.mark.gpu
def test_reference_matches_torchvision_on_cuda():
    """On a CUDA device, does the reference equal torchvision's CUDA kernel?"""
    tensors, opts = _case(offset_groups=2, stride=2, device="cuda")
    _assert_same_values_and_grads(tensors, opts)
