"""Drawing the sampling points of :mod:`labkit.viz.offsets` over an image."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from labkit.viz.overlay import overlay_mask, to_image

if TYPE_CHECKING:  # offsets imports this module; the type is only needed for hints
    from labkit.viz.offsets import SamplingLocations

__all__ = ["plot_sampling_locations"]


_MODULATION = ("size", "opacity")


class Panel:
    """The artists of one sampling-points picture, made once and then updated in place, so
    that a new pixel redraws only the points (what keeps :class:`OffsetExplorer` quick)."""

    def __init__(self, ax: Axes, picture: np.ndarray) -> None:
        h, w = picture.shape[:2]
        self.ax = ax
        self.picture = ax.imshow(picture, interpolation="nearest")
        self.points = ax.scatter(np.zeros(0), np.zeros(0), s=8, c="cyan", edgecolors="none")
        self.first = ax.scatter(
            np.zeros(0), np.zeros(0), s=46, facecolors="none", edgecolors="orange", linewidths=1.4
        )
        self.center = ax.scatter(
            np.zeros(0), np.zeros(0), marker="*", s=220, c="white", edgecolors="black", zorder=5
        )
        ax.set(xlim=(-0.5, w - 0.5), ylim=(h - 0.5, -0.5))
        ax.set_axis_off()

    def show(self, locations: SamplingLocations, *, modulation: str = "size") -> None:
        if modulation not in _MODULATION:
            raise ValueError(f"expected modulation to be one of {_MODULATION}; got {modulation!r}")
        xy = locations.points.flip(-1).numpy()  # (P, 2) as (x, y) for matplotlib
        strength = (locations.weights / locations.weights.max().clamp_min(1e-12)).numpy()
        # fewer, larger dots for one layer; many small ones for three
        base = float(np.clip(400 / len(xy) ** 0.5, 4, 40))
        colours = np.tile(np.array([0.0, 1.0, 1.0, 0.9]), (len(xy), 1))
        if modulation == "size":
            sizes = base * (0.1 + 0.9 * strength)
        else:
            sizes = np.full(len(xy), base)
            colours[:, 3] = 0.08 + 0.92 * strength
        self.points.set_offsets(xy)
        self.points.set_sizes(sizes)
        self.points.set_facecolors(colours)
        top = locations.levels[0].flip(-1).numpy()
        self.first.set_offsets(top if len(locations.levels) > 1 else np.zeros((0, 2)))
        self.center.set_offsets([locations.center[::-1]])


def plot_sampling_locations(
    image: Tensor,
    locations: SamplingLocations,
    *,
    mask: Tensor | None = None,
    modulation: str = "size",
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw one output pixel's sampling points over the image.

    The star is the output pixel, the dots the ``K^L`` points it reaches, and the orange rings
    the ``K`` points of the top layer when more than one layer is unrolled. The v2 mask
    product, relative to its largest value, scales each dot's size (or opacity).

    Args:
        image (Tensor[3, H, W]): the image, normalised or in [0, 1].
        locations (SamplingLocations): from :func:`sampling_locations`.
        mask (Tensor[H, W], optional): class ids drawn over the image, e.g. the prediction.
        modulation (str): ``"size"`` or ``"opacity"``.
        title (str | None): the panel's title.
        ax (Axes | None): draw into this axes instead of a new figure.

    Returns:
        Figure: the figure holding the panel.
    """
    if ax is None:
        fig = Figure(figsize=(4, 4), layout="constrained")
        ax = fig.add_subplot()
    picture = to_image(image) if mask is None else overlay_mask(image, mask, alpha=0.45)
    Panel(ax, picture).show(locations, modulation=modulation)
    if title is not None:
        ax.set_title(title, fontsize=9)
    return ax.figure
