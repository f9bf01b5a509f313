"""Paired image/mask transforms for training and evaluation.

Built on ``torchvision.transforms.v2``: the mask travels as a ``tv_tensors.Mask``, so every
geometric step (scale, crop, flip, rotation) moves it together with the image, with nearest
neighbour interpolation, and photometric steps (blur, normalisation) leave it alone. Padding
fills the image with 0 and the mask with 255 (ignored by the loss and the metrics).

Both pipelines take ``(image, mask)`` as the readers in ``labkit.data`` pass them
(``tv_tensors.Image`` uint8 and ``tv_tensors.Mask``), and also PIL images, numpy arrays or
plain tensors, so they work behind torchvision's own dataset classes too. They return
``image (Tensor[3, H, W])`` float32 and ``mask (Tensor[H, W])`` int64 as plain tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from labkit.errors import UsageError

__all__ = ["LAB_REFERENCES", "IMAGENET_MEAN", "IMAGENET_STD", "train_transforms", "eval_transforms"]

#: Channel means and standard deviations of ImageNet, which pretrained backbones expect.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_FILL = {tv_tensors.Image: 0, tv_tensors.Mask: 255}
_BLUR_SIGMA = (0.1, 1.0)  # the range of the COCO DeepLabV3+ project's PIL blur radius
_BLUR_KERNEL = 7  # covers +-3 sigma at the largest sigma


def train_transforms(
    *,
    crop_size: int | Sequence[int],
    scale: Sequence[float] = (0.5, 2.0),
    hflip: float = 0.5,
    rotate: float = 0.0,
    blur: float = 0.0,
    normalize: bool = True,
) -> v2.Compose:
    """Build the training augmentation: random scale, crop, flip, rotation and blur.

    The steps, in order: resize so that the short side is ``s * min(crop_size)`` with ``s``
    drawn uniformly from ``scale`` (image bilinear, mask nearest); pad to at least
    ``crop_size`` where needed (image 0, mask 255) and take a random ``crop_size`` crop;
    flip left-right with probability ``hflip``; rotate by an angle drawn from
    ``[-rotate, rotate]`` degrees (corners: image 0, mask 255); blur the image (only) with a
    Gaussian of sigma in [0.1, 1.0] with probability ``blur``; convert to float and normalise.

    Args:
        crop_size (int | Sequence[int]): output ``size`` or ``(height, width)``.
        scale (Sequence[float]): ``(low, high)`` range of the scale factor relative to
            ``crop_size``.
        hflip (float): probability of a horizontal flip.
        rotate (float): largest rotation in degrees; 0 turns rotation off.
        blur (float): probability of a Gaussian blur of the image.
        normalize (bool): subtract ``IMAGENET_MEAN`` and divide by ``IMAGENET_STD``; if ``False``
            the image stays in [0, 1].

    Returns:
        A callable ``t(image, mask) -> (image, mask)`` with ``image (Tensor[3, h, w])``
        float32 and ``mask (Tensor[h, w])`` int64, ``(h, w) = crop_size``.

    Raises:
        ValueError: if an option is out of range.
    """
    height, width = _pair(crop_size, "crop_size")
    low, high = _scale_range(scale)
    for name, p in (("hflip", hflip), ("blur", blur)):
        if not 0.0 <= p <= 1.0:
            raise UsageError(f"{name} is a probability and must lie in [0, 1]; got {p}.")
    if rotate < 0:
        raise UsageError(f"rotate is the largest angle in degrees and must be >= 0; got {rotate}.")
    base = min(height, width)
    steps: list[Any] = [
        _ToImageMask(),
        # RandomResize draws the short side from [min_size, max_size).
        v2.RandomResize(
            max(1, round(low * base)),
            max(1, round(high * base)) + 1,
            interpolation=v2.InterpolationMode.BILINEAR,
            antialias=True,
        ),
        v2.RandomCrop((height, width), pad_if_needed=True, fill=_FILL),
    ]
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(hflip))
    if rotate > 0:
        steps.append(
            v2.RandomRotation(rotate, interpolation=v2.InterpolationMode.BILINEAR, fill=_FILL)
        )
    if blur > 0:
        steps.append(v2.RandomApply([v2.GaussianBlur(_BLUR_KERNEL, sigma=_BLUR_SIGMA)], p=blur))
    return v2.Compose(steps + _finish(normalize))


def eval_transforms(
    *, size: int | Sequence[int] | None = None, normalize: bool = True
) -> v2.Compose:
    """Build the evaluation pipeline: an optional resize, then float conversion.

    Args:
        size (int | Sequence[int] | None): ``None`` keeps the original size (score at full
            resolution); an int resizes the short side to ``size`` keeping the aspect ratio;
            ``(height, width)`` resizes to exactly that. Image bilinear, mask nearest.
        normalize (bool): subtract ``IMAGENET_MEAN`` and divide by ``IMAGENET_STD``; if ``False``
            the image stays in [0, 1].

    Returns:
        A callable ``t(image, mask) -> (image, mask)`` with ``image (Tensor[3, H, W])``
        float32 and ``mask (Tensor[H, W])`` int64.

    Raises:
        ValueError: if ``size`` is not positive.
    """
    steps: list[Any] = [_ToImageMask()]
    if size is not None:
        target = [_pair(size, "size")[0]] if isinstance(size, int) else list(_pair(size, "size"))
        steps.append(v2.Resize(target, interpolation=v2.InterpolationMode.BILINEAR, antialias=True))
    return v2.Compose(steps + _finish(normalize))


class _ToImageMask(torch.nn.Module):
    """Tag the pair as ``(tv_tensors.Image, tv_tensors.Mask)`` so v2 treats each correctly."""

    def forward(self, *inputs: Any) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        if len(inputs) == 1 and isinstance(inputs[0], (tuple, list)):
            inputs = tuple(inputs[0])
        if len(inputs) != 2:
            raise ValueError(f"expected (image, mask); got {len(inputs)} inputs.")
        image, mask = inputs
        if not isinstance(image, tv_tensors.Image):
            image = v2.functional.to_image(image)  # PIL, ndarray[H, W, C] or Tensor[C, H, W]
        if not isinstance(mask, tv_tensors.Mask):
            if isinstance(mask, Image.Image):
                mask = np.array(mask)  # palette indices, not colours
            mask = tv_tensors.Mask(torch.as_tensor(mask))
        if mask.ndim != 2 or mask.shape != image.shape[-2:]:
            raise ValueError(
                f"expected a mask of shape [H, W] = {list(image.shape[-2:])} to go "
                f"with an image of shape {list(image.shape)}; got "
                f"{list(mask.shape)}."
            )
        return image, mask


def _finish(normalize: bool) -> list[Any]:
    steps: list[Any] = [
        v2.ToDtype(
            {tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64, "others": None},
            scale=True,
        )
    ]
    if normalize:
        steps.append(v2.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    steps.append(v2.ToPureTensor())
    return steps


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise UsageError(
            f"{name} must be a positive int or (height, width) of positive ints; got {size!r}."
        )
    return size  # type: ignore[return-value]


def _scale_range(scale: Sequence[float]) -> tuple[float, float]:
    if len(scale) != 2:
        raise UsageError(f"scale must be (low, high); got {tuple(scale)}.")
    low, high = float(scale[0]), float(scale[1])
    if not (0 < low <= high and math.isfinite(high)):
        raise UsageError(f"scale must be (low, high) with 0 < low <= high; got {tuple(scale)}.")
    return low, high


#: The reference implementations a lab has students write themselves. The lab's hidden tests
#: switch them off through this list (``forbid(*LAB_REFERENCES)``), so renaming or adding a
#: helper here changes what they forbid, in one place.
LAB_REFERENCES = (train_transforms, eval_transforms)
