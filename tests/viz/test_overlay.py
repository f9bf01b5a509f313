"""Do overlays blend the palette colour over the image only where a class is drawn?"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labkit.data.palette import voc_colormap
from labkit.viz.overlay import overlay_mask, to_image


def test_to_image_undoes_imagenet_normalisation():
    """Does to_image recover the [0, 1] image from its ImageNet-normalised tensor?"""
    from torchvision.transforms import v2

    image = torch.rand(3, 8, 9)
    normalised = v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])(image)
    np.testing.assert_allclose(
        to_image(normalised, normalized=True), image.permute(1, 2, 0).numpy(), atol=1e-5
    )
    np.testing.assert_allclose(to_image(image), image.permute(1, 2, 0).numpy(), atol=1e-6)


def test_overlay_blends_classes_and_leaves_background():
    """Is background left untouched and a class pixel the alpha blend with its palette colour?"""
    image = torch.rand(3, 4, 5)
    mask = torch.zeros(4, 5, dtype=torch.long)
    mask[1, 2] = 7
    mask[3, 4] = 255
    out = overlay_mask(image, mask, alpha=0.25)
    rgb = image.permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out[0, 0], rgb[0, 0], atol=1e-6)
    expected = 0.75 * rgb[1, 2] + 0.25 * voc_colormap()[7] / 255.0
    np.testing.assert_allclose(out[1, 2], expected, atol=1e-6)
    hidden = overlay_mask(image, mask, alpha=0.25, show_void=False)
    np.testing.assert_allclose(hidden[3, 4], rgb[3, 4], atol=1e-6)


def test_overlay_rejects_mismatched_mask():
    """Is a mask of another size refused with a message naming both sizes?"""
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 5\)"):
        overlay_mask(torch.rand(3, 4, 5), torch.zeros(4, 4, dtype=torch.long))
