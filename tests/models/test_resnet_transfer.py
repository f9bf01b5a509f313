"""Tests for labkit.models.resnet_transfer: frozen encoder, BN statistics, decoder, DCN."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from labkit.models import DeformConv2d, count_parameters
from labkit.models.resnet_transfer import ResNetTransfer, resnet18_transfer


def _train_step(model: nn.Module, x: torch.Tensor) -> None:
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    target = torch.randint(0, 3, (x.shape[0], *x.shape[-2:]))
    loss = nn.functional.cross_entropy(model(x), target)
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_frozen_encoder_has_no_trainable_weights():
    """With freeze_encoder (the default), is every encoder parameter frozen and the decoder's
    count exactly the trainable count?"""
    model = resnet18_transfer(num_classes=3)
    assert all(not p.requires_grad for p in model.encoder.parameters())
    decoder = count_parameters(model.decoder) + count_parameters(model.classifier)
    assert count_parameters(model, trainable_only=True) == decoder
    resnet18_body = count_parameters(torchvision.models.resnet18(weights=None)) - (
        512 * 1000 + 1000
    )
    assert count_parameters(model) - decoder == resnet18_body


def test_frozen_encoder_is_unchanged_by_a_train_step():
    """After a training step, are the encoder's weights and BatchNorm statistics unchanged
    (while the decoder's BatchNorm statistics did move)?"""
    model = resnet18_transfer(num_classes=3)
    encoder_before = copy.deepcopy(model.encoder.state_dict())
    decoder_bn_before = model.decoder[0][1].running_mean.clone()
    _train_step(model, torch.randn(2, 3, 64, 64))
    after = model.encoder.state_dict()
    changed = [k for k in encoder_before if not torch.equal(encoder_before[k], after[k])]
    assert not changed, f"encoder changed: {changed[:5]}"
    assert model.training and not model.encoder.training
    assert not torch.equal(model.decoder[0][1].running_mean, decoder_bn_before)


def test_unfrozen_encoder_trains():
    """With freeze_encoder=False, do encoder weights and BN statistics change in a step?"""
    model = resnet18_transfer(num_classes=3, freeze_encoder=False)
    assert all(p.requires_grad for p in model.parameters())
    bn_before = model.encoder.bn1.running_mean.clone()
    conv_before = model.encoder.conv1.weight.detach().clone()
    _train_step(model, torch.randn(2, 3, 64, 64))
    assert model.encoder.training
    assert not torch.equal(model.encoder.bn1.running_mean, bn_before)
    assert not torch.equal(model.encoder.conv1.weight, conv_before)


@pytest.mark.parametrize("size", [(64, 64), (97, 130), (32, 32)])
def test_output_size(size):
    """Are the logits at the input size, odd sizes and the 32×32 minimum included?"""
    model = resnet18_transfer(num_classes=4).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 4, *size)


def test_decoder_is_four_transposed_convs_with_bn_relu():
    """Is the decoder 4 × (stride-2 transposed conv, BN, ReLU) from 512 channels, bringing
    stride 32 features to stride 2?"""
    model = resnet18_transfer(num_classes=4)
    assert len(model.decoder) == 4
    for stage in model.decoder:
        deconv, bn, relu = stage
        assert isinstance(deconv, nn.ConvTranspose2d) and deconv.stride == (2, 2)
        assert isinstance(bn, nn.BatchNorm2d) and isinstance(relu, nn.ReLU)
    assert model.decoder[0][0].in_channels == 512
    with torch.no_grad():
        feats = model.decoder(torch.randn(1, 512, 2, 3))
    assert feats.shape[-2:] == (32, 48)
    assert not hasattr(model.encoder, "fc") and not hasattr(model.encoder, "avgpool")


def test_bad_decoder_channels():
    """Is a decoder that is not four stages long rejected?"""
    with pytest.raises(ValueError, match="4 decoder_channels"):
        resnet18_transfer(num_classes=2, decoder_channels=(64, 32))


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_deformable_offsets_train_inside_a_frozen_encoder(version):
    """With deformable layer4 and a frozen encoder, are the kernels frozen but the offset
    branches trainable, and do they receive gradients?"""
    model = resnet18_transfer(num_classes=3, deformable=version)
    deform = [m for m in model.encoder.layer4.modules() if isinstance(m, DeformConv2d)]
    assert len(deform) == 4  # conv1 and conv2 of both BasicBlocks
    assert all(m.modulated == (version == "v2") for m in deform)
    model.train()
    model(torch.randn(2, 3, 64, 64)).square().mean().backward()
    for m in deform:
        assert not m.weight.requires_grad and m.weight.grad is None
        assert all(p.requires_grad and p.grad is not None for p in m.offset_parameters())
    frozen_rest = [p for n, p in model.encoder.named_parameters() if "offset_conv" not in n]
    assert all(not p.requires_grad for p in frozen_rest)


def test_deformable_v1_equals_plain_at_init():
    """Does a v1 transfer model with the plain model's weights compute the same logits?"""
    plain = resnet18_transfer(num_classes=3).eval()
    model = resnet18_transfer(num_classes=3, deformable="v1").eval()
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(".offset_conv." in k for k in missing)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=1e-4, atol=1e-4)


def test_class_accepts_a_deeper_encoder():
    """Does ResNetTransfer take its input width from the encoder (2048 for ResNet-50)?"""
    model = ResNetTransfer(torchvision.models.resnet50(weights=None), 2).eval()
    assert model.decoder[0][0].in_channels == 2048
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 2, 64, 64)
