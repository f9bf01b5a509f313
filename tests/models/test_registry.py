"""Tests for labkit.models.registry: names, errors, parameter counts and the output contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from labkit.models import available_models, build_model, count_parameters, model_options

# The registry keys the course's issue asks for.
EXPECTED = {
    "baseline_fcn",
    "improved_fcn",
    "unet",
    "resnet18_transfer",
    "fcn_resnet50",
    "deeplabv3_resnet18",
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
    "deeplabv3plus_resnet50",
}


def test_available_models_lists_every_architecture():
    """Does available_models() name exactly the nine architectures, sorted?"""
    names = available_models()
    assert set(names) == EXPECTED
    assert names == sorted(names)


def test_unknown_name_lists_the_available_ones():
    """Does an unknown name raise a ValueError that lists the valid names?"""
    with pytest.raises(ValueError, match="unknown model 'segnet'") as info:
        build_model("segnet", num_classes=3)
    for name in EXPECTED:
        assert name in str(info.value)


def test_unknown_option_names_the_option_and_the_model():
    """Does an option the model does not take raise a ValueError naming both?"""
    with pytest.raises(ValueError, match=r"'unet'.*output_stride") as info:
        build_model("unet", num_classes=3, output_stride=8)
    assert "base_width" in str(info.value)  # and it lists what the model does take


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "21"])
def test_bad_num_classes_is_rejected(bad):
    """Is a num_classes that is not a positive int rejected with a ValueError?"""
    with pytest.raises(ValueError, match="num_classes"):
        build_model("baseline_fcn", num_classes=bad)


def test_numpy_integer_num_classes_is_accepted():
    """Is a numpy integer (e.g. from a class table) accepted as num_classes?"""
    model = build_model("baseline_fcn", num_classes=np.int64(4))
    assert model.classifier.out_channels == 4


def test_model_options_match_the_builders_keywords():
    """Does model_options report the builder's keyword defaults, num_classes left out?"""
    assert model_options("unet") == {"depth": 4, "base_width": 32, "upsample": "transposed"}
    assert model_options("deeplabv3_resnet50")["output_stride"] == 16
    assert "num_classes" not in model_options("fcn_resnet50")


def test_build_model_passes_options_through():
    """Does an option given to build_model reach the model (here the U-Net's first width)?"""
    model = build_model("unet", num_classes=3, base_width=8, depth=2)
    assert model.inc[0].out_channels == 8
    assert len(model.down) == 2


def test_count_parameters_by_hand():
    """Does count_parameters match a hand count, with shared and frozen parameters?"""
    conv = nn.Conv2d(3, 4, 3)  # 3*4*9 + 4 = 112
    lin = nn.Linear(4, 2)  # 4*2 + 2 = 10
    model = nn.Sequential(conv, lin, conv)  # the conv is shared: counted once
    assert count_parameters(model) == 122
    lin.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 112
    assert count_parameters(model) == 122


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_contract_shapes_and_gradients(name):
    """Does every model map [N, 3, H, W] to [N, C, H, W] at odd, square and minimal sizes,
    return a tensor in training mode too, and do all its trainable parameters get a gradient?"""
    num_classes = 3
    model = build_model(name, num_classes=num_classes)
    model.eval()
    with torch.no_grad():
        for h, w in [(97, 130), (64, 64), (32, 45)]:
            out = model(torch.randn(1, 3, h, w))
            assert isinstance(out, torch.Tensor)
            assert out.shape == (1, num_classes, h, w)
    model.train()
    # N=2: batch norm after ASPP's global pooling needs more than one value per channel.
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, num_classes, 64, 64)
    out.square().mean().backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    missing = [n for n, p in trainable if p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"
