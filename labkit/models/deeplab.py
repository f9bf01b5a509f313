"""DeepLab v3, DeepLab v3+ and FCN on torchvision ResNets.

``ASPP`` and ``DeepLabHead`` are the reference versions of what lab 07 has students build.
They mirror the module layout of ``torchvision.models.segmentation.deeplabv3`` (same
state-dict keys), so a state dict moves between the two and the outputs are identical. The
networks themselves are built on torchvision's ``ASPP`` and ``DeepLabHead`` (same layout,
same initialisation order, so the same weights from the same seed): a DeepLab can then be
built where labkit's references are taken out, as labkit's referee grades lab 07
(:mod:`labkit.grading.strip`).

Papers: DeepLab v3, Chen et al. 2017, https://arxiv.org/abs/1706.05587; DeepLab v3+,
Chen et al. 2018, https://arxiv.org/abs/1802.02611; FCN, Long et al. 2015,
https://arxiv.org/abs/1411.4038.

Return value with ``aux_loss=True``: in training mode ``forward`` returns
``{"out": main, "aux": aux}`` (both ``[N, C, H, W]``) so the loss can weight both; in eval
mode it returns the main logits tensor only. Without an auxiliary head it always returns the
tensor, so ``model.eval()(x)`` is ``[N, C, H, W]`` for every model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation import deeplabv3 as tv_deeplabv3
from torchvision.models.segmentation.fcn import FCNHead

from labkit.models.backbones import resnet_backbone
from labkit.models.blocks import conv_bn_relu

__all__ = [
    "ASPP",
    "ASPPConv",
    "ASPPPooling",
    "LAB_REFERENCES",
    "DeepLabHead",
    "DeepLabV3",
    "DeepLabV3Plus",
    "DeepLabV3PlusHead",
    "FCN",
    "atrous_rates_for",
    "deeplabv3_resnet18",
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
    "deeplabv3plus_resnet50",
    "fcn_resnet50",
]

_F = TypeVar("_F", bound=Callable)

# DeepLab v3 §4: rates (6, 12, 18) at output stride 16, doubled when the stride halves.
_ATROUS_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}


def _checked_stride(output_stride: int) -> int:
    if output_stride not in _ATROUS_RATES:
        raise ValueError(f"expected output_stride 8 or 16; got {output_stride!r}")
    return output_stride


def atrous_rates_for(output_stride: int) -> tuple[int, int, int]:
    """ASPP rates for an output stride: (6, 12, 18) at 16, (12, 24, 36) at 8."""
    return _ATROUS_RATES[_checked_stride(output_stride)]


class ASPPConv(nn.Sequential):
    """3×3 atrous conv → BN → ReLU; padding = rate keeps the size.

    Args:
        in_channels (int): channels in, ``Tensor[N, in_channels, H, W]``.
        out_channels (int): channels out, ``Tensor[N, out_channels, H, W]``.
        dilation (int): the atrous rate.
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__(*conv_bn_relu(in_channels, out_channels, 3, dilation=dilation))


class ASPPPooling(nn.Sequential):
    """Image-level features: global average pool → 1×1 conv → BN → ReLU → resize back.

    Args:
        in_channels (int): channels in, ``Tensor[N, in_channels, H, W]``.
        out_channels (int): channels out, ``Tensor[N, out_channels, H, W]``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), *conv_bn_relu(in_channels, out_channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        y = super().forward(x)  # (N, out, 1, 1)
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling (DeepLab v3, §3.3).

    Parallel branches see the same features at different fields of view: one 1×1 conv,
    one 3×3 conv per atrous rate, and global average pooling. Their outputs are
    concatenated and projected back to ``out_channels`` by a 1×1 conv (with dropout 0.5).
    Every conv is followed by batch norm and ReLU.

    Note: with the pooling branch, a training-mode forward needs more than one value per
    channel for batch norm, i.e. batch size ≥ 2.

    Args:
        in_channels (int): channels of the input features (2048 for ResNet-50/101 layer4).
        atrous_rates (Sequence[int]): dilation of each 3×3 branch, e.g. (12, 24, 36).
        out_channels (int): channels of every branch and of the output.

    Shape:
        x (Tensor[N, in_channels, h, w]) → (Tensor[N, out_channels, h, w]).
    """

    def __init__(self, in_channels: int, atrous_rates: Sequence[int], out_channels: int = 256):
        super().__init__()
        branches: list[nn.Module] = [conv_bn_relu(in_channels, out_channels, 1)]
        branches += [ASPPConv(in_channels, out_channels, rate) for rate in atrous_rates]
        branches.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            *conv_bn_relu(len(branches) * out_channels, out_channels, 1), nn.Dropout(0.5)
        )

    def forward(self, x: Tensor) -> Tensor:
        feats = torch.cat([branch(x) for branch in self.convs], dim=1)  # (N, B*out, h, w)
        return self.project(feats)


class DeepLabHead(nn.Sequential):
    """DeepLab v3 head: ASPP(256) → 3×3 conv 256 → BN → ReLU → 1×1 conv to classes.

    Args:
        in_channels (int): channels of the backbone features.
        num_classes (int): output channels.
        atrous_rates (Sequence[int]): ASPP rates; (12, 24, 36) suits output stride 8.

    Shape:
        x (Tensor[N, in_channels, h, w]) → logits (Tensor[N, num_classes, h, w]).
    """

    def __init__(
        self, in_channels: int, num_classes: int, atrous_rates: Sequence[int] = (12, 24, 36)
    ) -> None:
        super().__init__(
            ASPP(in_channels, atrous_rates),
            *conv_bn_relu(256, 256, 3),
            nn.Conv2d(256, num_classes, 1),
        )


class DeepLabV3PlusHead(nn.Module):
    """DeepLab v3+ decoder (Chen et al. 2018, §3.1).

    Low-level features (ResNet layer1, stride 4) are reduced to 48 channels by a 1×1 conv;
    the ASPP output is upsampled bilinearly to their size (×4 at output stride 16),
    concatenated, refined by two 3×3 convs (256 channels) and classified by a 1×1 conv.

    Shape:
        high (Tensor[N, in_channels, h, w]), low (Tensor[N, low_channels, 4h', 4w'])
        → logits (Tensor[N, num_classes, 4h', 4w']).
    """

    def __init__(
        self,
        in_channels: int,
        low_channels: int,
        num_classes: int,
        atrous_rates: Sequence[int] = (6, 12, 18),
    ) -> None:
        super().__init__()
        self.aspp = tv_deeplabv3.ASPP(in_channels, list(atrous_rates))
        self.reduce = conv_bn_relu(low_channels, 48, 1)
        self.fuse = nn.Sequential(*conv_bn_relu(256 + 48, 256, 3), *conv_bn_relu(256, 256, 3))
        self.classifier = nn.Conv2d(256, num_classes, 1)

    def forward(self, high: Tensor, low: Tensor) -> Tensor:
        low = self.reduce(low)  # (N, 48, H/4, W/4)
        high = F.interpolate(
            self.aspp(high), size=low.shape[-2:], mode="bilinear", align_corners=False
        )  # (N, 256, H/4, W/4)
        return self.classifier(self.fuse(torch.cat([high, low], dim=1)))


class _SegmentationModel(nn.Module):
    """Backbone returning a dict of features, a head, an optional auxiliary head."""

    def __init__(
        self, backbone: nn.Module, classifier: nn.Module, aux_classifier: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier
        self.aux_classifier = aux_classifier

    def _head(self, features: dict[str, Tensor]) -> Tensor:
        return self.classifier(features["out"])

    def forward(self, x: Tensor) -> Tensor | dict[str, Tensor]:
        """Logits at the input size.

        Args:
            x (Tensor[N, 3, H, W]): images.

        Returns:
            logits (Tensor[N, C, H, W]), or in training mode with an auxiliary head
            ``{"out": Tensor[N, C, H, W], "aux": Tensor[N, C, H, W]}``.
        """
        size = x.shape[-2:]
        features = self.backbone(x)
        out = F.interpolate(self._head(features), size=size, mode="bilinear", align_corners=False)
        if self.aux_classifier is None or not self.training:
            return out
        aux = self.aux_classifier(features["aux"])
        aux = F.interpolate(aux, size=size, mode="bilinear", align_corners=False)
        return {"out": out, "aux": aux}


class DeepLabV3(_SegmentationModel):
    """DeepLab v3: a dilated backbone and a :class:`DeepLabHead` (module layout of torchvision).

    Args:
        backbone (nn.Module): returns ``{"out": features}`` (and ``"aux"`` with an aux head).
        classifier (nn.Module): maps ``features["out"]`` to logits.
        aux_classifier (nn.Module | None): maps ``features["aux"]`` to logits; used only
            in training mode, where ``forward`` then returns a dict (see the module doc).
    """


class FCN(_SegmentationModel):
    """FCN on a dilated ResNet with torchvision's ``FCNHead`` (same arguments as DeepLabV3)."""


class DeepLabV3Plus(_SegmentationModel):
    """DeepLab v3+: the backbone also returns ``"low"`` (layer1) for the decoder head."""

    def _head(self, features: dict[str, Tensor]) -> Tensor:
        return self.classifier(features["out"], features["low"])


def _build(
    kind: str,
    arch: str,
    *,
    num_classes: int,
    output_stride: int,
    aux_loss: bool,
    pretrained_backbone: bool | str,
    deformable: str | None,
    deformable_stages: Sequence[int],
) -> _SegmentationModel:
    # Not atrous_rates_for: lab 07's referee takes it out of the student's process, where
    # the lab's DeepLab is still built.
    rates = _ATROUS_RATES[_checked_stride(output_stride)]
    resnet = resnet_backbone(
        arch,
        pretrained=pretrained_backbone,
        output_stride=output_stride,
        deformable=deformable,
        deformable_stages=deformable_stages,
    )
    return_layers = {"layer4": "out"}
    if aux_loss:
        return_layers["layer3"] = "aux"
    if kind == "deeplabv3plus":
        return_layers["layer1"] = "low"
    backbone = IntermediateLayerGetter(resnet, return_layers=return_layers)
    width = resnet.fc.in_features  # layer4's channels: 512 (ResNet-18), 2048 (50, 101)
    aux = FCNHead(width // 2, num_classes) if aux_loss else None
    if kind == "fcn":
        return FCN(backbone, FCNHead(width, num_classes), aux)
    if kind == "deeplabv3":
        return DeepLabV3(backbone, tv_deeplabv3.DeepLabHead(width, num_classes, rates), aux)
    return DeepLabV3Plus(backbone, DeepLabV3PlusHead(2048, 256, num_classes, rates), aux)


_ARGS_DOC = """

    Args:
        num_classes (int): output channels.
        output_stride (int): 8 or 16; the stride of the backbone's last stage, reached by
            dilating layer4 (16) or layer3 and layer4 (8). ASPP rates follow it:
            (6, 12, 18) at 16, (12, 24, 36) at 8.
        aux_loss (bool): add torchvision's FCN head on layer3; in training mode ``forward``
            then returns ``{"out", "aux"}``, in eval mode the main logits tensor.
        pretrained_backbone (bool): ImageNet weights from the local torch hub cache
            (see :mod:`labkit.models.backbones`); never downloads.
        deformable (str | None): ``"v1"``/``"v2"`` makes the 3×3 convs of
            ``deformable_stages`` deformable (DCN v1/v2); ``None`` keeps them plain.
        deformable_stages (Sequence[int]): ResNet stages 1–4 to make deformable.

    Returns:
        model (nn.Module): ``forward(x: Tensor[N, 3, H, W])`` → logits ``Tensor[N, C, H, W]``.
    """


def _documented(summary: str) -> Callable[[_F], _F]:
    def attach(fn: _F) -> _F:
        fn.__doc__ = summary + _ARGS_DOC
        return fn

    return attach


@_documented("FCN-ResNet50 (torchvision's layout: FCNHead on layer4); output stride 8 by default.")
def fcn_resnet50(
    *,
    num_classes: int,
    output_stride: int = 8,
    aux_loss: bool = False,
    pretrained_backbone: bool = False,
    deformable: str | None = None,
    deformable_stages: Sequence[int] = (4,),
) -> FCN:
    return _build(
        "fcn",
        "resnet50",
        num_classes=num_classes,
        output_stride=output_stride,
        aux_loss=aux_loss,
        pretrained_backbone=pretrained_backbone,
        deformable=deformable,
        deformable_stages=deformable_stages,
    )


@_documented(
    "DeepLab v3 on ResNet-18: the small DeepLab a CPU trains in minutes (ASPP on 512 "
    "channels; about 16 M parameters against ResNet-50's 40 M). ``pretrained_backbone`` also "
    'takes ``"shapes"``, the encoder labkit pretrains on generated Shapes objects.'
)
def deeplabv3_resnet18(
    *,
    num_classes: int,
    output_stride: int = 16,
    aux_loss: bool = False,
    pretrained_backbone: bool | str = False,
    deformable: str | None = None,
    deformable_stages: Sequence[int] = (4,),
) -> DeepLabV3:
    return _build(
        "deeplabv3",
        "resnet18",
        num_classes=num_classes,
        output_stride=output_stride,
        aux_loss=aux_loss,
        pretrained_backbone=pretrained_backbone,
        deformable=deformable,
        deformable_stages=deformable_stages,
    )


@_documented(
    "DeepLab v3 on ResNet-50. Output stride 16 by default (the paper's training setting, "
    "4× cheaper at layer3/4 than torchvision's 8)."
)
def deeplabv3_resnet50(
    *,
    num_classes: int,
    output_stride: int = 16,
    aux_loss: bool = False,
    pretrained_backbone: bool = False,
    deformable: str | None = None,
    deformable_stages: Sequence[int] = (4,),
) -> DeepLabV3:
    return _build(
        "deeplabv3",
        "resnet50",
        num_classes=num_classes,
        output_stride=output_stride,
        aux_loss=aux_loss,
        pretrained_backbone=pretrained_backbone,
        deformable=deformable,
        deformable_stages=deformable_stages,
    )


@_documented("DeepLab v3 on ResNet-101. Output stride 16 by default.")
def deeplabv3_resnet101(
    *,
    num_classes: int,
    output_stride: int = 16,
    aux_loss: bool = False,
    pretrained_backbone: bool = False,
    deformable: str | None = None,
    deformable_stages: Sequence[int] = (4,),
) -> DeepLabV3:
    return _build(
        "deeplabv3",
        "resnet101",
        num_classes=num_classes,
        output_stride=output_stride,
        aux_loss=aux_loss,
        pretrained_backbone=pretrained_backbone,
        deformable=deformable,
        deformable_stages=deformable_stages,
    )


@_documented("DeepLab v3+ on ResNet-50 (ASPP and the layer1 decoder). Output stride 16 by default.")
def deeplabv3plus_resnet50(
    *,
    num_classes: int,
    output_stride: int = 16,
    aux_loss: bool = False,
    pretrained_backbone: bool = False,
    deformable: str | None = None,
    deformable_stages: Sequence[int] = (4,),
) -> DeepLabV3Plus:
    return _build(
        "deeplabv3plus",
        "resnet50",
        num_classes=num_classes,
        output_stride=output_stride,
        aux_loss=aux_loss,
        pretrained_backbone=pretrained_backbone,
        deformable=deformable,
        deformable_stages=deformable_stages,
    )


#: The reference implementations a lab has students write themselves. The lab's hidden tests
#: switch them off through this list (``forbid(*LAB_REFERENCES)``), so renaming or adding a
#: helper here changes what they forbid, in one place.
LAB_REFERENCES = (ASPP, ASPPConv, ASPPPooling, DeepLabHead, atrous_rates_for)
