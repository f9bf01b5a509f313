"""Tests for labkit.models.blocks: the conv → BN → ReLU block against torch.nn.functional."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from labkit.models.blocks import conv_bn_relu


@pytest.mark.parametrize(
    ("kernel", "stride", "dilation"), [(3, 1, 1), (1, 1, 1), (3, 1, 6), (5, 1, 2), (3, 2, 1)]
)
def test_matches_functional_ops(kernel, stride, dilation):
    """Is the block conv2d (same padding, no bias) → batch norm → ReLU, sized ceil(H / stride)?"""
    torch.manual_seed(0)
    block = conv_bn_relu(3, 4, kernel, stride=stride, dilation=dilation)
    bn = block[1]
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.2, 0.2)
    block.eval()
    x = torch.randn(2, 3, 9, 14)
    conv = block[0]
    assert conv.bias is None
    expected = F.relu(
        F.batch_norm(
            F.conv2d(
                x, conv.weight, stride=stride, padding=dilation * (kernel // 2), dilation=dilation
            ),
            bn.running_mean,
            bn.running_var,
            bn.weight,
            bn.bias,
            training=False,
            eps=bn.eps,
        )
    )
    out = block(x)
    assert out.shape == (2, 4, math.ceil(9 / stride), math.ceil(14 / stride))
    torch.testing.assert_close(out, expected)


def test_splats_into_a_flat_sequential():
    """Do two splatted blocks lay out six layers with torchvision-style keys 0..5?"""
    flat = torch.nn.Sequential(*conv_bn_relu(2, 3), *conv_bn_relu(3, 3))
    assert [k.split(".")[0] for k in flat.state_dict()][:1] == ["0"]
    assert {k.split(".")[0] for k in flat.state_dict()} == {"0", "1", "3", "4"}


def test_even_kernel_is_refused():
    """Does an even kernel, which has no same padding, get a message naming the kernel?"""
    with pytest.raises(ValueError, match="odd kernel_size.*4"):
        conv_bn_relu(3, 4, 4)
