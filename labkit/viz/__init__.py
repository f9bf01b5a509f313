"""Plots and widgets: palettes, sample grids, predictions, learning curves."""

from labkit.viz.overlay import overlay_mask, to_image
from labkit.viz.samples import class_legend, plot_predictions, show_samples

__all__ = ["overlay_mask", "to_image", "show_samples", "plot_predictions", "class_legend"]
