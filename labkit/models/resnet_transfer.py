"""Transfer learning: a (frozen) ResNet-18 encoder with a transposed-conv decoder (PA3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models._utils import IntermediateLayerGetter

from labkit.models.backbones import resnet_backbone
from labkit.models.deformable import DeformConv2d

__all__ = ["LAB_REFERENCES", "ResNetTransfer", "deconv_bn_relu", "resnet18_transfer"]


def deconv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    """One decoder stage: transposed conv (×2) → BN → ReLU.

    Args:
        cin (int): channels in, ``Tensor[N, cin, H, W]``.
        cout (int): channels out, ``Tensor[N, cout, 2H, 2W]``.

    Returns:
        ``nn.Sequential(deconv, bn, relu)``.
    """
    # kernel 3, stride 2, padding 1, output_padding 1 exactly doubles the size.
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ResNetTransfer(nn.Module):
    """ResNet encoder (no avgpool/fc) → 4 transposed convs with BN + ReLU → 1×1 classifier.

    The encoder output (stride 32) is upsampled ×16 by the decoder; the logits (stride 2)
    are then resized bilinearly to the input size, which also handles sizes that are not
    multiples of 32.

    Why a frozen encoder keeps its BatchNorm layers in eval mode: freezing the weights does
    not freeze BatchNorm's running mean and variance, which a training-mode forward keeps
    overwriting with statistics of the new data (and, with the small batches of a course
    server, noisy ones). The frozen convolutions were trained to work with the ImageNet
    statistics; letting them drift changes the encoder's features under a decoder that is
    trying to learn them, and at evaluation time the features differ from those seen in
    training. So with ``freeze_encoder=True``, ``train()`` leaves the encoder in eval mode.

    Args:
        encoder (torchvision.models.ResNet): the backbone; ``layer4`` is the output.
        num_classes (int): output channels.
        freeze_encoder (bool): stop gradients into the encoder's weights and keep its
            BatchNorm statistics fixed (see above). New parameters inside it, i.e. the
            offset/mask predictors of deformable convs, stay trainable, otherwise the
            offsets would remain zero and the deformable conv would be a plain one.
        decoder_channels (Sequence[int]): output channels of the four transposed convs.

    Shape:
        x (Tensor[N, 3, H, W]) → logits (Tensor[N, num_classes, H, W]).
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        *,
        freeze_encoder: bool = True,
        decoder_channels: Sequence[int] = (256, 128, 64, 32),
    ) -> None:
        super().__init__()
        if len(decoder_channels) != 4:
            raise ValueError(
                f"expected 4 decoder_channels (one per transposed conv); got {decoder_channels!r}"
            )
        in_channels = encoder.fc.in_features  # 512 for ResNet-18/34, 2048 for 50/101
        self.encoder = IntermediateLayerGetter(encoder, return_layers={"layer4": "out"})
        widths = [in_channels, *decoder_channels]
        self.decoder = nn.Sequential(*(deconv_bn_relu(a, b) for a, b in zip(widths, widths[1:])))
        self.classifier = nn.Conv2d(widths[-1], num_classes, 1)
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            self._freeze()

    def _freeze(self) -> None:
        offset_branch = {
            id(p)
            for mod in self.encoder.modules()
            if isinstance(mod, DeformConv2d)
            for p in mod.offset_parameters()
        }
        for p in self.encoder.parameters():
            p.requires_grad_(id(p) in offset_branch)

    def train(self, mode: bool = True) -> ResNetTransfer:
        """Set training mode; a frozen encoder stays in eval mode (see the class doc)."""
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        """Logits at the input size.

        Args:
            x (Tensor[N, 3, H, W]): images, H and W ≥ 32.

        Returns:
            logits (Tensor[N, num_classes, H, W]).
        """
        feats = self.encoder(x)["out"]  # (N, 512, H/32, W/32)
        logits = self.classifier(self.decoder(feats))  # (N, C, H/2, W/2)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def resnet18_transfer(
    *,
    num_classes: int,
    freeze_encoder: bool = True,
    pretrained_backbone: bool | str = False,
    decoder_channels: Sequence[int] = (256, 128, 64, 32),
    deformable: str | None = None,
    deformable_stages: Sequence[int] = (4,),
) -> ResNetTransfer:
    """ResNet-18 transfer model of the PA3 report (frozen encoder, deconvolution decoder).

    Args:
        num_classes (int): output channels.
        freeze_encoder (bool): freeze the encoder's weights and BatchNorm statistics.
        pretrained_backbone (bool | str): ``True``: ImageNet weights from the local torch
            hub cache (``resnet18-f37072fd.pth``); never downloads. ``"shapes"``: an encoder
            pretrained on a large generated Shapes classification task, the offline
            stand-in for ImageNet (built once, a few CPU minutes, then cached; see
            :mod:`labkit.models.pretrain`). Freezing a randomly initialised encoder (the
            default, for offline tests) makes sense only as a baseline.
        decoder_channels (Sequence[int]): output channels of the four transposed convs.
        deformable (str | None): ``"v1"``/``"v2"`` replaces the 3×3 convs of
            ``deformable_stages`` by ``DeformConv2d`` (their offset predictors train even
            when the encoder is frozen).
        deformable_stages (Sequence[int]): ResNet stages 1–4 to make deformable.

    Returns:
        model (ResNetTransfer): ``forward(x: Tensor[N, 3, H, W])`` → ``Tensor[N, C, H, W]``.
    """
    encoder = resnet_backbone(
        "resnet18",
        pretrained=pretrained_backbone,
        deformable=deformable,
        deformable_stages=deformable_stages,
    )
    return ResNetTransfer(
        encoder, num_classes, freeze_encoder=freeze_encoder, decoder_channels=decoder_channels
    )


#: The reference implementations a lab has students write themselves. The lab's hidden tests
#: switch them off through this list (``forbid(*LAB_REFERENCES)``), so renaming or adding a
#: helper here changes what they forbid, in one place.
LAB_REFERENCES = (ResNetTransfer, resnet18_transfer, deconv_bn_relu)
