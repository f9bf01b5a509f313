"""The PA3 baseline FCN (5 strided convs + 5 transposed convs) and an improved version.

Both networks give every transposed conv the exact size of the feature map its strided
twin received (``ConvTranspose2d(..., output_size=...)`` picks the output padding), so the
logits come back at the input size for any H, W, odd ones included, without resizing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from labkit.models.blocks import conv_bn_relu

__all__ = ["LAB_REFERENCES", "BaselineFCN", "ImprovedFCN", "baseline_fcn", "improved_fcn"]


def _check_widths(widths: Sequence[int]) -> tuple[int, ...]:
    widths = tuple(widths)
    if len(widths) != 5 or any(w < 1 for w in widths):
        raise ValueError(f"expected 5 positive channel widths, one per stage; got {widths!r}")
    return widths


class _UpStage(nn.Module):
    """Transposed conv (×2, to an exact size) → BN → ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, size: torch.Size) -> Tensor:
        return self.relu(self.bn(self.deconv(x, output_size=list(size))))


class BaselineFCN(nn.Module):
    """5 × (3×3 conv stride 2, BN, ReLU) → 5 × (3×3 transposed conv stride 2, BN, ReLU) → 1×1.

    The baseline network of the PA3 report. Stride 32 at the bottleneck, no skip
    connections, so fine detail has to be recovered from the 1/32 map alone.

    Args:
        num_classes (int): output channels.
        widths (Sequence[int]): channels of the five encoder stages; the decoder mirrors
            them (512 → 256 → 128 → 64 → 32 → 32 for the default).

    Shape:
        x (Tensor[N, 3, H, W]) → logits (Tensor[N, num_classes, H, W]).
    """

    def __init__(self, num_classes: int, *, widths: Sequence[int] = (32, 64, 128, 256, 512)):
        super().__init__()
        widths = _check_widths(widths)
        enc_in = (3, *widths[:-1])
        self.encoder = nn.ModuleList(conv_bn_relu(a, b, stride=2) for a, b in zip(enc_in, widths))
        dec_out = (*widths[-2::-1], widths[0])  # 256, 128, 64, 32, 32
        dec_in = (widths[-1], *dec_out[:-1])
        self.decoder = nn.ModuleList(_UpStage(a, b) for a, b in zip(dec_in, dec_out))
        self.classifier = nn.Conv2d(dec_out[-1], num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        sizes = []
        for stage in self.encoder:
            sizes.append(x.shape[-2:])  # the size this stage halves
            x = stage(x)  # (N, w_i, ceil(h/2), ceil(w/2))
        for stage, size in zip(self.decoder, reversed(sizes)):
            x = stage(x, size)
        return self.classifier(x)


class _DownStage(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(conv_bn_relu(cin, cout, stride=2), conv_bn_relu(cout, cout))


class _SkipUpStage(nn.Module):
    """Transposed conv to the skip's size → concat skip → 3×3 conv → BN → ReLU."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.up = _UpStage(cin, cout)
        self.fuse = conv_bn_relu(cout + cskip, cout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(x, skip.shape[-2:])  # (N, cout, h_skip, w_skip)
        return self.fuse(torch.cat([x, skip], dim=1))


class ImprovedFCN(nn.Module):
    """The baseline FCN with four documented changes.

    1. **Two convs per stage.** Each encoder stage is a strided 3×3 conv followed by a
       stride-1 3×3 conv (BN + ReLU after each): twice the depth and a larger receptive
       field at every scale for a modest parameter cost.
    2. **Skip connections.** A full-resolution stem (3×3 conv, ``widths[0]`` channels)
       and every encoder stage pass their output to the decoder stage of the same size,
       which concatenates it with the upsampled features and fuses them with a 3×3 conv.
       The 1/32 bottleneck alone cannot place boundaries; the skips give the decoder the
       high-resolution detail back (the FCN-8s / U-Net idea).
    3. **Dropout.** ``nn.Dropout2d(dropout)`` on the bottleneck and before the classifier
       regularises a network that is trained on a few hundred images (PA3 has ~200).
    4. **He initialisation.** Convs start from ``kaiming_normal_(mode="fan_out")`` as
       suited to ReLU networks; BN starts at weight 1, bias 0.

    Args:
        num_classes (int): output channels.
        widths (Sequence[int]): channels of the five encoder stages.
        dropout (float): channel dropout probability, 0 to disable.

    Shape:
        x (Tensor[N, 3, H, W]) → logits (Tensor[N, num_classes, H, W]).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        widths: Sequence[int] = (32, 64, 128, 256, 512),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        widths = _check_widths(widths)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"expected dropout in [0, 1); got {dropout!r}")
        self.stem = conv_bn_relu(3, widths[0])
        enc_in = (widths[0], *widths[:-1])
        self.encoder = nn.ModuleList(_DownStage(a, b) for a, b in zip(enc_in, widths))
        self.bottleneck_dropout = nn.Dropout2d(dropout)
        skips = (widths[0], *widths[:-1])[::-1]  # channels of the maps at 1/16 ... 1/1
        dec_in = widths[::-1]  # 512, 256, 128, 64, 32
        dec_out = (*widths[-2::-1], widths[0])  # 256, 128, 64, 32, 32
        self.decoder = nn.ModuleList(
            _SkipUpStage(a, s, b) for a, s, b in zip(dec_in, skips, dec_out)
        )
        self.classifier = nn.Sequential(
            nn.Dropout2d(dropout), nn.Conv2d(dec_out[-1], num_classes, 1)
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)  # (N, w0, H, W)
        skips = [x]
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = self.bottleneck_dropout(skips.pop())  # (N, w4, H/32, W/32)
        for stage, skip in zip(self.decoder, reversed(skips)):
            x = stage(x, skip)
        return self.classifier(x)  # (N, C, H, W)


def baseline_fcn(
    *, num_classes: int, widths: Sequence[int] = (32, 64, 128, 256, 512)
) -> BaselineFCN:
    """The PA3 baseline FCN; see :class:`BaselineFCN`."""
    return BaselineFCN(num_classes, widths=widths)


def improved_fcn(
    *,
    num_classes: int,
    widths: Sequence[int] = (32, 64, 128, 256, 512),
    dropout: float = 0.2,
) -> ImprovedFCN:
    """The baseline FCN improved in four documented ways; see :class:`ImprovedFCN`."""
    return ImprovedFCN(num_classes, widths=widths, dropout=dropout)


#: The reference implementations a lab has students write themselves. The lab's hidden tests
#: switch them off through this list (``forbid(*LAB_REFERENCES)``), so renaming or adding a
#: helper here changes what they forbid, in one place.
LAB_REFERENCES = (
    BaselineFCN,
    baseline_fcn,
    ImprovedFCN,
    improved_fcn,
    _UpStage,
    _DownStage,
    _SkipUpStage,
    conv_bn_relu,
)
