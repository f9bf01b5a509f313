"""The convolution block the FCNs, U-Net and DeepLab heads are built from.

One definition, so a conv → BN → ReLU means the same thing in every model: no bias on the
conv (batch norm's shift replaces it) and "same" padding, ``dilation * (kernel // 2)``,
which keeps the size at stride 1 for any odd kernel and any dilation.
"""

from __future__ import annotations

from torch import nn

__all__ = ["conv_bn_relu"]


def conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int = 3, *, stride: int = 1, dilation: int = 1
) -> nn.Sequential:
    """Conv (no bias, same padding) → BatchNorm → ReLU.

    Splat it (``nn.Sequential(*conv_bn_relu(...), ...)``) to lay the three layers out flat,
    as torchvision's DeepLab heads do, so their state-dict keys match.

    Args:
        in_channels (int): channels of the input ``Tensor[N, in_channels, H, W]``.
        out_channels (int): channels of the output.
        kernel_size (int): an odd kernel size.
        stride (int): the conv's stride; the output is ``ceil(H / stride)`` high.
        dilation (int): the conv's dilation (atrous rate).

    Returns:
        ``nn.Sequential(conv, bn, relu)``.
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"expected an odd kernel_size (same padding); got {kernel_size!r}")
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=dilation * (kernel_size // 2),
            dilation=dilation,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )
