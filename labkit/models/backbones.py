"""torchvision ResNet backbones: output stride, offline ImageNet weights, deformable stages.

Pretrained weights are never downloaded. They are read from the local torch hub cache,
``torch.hub.get_dir() / "checkpoints"`` (``$TORCH_HOME/hub/checkpoints`` when ``TORCH_HOME``
is set), under the file names torchvision itself uses, so a cache filled by torchvision on a
machine with internet can be copied to the course server as it is.

Which weights: ``IMAGENET1K_V1`` for every depth. It is the only set ResNet-18 has, and it is
the backbone torchvision's own FCN and DeepLab v3 builders start from
(``weights_backbone=ResNet50_Weights.IMAGENET1K_V1``), so labkit's "pretrained vs scratch"
experiments match the published recipes. ``IMAGENET1K_V2`` (ResNet-50/101 only, a longer
modern training recipe) can be asked for with ``weights_tag="IMAGENET1K_V2"``.

Offline alternative for ResNet-18: ``pretrained="shapes"`` loads an encoder pretrained on a
large generated Shapes classification task (:mod:`labkit.models.pretrain`), built once on the
CPU and cached in the same folder, so lab 06 can show what pretraining buys with nothing
downloaded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tvm

from labkit.errors import LabkitError
from labkit.models.deformable import DeformConv2d
from labkit.models.pretrain import load_shapes_pretrained

__all__ = [
    "DEFAULT_WEIGHTS_TAG",
    "PretrainedWeightsNotFoundError",
    "SHAPES_PRETRAINED",
    "load_pretrained_resnet",
    "make_deformable",
    "pretrained_weights_path",
    "resnet_backbone",
]

logger = logging.getLogger(__name__)

DEFAULT_WEIGHTS_TAG = "IMAGENET1K_V1"

_RESNETS = {
    "resnet18": (tvm.resnet18, tvm.ResNet18_Weights),
    "resnet34": (tvm.resnet34, tvm.ResNet34_Weights),
    "resnet50": (tvm.resnet50, tvm.ResNet50_Weights),
    "resnet101": (tvm.resnet101, tvm.ResNet101_Weights),
}
# Which of layer2..layer4 trade their stride for dilation. torchvision does this for Bottleneck
# ResNets; for BasicBlock ones (18, 34) it raises NotImplementedError, so labkit dilates them
# itself after building (_dilate_basic_blocks), with the same rule.
_DILATION_FOR_STRIDE = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}
_DEFORMABLE_VERSIONS = (None, "v1", "v2")
#: What ``pretrained`` accepts besides ``True`` (ImageNet) and ``False`` (random).
SHAPES_PRETRAINED = "shapes"


class PretrainedWeightsNotFoundError(LabkitError, FileNotFoundError):
    """Raised when ImageNet weights are asked for but absent from the local torch hub cache."""


def _check_arch(arch: str) -> None:
    if arch not in _RESNETS:
        raise ValueError(f"expected arch to be one of {sorted(_RESNETS)}; got {arch!r}")


def pretrained_weights_path(arch: str, *, weights_tag: str = DEFAULT_WEIGHTS_TAG) -> Path:
    """Where labkit looks for the ImageNet weights of a torchvision ResNet.

    Args:
        arch (str): ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` or ``"resnet101"``.
        weights_tag (str): a member of torchvision's weight enum, e.g. ``"IMAGENET1K_V1"``.

    Returns:
        path (Path): ``torch.hub.get_dir()/checkpoints/<file name of the enum's URL>``,
        e.g. ``.../checkpoints/resnet50-0676ba61.pth``.
    """
    _check_arch(arch)
    enum = _RESNETS[arch][1]
    if weights_tag not in enum.__members__:
        raise ValueError(
            f"expected weights_tag to be one of {list(enum.__members__)} for {arch}; "
            f"got {weights_tag!r}"
        )
    file_name = os.path.basename(enum[weights_tag].url)
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def _missing_weights_message(arch: str, weights_tag: str, path: Path) -> str:
    return (
        f"ImageNet weights for {arch} ({weights_tag}) not found: expected the file {path} "
        f"(torch.hub.get_dir() is {torch.hub.get_dir()}). labkit never downloads weights. "
        "To pre-populate the cache on a shared server: on a machine with internet run\n"
        f'    python -c "import torchvision; '
        f"torchvision.models.{arch}(weights='{weights_tag}')\"\n"
        f"then copy ~/.cache/torch/hub/checkpoints/{path.name} to <dir>/hub/checkpoints/ on the "
        "server and `export TORCH_HOME=<dir>` for everyone (e.g. in the JupyterHub "
        "environment). Or pass pretrained_backbone=False to train from scratch."
    )


def load_pretrained_resnet(
    model: tvm.ResNet, arch: str, *, weights_tag: str = DEFAULT_WEIGHTS_TAG
) -> tvm.ResNet:
    """Load ImageNet weights from the local hub cache into a torchvision ResNet, in place.

    Args:
        model (torchvision.models.ResNet): a freshly built ResNet of depth ``arch``
            (with ``fc``; dilation does not change the parameters).
        arch (str): which ResNet, e.g. ``"resnet50"``.
        weights_tag (str): which weight set, see :func:`pretrained_weights_path`.

    Returns:
        model (torchvision.models.ResNet): the same module, weights loaded.

    Raises:
        PretrainedWeightsNotFoundError: the file is not in the cache; the message says
            which file and how to put it there.
    """
    path = pretrained_weights_path(arch, weights_tag=weights_tag)
    if not path.is_file():
        raise PretrainedWeightsNotFoundError(_missing_weights_message(arch, weights_tag, path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    # assign: a model built on the meta device (resnet_backbone) takes the loaded tensors
    # themselves; on a real one, assign=False copies them into its own
    model.load_state_dict(state, assign=next(model.parameters()).is_meta)
    logger.info("loaded %s %s weights from %s", arch, weights_tag, path)
    return model


def _check_pretrained(arch: str, pretrained: bool | str) -> None:
    if pretrained is True or pretrained is False:
        return
    if pretrained != SHAPES_PRETRAINED:
        raise ValueError(
            f"expected pretrained to be False (random), True (ImageNet weights from the hub "
            f"cache) or {SHAPES_PRETRAINED!r} (pretrained on generated Shapes images, "
            f"ResNet-18 only); got {pretrained!r}"
        )
    if arch != "resnet18":
        raise ValueError(
            f"expected arch 'resnet18' with pretrained={SHAPES_PRETRAINED!r} (the only "
            f"network labkit pretrains itself); got {arch!r}. Use pretrained=True (ImageNet) "
            "or False for it."
        )


def resnet_backbone(
    arch: str,
    *,
    pretrained: bool | str = False,
    output_stride: int = 32,
    weights_tag: str = DEFAULT_WEIGHTS_TAG,
    deformable: str | None = None,
    deformable_stages: Sequence[int] = (4,),
) -> tvm.ResNet:
    """Build a torchvision ResNet for use as a segmentation encoder.

    Args:
        arch (str): ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` or ``"resnet101"``.
        pretrained (bool | str): ``True`` loads ImageNet weights from the local hub cache
            (never downloads); ``"shapes"`` (ResNet-18 only) loads the encoder pretrained on
            generated Shapes images, pretraining it on first use
            (:func:`labkit.models.pretrain.load_shapes_pretrained`; ``fc`` stays random).
        output_stride (int): 32 (plain), 16 (layer4 dilated) or 8 (layer3 and layer4
            dilated, the DeepLab setting); torchvision's rule for every depth.
        weights_tag (str): which ImageNet weight set when ``pretrained``.
        deformable (str | None): ``"v1"`` or ``"v2"`` replaces the 3×3 convolutions of
            ``deformable_stages`` by :class:`DeformConv2d` (after the weights are loaded,
            so the deformable convs start from the pretrained kernels); ``None`` keeps them.
        deformable_stages (Sequence[int]): which of ``layer1``..``layer4`` to make deformable.

    Returns:
        model (torchvision.models.ResNet): the full network, ``avgpool`` and ``fc`` included;
        callers pick the layers they need (``IntermediateLayerGetter``).
    """
    _check_arch(arch)
    _check_pretrained(arch, pretrained)
    if output_stride not in _DILATION_FOR_STRIDE:
        raise ValueError(f"expected output_stride 8, 16 or 32; got {output_stride!r}")
    builder = _RESNETS[arch][0]
    basic = arch in ("resnet18", "resnet34")
    dilate = _DILATION_FOR_STRIDE[output_stride]
    # With ImageNet weights, every parameter and buffer is replaced by the file's: built on
    # the meta device, the network skips its random initialisation (about a second of a
    # core for a ResNet-101) and takes the loaded tensors (strict: none is left on meta).
    # The Shapes file has no fc (the pretraining head), so that network is built for real.
    with torch.device("meta" if pretrained is True else "cpu"):
        model = builder(weights=None, replace_stride_with_dilation=None if basic else dilate)
    if basic:
        _dilate_basic_blocks(model, dilate)
    if pretrained is True:
        load_pretrained_resnet(model, arch, weights_tag=weights_tag)
    elif pretrained == SHAPES_PRETRAINED:
        missing, unexpected = model.load_state_dict(load_shapes_pretrained(), strict=False)
        assert sorted(missing) == ["fc.bias", "fc.weight"] and not unexpected  # file checked
    make_deformable(model, version=deformable, stages=deformable_stages)
    return model


def _dilate_basic_blocks(model: tvm.ResNet, dilate: Sequence[bool]) -> None:
    """Trade the stride of a BasicBlock ResNet's ``layer2``..``layer4`` for dilation, in place.

    A dilated stage's first block drops its stride (and its shortcut's). Its first conv,
    the one that strode, keeps the rate from before the stage; every conv after it reads at
    the stage's new rate, twice the old one, with padding equal to the rate. The dense map
    then holds the strided network's map on its even positions (à trous: the same weights,
    the same sums), which is the equivalence torchvision's rule gives Bottleneck ResNets,
    whose stride sits on the 3×3 conv instead. No parameter changes, so pretrained weights
    load as they are.
    """
    rate = 1
    for layer, on in zip((model.layer2, model.layer3, model.layer4), dilate, strict=True):
        if not on:
            continue
        previous, rate = rate, rate * 2
        for i, block in enumerate(layer):
            if i == 0:
                block.conv1.stride = (1, 1)
                if block.downsample is not None:
                    block.downsample[0].stride = (1, 1)
            for conv, d in ((block.conv1, previous if i == 0 else rate), (block.conv2, rate)):
                conv.dilation, conv.padding = (d, d), (d, d)


def _check_deformable(version: str | None, stages: Iterable[int]) -> tuple[int, ...]:
    if version not in _DEFORMABLE_VERSIONS:
        raise ValueError(f"expected deformable to be None, 'v1' or 'v2'; got {version!r}")
    stages = tuple(stages)
    if not stages or any(s not in (1, 2, 3, 4) for s in stages):
        raise ValueError(
            f"expected deformable_stages to be a non-empty subset of (1, 2, 3, 4), "
            f"e.g. (4,) for layer4 as in the DCN papers; got {stages!r}"
        )
    return stages


def make_deformable(model: nn.Module, *, version: str | None, stages: Sequence[int] = (4,)) -> int:
    """Replace the 3×3 convolutions of ResNet stages by deformable ones, in place.

    Every ``nn.Conv2d`` with a 3×3 kernel inside ``model.layer<k>`` for ``k`` in ``stages``
    (the ``conv2`` of a Bottleneck, both convs of a BasicBlock; 1×1 and downsample convs
    stay) becomes ``DeformConv2d.from_conv(conv, modulated=(version == "v2"))``, which keeps
    the kernel, stride, padding and dilation. The offsets start at zero, so a v1 network
    computes exactly what the plain one did until training moves them.

    Args:
        model (nn.Module): a torchvision ResNet, or anything with ``layer1``..``layer4``.
        version (str | None): ``"v1"`` (offsets), ``"v2"`` (offsets and modulation masks)
            or ``None`` (nothing is replaced).
        stages (Sequence[int]): which stages, 1–4; (4,) is res5 as in the DCN papers.

    Returns:
        count (int): how many convolutions were replaced.
    """
    stages = _check_deformable(version, stages)
    if version is None:
        return 0
    count = 0
    for stage in stages:
        layer = getattr(model, f"layer{stage}")
        targets = [
            (name, mod)
            for name, mod in layer.named_modules()
            if type(mod) is nn.Conv2d and mod.kernel_size == (3, 3)
        ]
        for name, conv in targets:
            parent_name, _, child = name.rpartition(".")
            parent = layer.get_submodule(parent_name) if parent_name else layer
            setattr(parent, child, DeformConv2d.from_conv(conv, modulated=version == "v2"))
            count += 1
    logger.debug("replaced %d 3x3 convs by DeformConv2d %s in stages %s", count, version, stages)
    return count
