"""U-Net (Ronneberger et al. 2015, https://arxiv.org/abs/1505.04597)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labkit.models.blocks import conv_bn_relu

__all__ = ["LAB_REFERENCES", "DoubleConv", "UNet", "Up", "unet"]

_UPSAMPLE_MODES = ("transposed", "bilinear")


class DoubleConv(nn.Sequential):
    """(3×3 conv → BN → ReLU) × 2; padding 1 keeps the size.

    Args:
        cin (int): channels in, ``Tensor[N, cin, H, W]``.
        cout (int): channels out, ``Tensor[N, cout, H, W]``.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(*conv_bn_relu(cin, cout), *conv_bn_relu(cout, cout))


class Up(nn.Module):
    """Upsample to the skip's size, halve the channels, concat the skip, double conv.

    Args:
        cin (int): channels of the deeper input ``x`` (``Tensor[N, cin, h, w]``).
        cout (int): channels of the skip and of the output (``Tensor[N, cout, H, W]``).
        mode (str): ``"transposed"`` (a 2×2 transposed conv) or ``"bilinear"`` (resize, then a
            1×1 conv).
    """

    def __init__(self, cin: int, cout: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        if mode == "transposed":
            self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        else:
            # Bilinear resize has no parameters; a 1×1 conv halves the channels so both
            # modes concatenate the same number of channels.
            self.up = nn.Conv2d(cin, cout, 1)
        self.conv = DoubleConv(2 * cout, cout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        size = list(skip.shape[-2:])
        if self.mode == "transposed":
            # Max pooling floors odd sizes; output_size restores the skip's exact size.
            x = self.up(x, output_size=size)
        else:
            x = self.up(F.interpolate(x, size=size, mode="bilinear", align_corners=False))
        return self.conv(torch.cat([skip, x], dim=1))  # (N, cout, *size)


class UNet(nn.Module):
    """U-Net: double convs and max pools down, upsampling and same-size skip concats up.

    Differences from the paper, all common practice: padded convolutions (so no cropping
    and the output has the input's size), batch norm after every conv, fewer channels by
    default (``base_width=32`` instead of 64, for CPU-friendliness), and a choice of
    upsampling. Odd sizes are handled by upsampling to the skip's exact size.

    Args:
        num_classes (int): output channels.
        depth (int): number of 2×2 max-pool downsamplings (4 in the paper).
        base_width (int): channels of the first level; level ``i`` has ``base_width * 2**i``.
        upsample (str): ``"transposed"`` (2×2 transposed conv, as in the paper) or
            ``"bilinear"`` (bilinear resize + 1×1 conv, fewer parameters, no checkerboard).

    Shape:
        x (Tensor[N, 3, H, W]) → logits (Tensor[N, num_classes, H, W]), H, W ≥ 2**depth.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        depth: int = 4,
        base_width: int = 32,
        upsample: str = "transposed",
    ) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"expected depth to be a positive int; got {depth!r}")
        if not isinstance(base_width, int) or base_width < 1:
            raise ValueError(f"expected base_width to be a positive int; got {base_width!r}")
        if upsample not in _UPSAMPLE_MODES:
            raise ValueError(f"expected upsample in {_UPSAMPLE_MODES}; got {upsample!r}")
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.inc = DoubleConv(3, widths[0])
        self.down = nn.ModuleList(DoubleConv(a, b) for a, b in zip(widths, widths[1:]))
        self.up = nn.ModuleList(Up(a, b, upsample) for a, b in zip(widths[:0:-1], widths[-2::-1]))
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.inc(x)  # (N, w0, H, W)
        skips = [x]
        for block in self.down:
            x = block(F.max_pool2d(x, 2))  # (N, w_{i+1}, floor(h/2), floor(w/2))
            skips.append(x)
        skips.pop()  # the bottleneck is x itself
        for block in self.up:
            x = block(x, skips.pop())
        return self.classifier(x)


def unet(
    *,
    num_classes: int,
    depth: int = 4,
    base_width: int = 32,
    upsample: str = "transposed",
) -> UNet:
    """U-Net with ``depth`` levels; see :class:`UNet`."""
    return UNet(num_classes, depth=depth, base_width=base_width, upsample=upsample)


#: The reference implementations a lab has students write themselves. The lab's hidden tests
#: switch them off through this list (``forbid(*LAB_REFERENCES)``), so renaming or adding a
#: helper here changes what they forbid, in one place.
LAB_REFERENCES = (UNet, unet, DoubleConv, Up)
