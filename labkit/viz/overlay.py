"""Masks drawn over images with the VOC palette."""

from __future__ import annotations

import numpy as np
import torch

from labkit.data.palette import decode_mask

__all__ = ["to_image", "overlay_mask"]

# ImageNet statistics, used to undo the normalisation of labkit's transforms for display.
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def to_image(image: torch.Tensor | np.ndarray, *, normalized: bool | None = None) -> np.ndarray:
    """Turn an image tensor into something ``imshow`` draws.

    Args:
        image (Tensor[3, H, W] float or ndarray[H, W, 3]): a dataset image, in [0, 1] or
            ImageNet-normalised.
        normalized (bool | None): whether ``image`` is ImageNet-normalised; ``None`` guesses from
            its range (values below 0 or above 1 only occur after normalisation).

    Returns:
        np.ndarray[H, W, 3] float32 in [0, 1].
    """
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ValueError(
                f"expected an image of shape [3, H, W]; got {tuple(image.shape)}. "
                "Index one image out of a batch first (images[0])."
            )
        arr = image.detach().float().cpu().permute(1, 2, 0).numpy()
    else:
        arr = np.asarray(image, dtype=np.float32)
        if arr.max(initial=0) > 1.0 and normalized is None and arr.min(initial=0) >= 0:
            arr = arr / 255.0
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if normalized is None:
        normalized = bool(arr.min(initial=0) < 0 or arr.max(initial=0) > 1)
    if normalized:
        arr = arr * _STD + _MEAN
    return np.clip(arr, 0.0, 1.0)


def overlay_mask(
    image: torch.Tensor | np.ndarray,
    mask: torch.Tensor | np.ndarray,
    *,
    alpha: float = 0.5,
    show_void: bool = True,
) -> np.ndarray:
    """Blend a palette-coloured mask over an image.

    Args:
        image (Tensor[3, H, W] or ndarray[H, W, 3]): the image (see :func:`to_image`).
        mask (Tensor[H, W] int64 or ndarray[H, W]): class ids, 255 = void.
        alpha (float): weight of the mask colour where a class is drawn; background (0) stays clear.
        show_void (bool): draw void pixels (255) in the palette's cream colour; else leave them
            clear.

    Returns:
        np.ndarray[H, W, 3] float32 in [0, 1].
    """
    rgb = to_image(image)
    labels = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if labels.shape != rgb.shape[:2]:
        raise ValueError(
            f"mask shape {tuple(labels.shape)} does not match image size "
            f"{tuple(rgb.shape[:2])}; expected the mask of this image."
        )
    colour = decode_mask(labels).astype(np.float32) / 255.0
    drawn = labels != 0
    if not show_void:
        drawn &= labels != 255
    weight = np.where(drawn, alpha, 0.0)[..., None].astype(np.float32)
    return rgb * (1 - weight) + colour * weight
