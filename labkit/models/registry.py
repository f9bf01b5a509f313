"""Build any labkit model by name: ``build_model("unet", num_classes=21, depth=3)``.

Contract: every model's ``forward(x: Tensor[N, 3, H, W])`` returns logits
``Tensor[N, num_classes, H, W]`` at the input size for any H, W ≥ 32. The only exception is
a model built with ``aux_loss=True`` in training mode, which returns
``{"out": logits, "aux": aux_logits}`` (see :mod:`labkit.models.deeplab`).
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable

from torch import nn

from labkit.errors import UsageError
from labkit.models import deeplab, fcn, resnet_transfer, unet

__all__ = ["available_models", "build_model", "count_parameters", "model_options"]

_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "baseline_fcn": fcn.baseline_fcn,
    "improved_fcn": fcn.improved_fcn,
    "unet": unet.unet,
    "resnet18_transfer": resnet_transfer.resnet18_transfer,
    "fcn_resnet50": deeplab.fcn_resnet50,
    "deeplabv3_resnet18": deeplab.deeplabv3_resnet18,
    "deeplabv3_resnet50": deeplab.deeplabv3_resnet50,
    "deeplabv3_resnet101": deeplab.deeplabv3_resnet101,
    "deeplabv3plus_resnet50": deeplab.deeplabv3plus_resnet50,
}


def available_models() -> list[str]:
    """Names accepted by :func:`build_model`, sorted."""
    return sorted(_BUILDERS)


def _builder(name: str) -> Callable[..., nn.Module]:
    if name not in _BUILDERS:
        raise UsageError(f"unknown model {name!r}; expected one of {available_models()}")
    return _BUILDERS[name]


def model_options(name: str) -> dict[str, object]:
    """The keyword options of a model and their defaults (``num_classes`` left out).

    Args:
        name (str): a registry key, see :func:`available_models`.

    Returns:
        options (dict[str, object]): option name → default value.
    """
    params = inspect.signature(_builder(name)).parameters
    return {k: p.default for k, p in params.items() if k != "num_classes"}


def build_model(name: str, *, num_classes: int, **kw: object) -> nn.Module:
    """Build a segmentation model by registry name.

    Args:
        name (str): one of :func:`available_models`.
        num_classes (int): output channels (classes, background included).
        **kw (object): model options, see :func:`model_options` (e.g. ``output_stride=8``,
            ``deformable="v2"``).

    Returns:
        model (nn.Module): ``forward(x: Tensor[N, 3, H, W])`` → ``Tensor[N, num_classes, H, W]``.

    Raises:
        ValueError: unknown name, bad ``num_classes``, or an option the model does not take.
    """
    builder = _builder(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise UsageError(f"expected num_classes to be a positive int; got {num_classes!r}")
    if num_classes < 1:
        raise UsageError(f"expected num_classes to be a positive int; got {num_classes!r}")
    num_classes = int(num_classes)  # e.g. a numpy integer from a class table
    options = model_options(name)
    unknown = sorted(set(kw) - set(options))
    if unknown:
        raise UsageError(
            f"model {name!r} does not take option(s) {unknown}; its options are {sorted(options)}"
        )
    return builder(num_classes=num_classes, **kw)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of scalar parameters, each shared tensor counted once.

    Args:
        model (nn.Module): any module.
        trainable_only (bool): count only parameters with ``requires_grad``.

    Returns:
        count (int).
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
