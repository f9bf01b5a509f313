"""Do the sample and prediction grids draw what they are given?"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from labkit.viz.samples import plot_predictions, show_samples


class _Toy:
    classes = ("background", "a", "b")

    def __init__(self, n=3):
        g = torch.Generator().manual_seed(0)
        self.items = [
            (torch.rand(3, 16, 20, generator=g), torch.randint(0, 3, (16, 20), generator=g))
            for _ in range(n)
        ]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_show_samples_draws_one_row_per_sample():
    """Does show_samples return a Figure with n rows of image, mask and overlay panels?"""
    fig = show_samples(_Toy(), 2)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 * 3
    drawn_mask = fig.axes[1].images[0].get_array()
    assert drawn_mask.shape == (16, 20, 3)


def test_show_samples_legend_lists_present_classes():
    """Does the legend name the classes present in the drawn masks?"""
    fig = show_samples(_Toy(), 1)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["background", "a", "b"]


def test_plot_predictions_accepts_logits():
    """Do logits give the same picture as their argmax labels?"""
    images, targets = torch.rand(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    logits = torch.randn(2, 3, 8, 8)
    a = plot_predictions(images, targets, logits)
    b = plot_predictions(images, targets, logits.argmax(1))
    np.testing.assert_array_equal(a.axes[2].images[0].get_array(), b.axes[2].images[0].get_array())


def test_plot_predictions_rejects_mismatched_batches():
    """Is a batch-size mismatch refused with the three sizes in the message?"""
    with pytest.raises(ValueError, match="2, 1, 2"):
        plot_predictions(
            torch.rand(2, 3, 8, 8),
            torch.zeros(1, 8, 8, dtype=torch.long),
            torch.zeros(2, 8, 8, dtype=torch.long),
        )


def test_show_samples_rejects_empty_dataset():
    """Is an empty dataset reported instead of drawing an empty figure?"""
    with pytest.raises(ValueError, match="empty"):
        show_samples(_Toy(0), 2)
