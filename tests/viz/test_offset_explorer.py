"""Does the offset explorer show, for the pixel clicked, the points sampling_locations gives?

These tests drive the widget from Python, without a browser: a click is a matplotlib mouse
event at the screen position of an image pixel, as ipympl delivers it. The browser test
(tests/test_offset_explorer_browser.py) clicks it for real in JupyterLab.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.backend_bases import MouseEvent
from torch import nn

from labkit.models import DeformConv2d
from labkit.viz.offset_explorer import OffsetExplorer
from labkit.viz.offsets import capture_offsets, sampling_locations


class _Net(nn.Module):
    """A stride-2 stem and two 3×3 layers (plain, v1 or v2), like lab 08's small network."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=2, padding=1)

        def layer():
            if kind == "conv":
                return nn.Conv2d(4, 4, 3, padding=1)
            return DeformConv2d(4, 4, modulated=kind == "v2")

        self.context = nn.Sequential(layer(), nn.ReLU(), layer())
        self.head = nn.Conv2d(4, 3, 1)
        for m in self.modules():
            if isinstance(m, DeformConv2d):  # offsets that vary over the image
                nn.init.normal_(m.offset_conv.weight, std=0.3)
        self.forwards = 0

    def forward(self, x):
        self.forwards += 1
        out = self.head(self.context(self.stem(x)))
        return nn.functional.interpolate(out, size=x.shape[-2:], mode="bilinear")


@pytest.fixture
def models():
    torch.manual_seed(0)
    return {"conv": _Net("conv"), "v1": _Net("v1"), "v2": _Net("v2")}


@pytest.fixture
def images():
    torch.manual_seed(1)
    return torch.randn(2, 3, 24, 28)


def _click(explorer: OffsetExplorer, panel: int, row: float, col: float) -> None:
    ax = explorer.figure.axes[panel]
    x, y = ax.transData.transform((col, row))
    MouseEvent("button_press_event", explorer.canvas, x, y, button=1)._process()


def _expected(models, images, index, pixel, layers=None):
    """What sampling_locations gives for each model, captured afresh."""
    names = ["context.0", "context.2"]
    return {
        name: sampling_locations(
            capture_offsets(m, images[index], names=names), pixel, layers=layers
        )
        for name, m in models.items()
    }


def test_a_click_shows_that_pixels_points_in_every_panel(models, images):
    """Does clicking an image pixel draw, in each panel, the points of that pixel?"""
    explorer = OffsetExplorer(models, images, pixel=(3, 3))
    before = explorer.figure.axes[1].collections[0].get_offsets().copy()
    _click(explorer, panel=1, row=17.2, col=20.6)
    assert (explorer.row.value, explorer.col.value) == (17, 21)
    assert "pixel (17, 21)" in explorer.status.value
    for i, (name, loc) in enumerate(_expected(models, images, 0, (17, 21)).items()):
        shown = explorer.figure.axes[i].collections[0].get_offsets()
        np.testing.assert_allclose(shown, loc.points.flip(-1).numpy(), atol=1e-5)
        torch.testing.assert_close(explorer.locations[name].weights, loc.weights)
    assert not np.allclose(explorer.figure.axes[1].collections[0].get_offsets(), before)
    assert math.isfinite(explorer.last_update_ms) and explorer.last_update_ms > 0


def test_plain_model_shows_the_regular_grid_and_v1_moves_off_it(models, images):
    """Is the plain panel the zero-offset grid, while the v1 points moved off it?"""
    explorer = OffsetExplorer(models, images, pixel=(12, 14))
    conv, v1 = explorer.locations["conv"], explorer.locations["v1"]
    # stride-2 features: row 12 is in feature row 6, centred at image row 6.5·2 − 0.5 = 12.5;
    # taps 2 image pixels apart, so two layers reach ±4 around it
    assert conv.center == (12.5, 14.5)
    assert {round(v, 4) for v in conv.points[:, 0].tolist()} == {12.5 + d for d in range(-4, 5, 2)}
    assert not torch.allclose(v1.points, conv.points)
    assert "regular grid" in explorer.figure.axes[0].get_title()


def test_sliders_layers_and_image_redraw(models, images):
    """Do the sliders, the layer choice and the image choice each redraw the right points?"""
    explorer = OffsetExplorer(models, images)
    explorer.row.value = 5
    assert explorer.locations["v2"].cell == _expected(models, images, 0, (5, 14))["v2"].cell
    explorer.layers.value = (1,)
    assert len(explorer.locations["v1"].points) == 9
    torch.testing.assert_close(
        explorer.locations["v1"].points,
        _expected(models, images, 0, (5, 14), layers=[1])["v1"].points,
    )
    explorer.layers.value = (0, 1)
    forwards = models["v1"].forwards
    explorer.image.value = 1
    torch.testing.assert_close(
        explorer.locations["v2"].points, _expected(models, images, 1, (5, 14))["v2"].points
    )
    assert models["v1"].forwards == forwards + 2  # the explorer's and _expected's
    explorer.image.value = 0
    explorer.image.value = 1
    assert models["v1"].forwards == forwards + 2  # one forward per image, then cached
    explorer.layers.value = ()
    assert "at least one layer" in explorer.status.value


def test_modulation_and_prediction_options(models, images):
    """Does the v2 mask scale the dots' size or opacity, and the checkbox draw the prediction?"""
    explorer = OffsetExplorer(models, images, pixel=(10, 10))
    dots = explorer.figure.axes[2].collections[0]
    weights = explorer.locations["v2"].weights.numpy()
    assert np.argmax(dots.get_sizes()) == np.argmax(weights)
    explorer.modulation.value = "opacity"
    assert np.argmax(dots.get_facecolors()[:, 3]) == np.argmax(weights)
    assert len(set(np.round(dots.get_sizes(), 6))) == 1
    plain = explorer.figure.axes[2].images[0].get_array().copy()
    explorer.prediction.value = True
    assert not np.allclose(explorer.figure.axes[2].images[0].get_array(), plain)


def test_bad_models_get_clear_messages(images):
    """Do plain-only models, mismatched ones and a bad image batch say what to do?"""
    with pytest.raises(ValueError, match="has no deformable convolution"):
        OffsetExplorer({"a": _Net("conv")}, images)
    other = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1))
    with pytest.raises(ValueError, match="no nn.Conv2d at .*same architecture"):
        OffsetExplorer({"v1": _Net("v1"), "other": other}, images)
    with pytest.raises(ValueError, match=r"expected images as Tensor\[N, 3, H, W\]"):
        OffsetExplorer(_Net("v1"), torch.randn(2, 1, 8, 8))
