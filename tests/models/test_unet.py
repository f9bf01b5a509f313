"""Tests for labkit.models.unet."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from labkit.models import count_parameters
from labkit.models.unet import UNet, unet


def _double(cin: int, cout: int) -> int:
    """Two bias-free 3×3 convs, each with a BatchNorm (weight and bias)."""
    return 9 * cin * cout + 2 * cout + 9 * cout * cout + 2 * cout


def _unet_params(num_classes: int, depth: int, base: int, upsample: str) -> int:
    """The U-Net's parameter count, by hand from the architecture."""
    w = [base * 2**i for i in range(depth + 1)]
    total = _double(3, w[0]) + sum(_double(w[i - 1], w[i]) for i in range(1, depth + 1))
    for i in range(depth, 0, -1):
        kernel = 4 if upsample == "transposed" else 1  # 2×2 transposed conv or 1×1 conv
        total += kernel * w[i] * w[i - 1] + w[i - 1]
        total += _double(2 * w[i - 1], w[i - 1])
    return total + w[0] * num_classes + num_classes


@pytest.mark.parametrize("upsample", ["transposed", "bilinear"])
@pytest.mark.parametrize("depth, base", [(4, 32), (2, 8), (5, 4)])
def test_parameter_count_matches_the_architecture(upsample, depth, base):
    """Does the U-Net have exactly the parameters of its documented layers?"""
    model = unet(num_classes=5, depth=depth, base_width=base, upsample=upsample)
    assert count_parameters(model) == _unet_params(5, depth, base, upsample)


@pytest.mark.parametrize("upsample", ["transposed", "bilinear"])
@pytest.mark.parametrize("size", [(97, 130), (64, 64), (33, 47)])
def test_output_size_for_odd_inputs(upsample, size):
    """Are the logits at the input size in both upsampling modes, odd sizes included?"""
    model = UNet(3, depth=4, base_width=8, upsample=upsample).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 3, *size)


def test_channel_layout_doubles_per_level():
    """Do the levels have base_width·2^i channels, and is the bottleneck at 1/2^depth?"""
    model = UNet(2, depth=3, base_width=16)
    assert [block[0].out_channels for block in model.down] == [32, 64, 128]
    seen = {}
    model.down[-1].register_forward_hook(lambda m, a, out: seen.update(shape=out.shape))
    model.eval()(torch.randn(1, 3, 64, 80))
    assert seen["shape"] == (1, 128, 8, 10)


def test_skip_connection_concatenates_the_encoder_features():
    """Does the last decoder block see 2·base_width channels, half of them the first
    level's encoder features (the skip)?"""
    model = UNet(2, depth=2, base_width=8).eval()
    seen = {}
    model.up[-1].conv.register_forward_hook(lambda m, a, out: seen.update(cat=a[0]))
    model.inc.register_forward_hook(lambda m, a, out: seen.update(enc=out))
    with torch.no_grad():
        model(torch.randn(1, 3, 35, 41))
    assert seen["cat"].shape == (1, 16, 35, 41)
    torch.testing.assert_close(seen["cat"][:, :8], seen["enc"])


def test_gradients_reach_every_parameter():
    """Does every parameter get a gradient in both modes?"""
    for upsample in ("transposed", "bilinear"):
        model = UNet(2, depth=3, base_width=8, upsample=upsample)
        model(torch.randn(2, 3, 48, 40)).square().mean().backward()
        assert all(p.grad is not None for p in model.parameters())


def test_transposed_upsampling_uses_2x2_deconvs():
    """Does the paper's mode upsample with 2×2 stride-2 transposed convs?"""
    model = UNet(2)
    ups = [block.up for block in model.up]
    assert all(isinstance(u, nn.ConvTranspose2d) and u.kernel_size == (2, 2) for u in ups)
    assert len(ups) == 4


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(upsample="nearest"), "upsample"),
        (dict(depth=0), "depth"),
        (dict(base_width=0), "base_width"),
    ],
)
def test_bad_options_are_rejected(kw, match):
    """Are an unknown upsampling mode and non-positive sizes rejected with a ValueError?"""
    with pytest.raises(ValueError, match=match):
        UNet(2, **kw)
