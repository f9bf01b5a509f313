"""Is the VOC palette the one the Pascal VOC devkit defines?"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labkit.data.palette import VOC_CLASSES, decode_mask, voc_colormap


def test_known_voc_colours():
    """Do well-known VOC classes get the devkit's colours (aeroplane maroon, person pink, void cream)?"""
    cmap = voc_colormap()
    assert cmap.shape == (256, 3) and cmap.dtype == np.uint8
    assert tuple(cmap[0]) == (0, 0, 0)
    assert tuple(cmap[1]) == (128, 0, 0)
    assert tuple(cmap[2]) == (0, 128, 0)
    assert tuple(cmap[15]) == (192, 128, 128)
    assert tuple(cmap[255]) == (224, 224, 192)


def test_colours_are_distinct():
    """Does every label get its own colour, so no two classes look alike in a mask?"""
    assert len({tuple(c) for c in voc_colormap()}) == 256


def test_pil_palette_round_trip():
    """Does a P-mode PNG with this palette render the same colours as decode_mask?"""
    from PIL import Image

    mask = np.array([[0, 1, 2], [15, 20, 255]], dtype=np.uint8)
    img = Image.fromarray(mask, mode="P")
    img.putpalette(voc_colormap().flatten().tolist())
    assert np.array_equal(np.array(img.convert("RGB")), decode_mask(torch.from_numpy(mask)))


def test_twenty_one_classes():
    """Does VOC_CLASSES list background plus the 20 VOC categories?"""
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[0] == "background"
    assert VOC_CLASSES[15] == "person"


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 2)), np.array([[0, 300]]), np.array([[-1, 0]])])
def test_decode_mask_rejects_bad_input(bad):
    """Is a mask of the wrong shape or out-of-range labels refused with a ValueError?"""
    with pytest.raises(ValueError, match="expects"):
        decode_mask(bad)
