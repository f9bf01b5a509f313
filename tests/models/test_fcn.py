"""Tests for labkit.models.fcn: the PA3 baseline FCN and the improved FCN."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from labkit.models.fcn import BaselineFCN, ImprovedFCN, baseline_fcn, improved_fcn

WIDTHS = (32, 64, 128, 256, 512)


def _reference_baseline(num_classes: int) -> nn.Sequential:
    """The PA3 baseline written out flat; output_padding=1 is right for multiples of 32."""
    layers, cin = [], 3
    for w in WIDTHS:
        layers += [
            nn.Conv2d(cin, w, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(),
        ]
        cin = w
    for w in (256, 128, 64, 32, 32):
        layers += [
            nn.ConvTranspose2d(cin, w, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(),
        ]
        cin = w
    layers.append(nn.Conv2d(cin, num_classes, 1))
    return nn.Sequential(*layers)


def test_baseline_equals_the_flat_reference():
    """Is baseline_fcn the 5 conv + 5 deconv (BN, ReLU) + 1×1 network: with its weights
    copied in order, does a flat nn.Sequential compute the same logits, train and eval?"""
    model = baseline_fcn(num_classes=4)
    ref = _reference_baseline(4)
    ours = model.state_dict()
    assert [v.shape for v in ours.values()] == [v.shape for v in ref.state_dict().values()]
    ref.load_state_dict(dict(zip(ref.state_dict().keys(), ours.values())))
    x = torch.randn(2, 3, 64, 96)
    torch.testing.assert_close(model.train()(x), ref.train()(x))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), ref.eval()(x))


@pytest.mark.parametrize("builder", [baseline_fcn, improved_fcn])
@pytest.mark.parametrize("size", [(97, 130), (64, 64), (32, 33), (45, 32)])
def test_output_size_for_any_input(builder, size):
    """Are the logits exactly at the input size, odd and non-multiple-of-32 sizes included?"""
    model = builder(num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 3, *size)


def test_baseline_counts_five_strided_convs_and_five_deconvs():
    """Does the baseline have 5 stride-2 3×3 convs and 5 stride-2 3×3 transposed convs, each
    followed by BN, and a 1×1 classifier?"""
    model = BaselineFCN(2)
    convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]
    deconvs = [m for m in model.decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(convs) == len(deconvs) == 5
    assert all(m.kernel_size == (3, 3) and m.stride == (2, 2) for m in convs + deconvs)
    assert len([m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]) == 10
    assert model.classifier.kernel_size == (1, 1)


def test_improved_has_two_convs_per_stage():
    """Does every improved encoder stage hold a strided 3×3 conv then a stride-1 3×3 conv?"""
    model = ImprovedFCN(2)
    for stage in model.encoder:
        convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
        assert [c.stride for c in convs] == [(2, 2), (1, 1)]


class _Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def test_improved_skip_connections_carry_the_input():
    """With the bottleneck zeroed, does the improved FCN still see its input (through the
    skips), while the baseline's output becomes input-independent?"""
    x1, x2 = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    improved = ImprovedFCN(2).eval()
    improved.bottleneck_dropout = _Zero()
    baseline = BaselineFCN(2).eval()
    baseline.encoder[-1] = nn.Sequential(baseline.encoder[-1], _Zero())
    with torch.no_grad():
        assert not torch.allclose(improved(x1), improved(x2))
        torch.testing.assert_close(baseline(x1), baseline(x2))


def test_improved_dropout_is_active_only_in_training():
    """Do two training-mode passes differ (dropout), eval passes agree, and dropout=0 agree?"""
    x = torch.randn(2, 3, 32, 32)
    model = ImprovedFCN(2, widths=(8, 8, 16, 16, 32), dropout=0.5).train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))
        model.eval()
        assert torch.equal(model(x), model(x))
        no_dropout = ImprovedFCN(2, widths=(8, 8, 16, 16, 32), dropout=0.0).train()
        assert torch.equal(no_dropout(x), no_dropout(x))


def test_improved_uses_he_initialisation():
    """Is the std of a large conv's weights sqrt(2 / fan_out), as kaiming_normal_ gives?"""
    conv = ImprovedFCN(2).encoder[4][1][0]  # 512 → 512, 3×3
    expected = math.sqrt(2.0 / (512 * 9))
    assert abs(conv.weight.std().item() / expected - 1) < 0.02


def test_improved_gets_gradients_everywhere():
    """Does every improved-FCN parameter receive a gradient?"""
    model = improved_fcn(num_classes=3, widths=(8, 16, 16, 32, 32))
    model(torch.randn(2, 3, 64, 64)).square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    "cls, kw",
    [
        (BaselineFCN, dict(widths=(8, 16))),
        (ImprovedFCN, dict(widths=(8, 16, 32, 64, 0))),
        (ImprovedFCN, dict(dropout=1.0)),
    ],
)
def test_bad_options_are_rejected(cls, kw):
    """Are wrong width lists and a dropout of 1 rejected with a ValueError?"""
    with pytest.raises(ValueError, match="expected"):
        cls(2, **kw)
