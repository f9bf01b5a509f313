"""A notebook widget: click a pixel and see where the deformable layers look for it."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
from ipympl.backend_nbagg import Canvas, FigureManager
from matplotlib.figure import Figure
from torch import Tensor, nn

from labkit.viz._sampling_plot import Panel
from labkit.viz.offsets import (
    LayerOffsets,
    SamplingLocations,
    capture_with_logits,
    deformable_layer_names,
    no_deformable_error,
    sampling_locations,
)
from labkit.viz.overlay import overlay_mask, to_image

__all__ = ["OffsetExplorer"]

log = logging.getLogger(__name__)


def _as_images(images: Tensor | Sequence[Tensor]) -> list[Tensor]:
    if isinstance(images, Tensor) and images.dim() == 3:
        images = images[None]
    images = list(images)
    if not images or any(
        not isinstance(i, Tensor) or i.dim() != 3 or i.shape[0] != 3 for i in images
    ):
        shapes = [list(i.shape) if isinstance(i, Tensor) else type(i).__name__ for i in images]
        raise ValueError(
            f"expected images as Tensor[N, 3, H, W] or a list of Tensor[3, H, W]; "
            f"got {shapes or 'nothing'}. Pass e.g. a validation batch: images[:4]."
        )
    return images


def _layer_names(models: Mapping[str, nn.Module]) -> dict[str, list[str]]:
    """The layers to capture in every model: its own deformable ones, or for a plain model
    the convolutions in the places where the first deformable model has them."""
    own = {name: deformable_layer_names(m) for name, m in models.items()}
    reference = next((names for names in own.values() if names), None)
    if reference is None:
        raise no_deformable_error(next(iter(models.values())))
    for name, names in own.items():
        if names and len(names) != len(reference):
            raise ValueError(
                f"model {name!r} has {len(names)} deformable layers and another "
                f"has {len(reference)}; compare models of one architecture"
            )
        if not names:
            convs = {n for n, m in models[name].named_modules() if isinstance(m, nn.Conv2d)}
            missing = [n for n in reference if n not in convs]
            if missing:
                raise ValueError(
                    f"model {name!r} has no deformable layers, and no nn.Conv2d at {missing} "
                    f"where the deformable model has them, so its regular grid cannot be "
                    "shown; pass a plain model of the same architecture"
                )
            own[name] = reference
    return own


class OffsetExplorer(widgets.VBox):
    """Click a pixel of an image and see where the models' deformable layers sample for it.

    One panel per model, side by side: the star is the output pixel, the dots the points it
    reaches through the chosen layers (see :func:`labkit.viz.offsets.sampling_locations`),
    the orange rings the top layer's own taps. A plain model of the same architecture shows
    its regular grid. The v2 mask product scales the dots' size or opacity; the predicted
    mask can be drawn underneath. Clicking needs the ipympl front end (``pip install ipympl``
    puts it in JupyterLab); the row and column sliders do the same everywhere.

    Each image runs through each model once (then cached); a new pixel only unrolls the
    offsets and redraws the points. ``last_update_ms`` says how long the last update took.

    Args:
        models (nn.Module | Mapping[str, nn.Module]): a model, or ``{name: model}`` to compare, e.g.
            ``{"conv": plain, "v1": m1, "v2": m2}``; at least one with deformable layers.
        images (Tensor[N, 3, H, W] or list of Tensor[3, H, W]): the images to choose from,
            normalised as for training.
        layers (Sequence[int] | None): indices of the deformable layers to unroll at first; ``None``
            takes the top three (or fewer).
        pixel (tuple[int, int] | None): ``(row, column)`` to show first; ``None`` takes the image
            centre.
        modulation (str): ``"size"`` or ``"opacity"``.
        show_prediction (bool): draw the predicted mask under the points at first.
        panel_size (float): inches per panel.

    Raises:
        ValueError: no model with deformable layers, models of different architectures, or
            images that are not ``[3, H, W]``.
    """

    def __init__(
        self,
        models: nn.Module | Mapping[str, nn.Module],
        images: Tensor | Sequence[Tensor],
        *,
        layers: Sequence[int] | None = None,
        pixel: tuple[int, int] | None = None,
        modulation: str = "size",
        show_prediction: bool = False,
        panel_size: float = 3.3,
    ) -> None:
        self.models = dict(models) if isinstance(models, Mapping) else {"model": models}
        self.images = _as_images(images)
        self._names = _layer_names(self.models)
        self._cache: dict[tuple[str, int], tuple[list[LayerOffsets], Tensor]] = {}
        self.locations: dict[str, SamplingLocations] = {}
        self.last_update_ms = float("nan")
        self._busy = False
        self._shown: tuple | None = None
        first, _ = self._captured(next(iter(self.models)), 0)
        self._build_controls(first, layers, pixel, modulation, show_prediction)
        self._build_figure(panel_size)
        self.canvas.mpl_connect("button_press_event", self._on_click)
        for control in (
            self.image,
            self.row,
            self.col,
            self.layers,
            self.modulation,
            self.prediction,
        ):
            control.observe(lambda change: self.update(), names="value")
        super().__init__(
            [
                widgets.HBox([self.image, self.modulation, self.prediction]),
                widgets.HBox([widgets.VBox([self.row, self.col]), self.layers]),
                self.canvas,
                self.status,
            ]
        )
        self.add_class("labkit-offset-explorer")
        self.update()

    def _build_controls(
        self,
        first: list[LayerOffsets],
        layers: Sequence[int] | None,
        pixel: tuple[int, int] | None,
        modulation: str,
        show_prediction: bool,
    ) -> None:
        """Make the sliders, the layer list, the toggles and the status line.

        ``first`` (the first model's layers on the first image) names the layer choices;
        the other arguments are :class:`OffsetExplorer`'s.
        """
        h, w = self.images[0].shape[-2:]
        depth = len(next(iter(self._names.values())))
        if layers is None:
            layers = range(max(0, depth - 3), depth)

        self.image = widgets.IntSlider(0, min=0, max=len(self.images) - 1, description="image")
        self.row = widgets.IntSlider(
            h // 2 if pixel is None else pixel[0], min=0, max=h - 1, description="row"
        )
        self.col = widgets.IntSlider(
            w // 2 if pixel is None else pixel[1], min=0, max=w - 1, description="column"
        )
        self.layers = widgets.SelectMultiple(
            options=[
                (f"{i + 1}: {c.name} ({c.output_size[0]}×{c.output_size[1]})", i)
                for i, c in enumerate(first)
            ],
            value=tuple(int(i) % depth for i in layers),
            rows=min(depth, 6),
            description="layers",
        )
        self.modulation = widgets.ToggleButtons(
            options=["size", "opacity"], value=modulation, description="mask as"
        )
        self.prediction = widgets.Checkbox(show_prediction, description="predicted mask")
        self.status = widgets.HTML()
        self.status.add_class("labkit-offset-status")

    def _build_figure(self, panel_size: float) -> None:
        """Make the figure, its ipympl canvas and one panel (``panel_size`` inches) per model."""
        self.figure = Figure(
            figsize=(panel_size * len(self.models), panel_size), layout="constrained"
        )
        self.canvas = Canvas(self.figure)
        FigureManager(self.canvas, 0)
        self.canvas.toolbar_visible = self.canvas.header_visible = False
        self.canvas.footer_visible = self.canvas.resizable = False
        # ipympl sizes its canvas when the canvas itself is displayed; inside a box it is not,
        # so give the front end the figure's size in CSS pixels, as that display would.
        self.canvas._size = tuple(v / self.canvas.device_pixel_ratio for v in self.figure.bbox.size)
        self.canvas.add_class("labkit-offset-canvas")
        axes = self.figure.subplots(1, len(self.models), squeeze=False)[0]
        self._panels = {
            name: Panel(ax, to_image(self.images[0])) for name, ax in zip(self.models, axes)
        }

    def _captured(self, name: str, index: int) -> tuple[list[LayerOffsets], Tensor]:
        key = (name, index)
        if key not in self._cache:
            self._cache[key] = capture_with_logits(
                self.models[name], self.images[index], self._names[name]
            )
        return self._cache[key]

    def _on_click(self, event) -> None:
        if event.inaxes is None or event.xdata is None or event.button not in (1, None):
            return
        self.select(int(round(event.ydata)), int(round(event.xdata)))

    def select(self, row: int, col: int) -> None:
        """Show the sampling points of image pixel ``(row, col)``, as a click does."""
        self._busy = True  # one update for both sliders
        try:
            self.row.value = min(max(row, 0), self.row.max)
            self.col.value = min(max(col, 0), self.col.max)
        finally:
            self._busy = False
        self.update()

    def update(self) -> None:
        """Redraw every panel for the current image, pixel, layers and options."""
        if self._busy or not self.layers.value:
            if not self.layers.value:
                self.status.value = "Choose at least one layer."
            return
        started = time.perf_counter()
        index, pixel = self.image.value, (self.row.value, self.col.value)
        shown = (index, self.prediction.value)
        for name, panel in self._panels.items():
            captured, logits = self._captured(name, index)
            if shown != self._shown:
                image = self.images[index]
                panel.picture.set_data(
                    overlay_mask(image, logits.argmax(0), alpha=0.45)
                    if self.prediction.value
                    else to_image(image)
                )
            loc = sampling_locations(captured, pixel, layers=sorted(self.layers.value))
            panel.show(loc, modulation=self.modulation.value)
            grid = " (regular grid)" if captured[-1].version == "conv" else ""
            title = f"{name}{grid}: {len(loc.points)} points"
            if panel.ax.get_title() != title:
                panel.ax.set_title(title, fontsize=9)
            self.locations[name] = loc
        self._shown = shown
        self.canvas.draw()
        # The panels do not move after the first layout; redoing it costs more than the rest
        # of an update.
        self.figure.set_layout_engine("none")
        self.last_update_ms = 1000 * (time.perf_counter() - started)
        loc = next(iter(self.locations.values()))
        self.status.value = (
            f"image {index}, pixel ({pixel[0]}, {pixel[1]}) → output cell {loc.cell} of "
            f"{loc.layers[-1]}: {len(loc.points)} points through {len(loc.layers)} layer(s); "
            f"update {self.last_update_ms:.0f} ms"
        )
        log.debug("offset explorer update: %.1f ms", self.last_update_ms)
