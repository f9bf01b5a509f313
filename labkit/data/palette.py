"""Pascal VOC class names and colour palette.

The VOC palette assigns class ``i`` the colour built by spreading the bits of ``i`` over
the three channels, most significant first; index 255 (void) comes out cream-white. The
Shapes set, the readers and the plots all use it, so a mask looks the same everywhere.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["VOC_CLASSES", "voc_colormap", "decode_mask"]

VOC_CLASSES: tuple[str, ...] = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def voc_colormap(num_colors: int = 256) -> np.ndarray:
    """Return the Pascal VOC colour map.

    Args:
        num_colors (int): how many palette entries to build (256 covers every uint8 label).

    Returns:
        np.ndarray[num_colors, 3] uint8: row ``i`` is the RGB colour of label ``i``.
    """
    cmap = np.zeros((num_colors, 3), dtype=np.uint8)
    for i in range(num_colors):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def decode_mask(mask: torch.Tensor | np.ndarray) -> np.ndarray:
    """Colour a label mask with the VOC palette.

    Args:
        mask (Tensor[H, W] or ndarray[H, W], integer): class ids, 255 for void.

    Returns:
        np.ndarray[H, W, 3] uint8: the RGB image of the mask.

    Raises:
        ValueError: if ``mask`` is not two-dimensional or holds values outside [0, 255].
    """
    arr = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(
            f"decode_mask expects a mask of shape [H, W]; got shape {tuple(arr.shape)}. "
            "Index one image out of a batch first (mask[0])."
        )
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError(
            f"decode_mask expects labels in [0, 255]; got values from {arr.min()} to {arr.max()}."
        )
    return _COLORMAP[arr.astype(np.int64)]


_COLORMAP = voc_colormap()
