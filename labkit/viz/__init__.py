"""Plots and widgets: palettes, sample grids, predictions, learning curves, sampling offsets.

The offset explorer widget lives in :mod:`labkit.viz.offsets` (``OffsetExplorer``), loaded on
first use because it needs ipywidgets and ipympl.
"""

from labkit.viz.offsets import capture_offsets, plot_sampling_locations, sampling_locations
from labkit.viz.overlay import overlay_mask, to_image
from labkit.viz.samples import class_legend, plot_predictions, show_samples

__all__ = [
    "overlay_mask",
    "to_image",
    "show_samples",
    "plot_predictions",
    "class_legend",
    "capture_offsets",
    "sampling_locations",
    "plot_sampling_locations",
]
