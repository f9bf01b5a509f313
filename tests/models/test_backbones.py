"""Tests for labkit.models.backbones: offline ImageNet weights, output stride, deformable stages."""

from __future__ import annotations

import os

import pytest
import torch
import torchvision
from torch import nn

from labkit.models import DeformConv2d, PretrainedWeightsNotFoundError
from labkit.models.backbones import (
    make_deformable,
    pretrained_weights_path,
    resnet_backbone,
)
from labkit.models.deeplab import deeplabv3_resnet50
from labkit.models.resnet_transfer import resnet18_transfer


@pytest.fixture
def checkpoints(tmp_path, monkeypatch):
    """An empty hub cache: TORCH_HOME and torch.hub's directory point into tmp_path."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # monkeypatch restores the old value
    torch.hub.set_dir(str(tmp_path / "hub"))
    path = tmp_path / "hub" / "checkpoints"
    path.mkdir(parents=True)
    return path


def _file_name(weights_enum) -> str:
    return os.path.basename(weights_enum.IMAGENET1K_V1.url)


def test_weights_path_uses_torchvisions_file_names(checkpoints):
    """Is the expected file torchvision's own cache file (IMAGENET1K_V1) in the hub dir?"""
    tvm = torchvision.models
    for arch, enum in [
        ("resnet18", tvm.ResNet18_Weights),
        ("resnet50", tvm.ResNet50_Weights),
        ("resnet101", tvm.ResNet101_Weights),
    ]:
        assert pretrained_weights_path(arch) == checkpoints / _file_name(enum)
    assert pretrained_weights_path("resnet18").name == "resnet18-f37072fd.pth"
    v2 = pretrained_weights_path("resnet50", weights_tag="IMAGENET1K_V2")
    assert v2.name == os.path.basename(tvm.ResNet50_Weights.IMAGENET1K_V2.url)


def test_weights_path_follows_torch_home(tmp_path, monkeypatch):
    """Without set_dir, does the path follow $TORCH_HOME/hub/checkpoints?"""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    assert pretrained_weights_path("resnet50").parent == tmp_path / "hub" / "checkpoints"


def test_bad_arch_or_tag_is_rejected():
    """Are an unknown architecture and a weight tag the ResNet lacks rejected?"""
    with pytest.raises(ValueError, match="resnet152"):
        pretrained_weights_path("resnet152")
    with pytest.raises(ValueError, match="IMAGENET1K_V2"):
        pretrained_weights_path("resnet18", weights_tag="IMAGENET1K_V2")


def test_missing_weights_error_says_what_to_do(checkpoints):
    """Does a missing file raise a FileNotFoundError naming the file and the fix?"""
    expected = checkpoints / _file_name(torchvision.models.ResNet50_Weights)
    with pytest.raises(PretrainedWeightsNotFoundError) as info:
        deeplabv3_resnet50(num_classes=2, pretrained_backbone=True)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert str(expected) in message
    assert "torchvision.models.resnet50(weights='IMAGENET1K_V1')" in message
    assert "TORCH_HOME" in message and "never downloads" in message


def test_resnet18_weights_are_loaded(checkpoints):
    """Does pretrained_backbone=True load the cached state dict into the encoder?"""
    source = torchvision.models.resnet18(weights=None)
    torch.save(source.state_dict(), checkpoints / _file_name(torchvision.models.ResNet18_Weights))
    model = resnet18_transfer(num_classes=2, pretrained_backbone=True)
    ours = model.encoder.state_dict()
    theirs = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    fresh = resnet18_transfer(num_classes=2)  # and without it, they are not loaded
    assert not torch.equal(fresh.encoder.conv1.weight, theirs["conv1.weight"])


def test_resnet50_weights_reach_deformable_convs(checkpoints):
    """With weights and deformable="v2", do the DeformConv2d kernels start from the cached
    conv2 kernels, and the rest of the backbone from the cached tensors?"""
    source = torchvision.models.resnet50(weights=None)
    state = source.state_dict()
    torch.save(state, checkpoints / _file_name(torchvision.models.ResNet50_Weights))
    model = deeplabv3_resnet50(num_classes=2, pretrained_backbone=True, deformable="v2")
    backbone = model.backbone
    assert isinstance(backbone.layer4[1].conv2, DeformConv2d)
    assert torch.equal(backbone.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert torch.equal(backbone.layer3[5].conv2.weight, state["layer3.5.conv2.weight"])
    assert torch.equal(backbone.bn1.running_var, state["bn1.running_var"])


@pytest.mark.parametrize("output_stride, size", [(32, 2), (16, 4), (8, 8)])
def test_output_stride_of_resnet50(output_stride, size):
    """Does layer4 of a 64×64 input come out at 64 / output_stride, with 2048 channels?"""
    model = resnet_backbone("resnet50", output_stride=output_stride).eval()
    stem = nn.Sequential(*list(model.children())[:-2])
    with torch.no_grad():
        assert stem(torch.randn(1, 3, 64, 64)).shape == (1, 2048, size, size)


def test_output_stride_errors():
    """Is a stride other than 8/16/32 rejected?"""
    with pytest.raises(ValueError, match="output_stride 8, 16 or 32"):
        resnet_backbone("resnet50", output_stride=4)


def _features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return nn.Sequential(*list(net.children())[:-2])(x)


@pytest.mark.parametrize("arch", ["resnet18", "resnet34"])
@pytest.mark.parametrize("output_stride, step", [(16, 2), (8, 4)])
def test_dilated_basic_block_resnet_is_the_strided_one_a_trous(arch, output_stride, step):
    """With torchvision's own strided ResNet's weights, does the dilated BasicBlock network's
    layer4 hold the strided one's map on every ``step``-th position (the à trous identity)?"""
    torch.manual_seed(0)
    strided = getattr(torchvision.models, arch)().eval()
    dilated = resnet_backbone(arch, output_stride=output_stride).eval()
    dilated.load_state_dict(strided.state_dict())  # no parameter differs in name or shape
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        dense, sparse = _features(dilated, x), _features(strided, x)
    assert dense.shape == (2, 512, 96 // output_stride, 64 // output_stride)
    torch.testing.assert_close(dense[..., ::step, ::step], sparse, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stages, expected", [((4,), 3), ((3, 4), 9), ((1, 2, 3, 4), 16)])
def test_make_deformable_counts_bottleneck_convs(stages, expected):
    """Does make_deformable replace exactly the 3×3 conv2 of every Bottleneck in the stages
    (ResNet-50 has 3, 4, 6, 3 blocks) and keep the 1×1 and downsample convs?"""
    model = torchvision.models.resnet50(weights=None)
    assert make_deformable(model, version="v1", stages=stages) == expected
    deform = [n for n, m in model.named_modules() if isinstance(m, DeformConv2d)]
    assert len(deform) == expected and all(n.endswith(".conv2") for n in deform)
    assert all(n.split(".")[0] in {f"layer{s}" for s in stages} for n in deform)


def test_make_deformable_on_basic_blocks_keeps_geometry():
    """In ResNet-18's layer4, are both 3×3 convs of both blocks replaced, with the strided
    one keeping stride 2, and are the kernels copied?"""
    model = torchvision.models.resnet18(weights=None)
    before = {n: m for n, m in model.layer4.named_modules() if isinstance(m, nn.Conv2d)}
    assert make_deformable(model, version="v2", stages=(4,)) == 4
    for name in ["0.conv1", "0.conv2", "1.conv1", "1.conv2"]:
        new, old = model.layer4.get_submodule(name), before[name]
        assert isinstance(new, DeformConv2d) and new.modulated
        assert (new.stride, new.padding, new.dilation) == (old.stride, old.padding, old.dilation)
        assert torch.equal(new.weight, old.weight)
    assert type(model.layer4[0].downsample[0]) is nn.Conv2d


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(version="v3"), "deformable"),
        (dict(version="v1", stages=()), "deformable_stages"),
        (dict(version="v1", stages=(5,)), "deformable_stages"),
    ],
)
def test_make_deformable_rejects_bad_arguments(kw, match):
    """Are an unknown DCN version and stages outside 1–4 rejected with a ValueError?"""
    with pytest.raises(ValueError, match=match):
        make_deformable(torchvision.models.resnet18(weights=None), **kw)


def test_make_deformable_none_is_a_no_op():
    """Does version=None leave every convolution plain?"""
    model = torchvision.models.resnet18(weights=None)
    assert make_deformable(model, version=None) == 0
    assert not any(isinstance(m, DeformConv2d) for m in model.modules())


def test_pretrained_backbone_is_torchvisions_resnet_with_the_file_loaded(checkpoints):
    """Built on the meta device and given the file's tensors, is the pretrained backbone
    what torchvision's ResNet with ``load_state_dict`` of the same file is: every parameter
    and buffer equal and on the CPU, parameters trainable, the same output and gradients?"""
    state = torchvision.models.resnet50(weights=None).state_dict()
    torch.save(state, checkpoints / _file_name(torchvision.models.ResNet50_Weights))
    ours = resnet_backbone("resnet50", pretrained=True, output_stride=16)
    theirs = torchvision.models.resnet50(replace_stride_with_dilation=[False, False, True])
    theirs.load_state_dict(torch.load(pretrained_weights_path("resnet50"), weights_only=True))
    tensors = [*ours.parameters(), *ours.buffers()]
    assert not any(t.is_meta for t in tensors) and {t.device.type for t in tensors} == {"cpu"}
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in ours.parameters())
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert mine.keys() == reference.keys()
    assert all(torch.equal(mine[k], reference[k]) for k in reference)
    x = torch.randn(2, 3, 64, 64)
    for model in (ours, theirs):
        model.train()
        model(x).square().mean().backward()
    torch.testing.assert_close(ours.layer4[0].conv2.weight.grad, theirs.layer4[0].conv2.weight.grad)


def test_pretrained_takes_true_false_or_shapes_for_resnet18_only():
    """Is a pretrained value other than True, False or "shapes" rejected, naming the three,
    and "shapes" refused for a ResNet labkit does not pretrain, before anything is built?"""
    with pytest.raises(ValueError, match="'shapes'"):
        resnet_backbone("resnet18", pretrained="imagenet")
    with pytest.raises(ValueError, match="expected arch 'resnet18'"):
        resnet_backbone("resnet50", pretrained="shapes")
    with pytest.raises(ValueError, match="expected arch 'resnet18'"):
        deeplabv3_resnet50(num_classes=2, pretrained_backbone="shapes")
