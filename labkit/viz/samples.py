"""Grids of images, masks and predictions, returned as matplotlib Figures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from labkit.data.palette import decode_mask, voc_colormap
from labkit.viz.overlay import overlay_mask, to_image

__all__ = ["show_samples", "plot_predictions", "class_legend"]


def show_samples(
    dataset,
    n: int = 4,
    *,
    indices: Sequence[int] | None = None,
    classes: Sequence[str] | None = None,
    overlay: bool = True,
) -> Figure:
    """Draw ``n`` samples of a segmentation dataset: image, mask and (optionally) overlay.

    Args:
        dataset (Dataset): indexable, returning ``(image Tensor[3, H, W], mask Tensor[H, W])``.
        n (int): how many samples (the first ``n`` unless ``indices`` is given).
        indices (Sequence[int] | None): which samples to draw.
        classes (Sequence[str] | None): class names for the legend; defaults to ``dataset.classes``
            when present.
        overlay (bool): add a third column with the mask blended over the image.

    Returns:
        A Figure with one row per sample.
    """
    if indices is None:
        indices = range(min(n, len(dataset)))
    pairs = [dataset[i] for i in indices]
    if not pairs:
        raise ValueError(
            "show_samples got an empty dataset; expected at least one sample. "
            "Check the split name and the data root."
        )
    columns = ["image", "mask"] + (["overlay"] if overlay else [])
    fig = Figure(figsize=(3 * len(columns), 3 * len(pairs)), layout="constrained")
    axes = fig.subplots(len(pairs), len(columns), squeeze=False)
    present: set[int] = set()
    for row, (image, mask) in zip(axes, pairs):
        present.update(int(c) for c in torch.as_tensor(mask).unique().tolist())
        panels = [to_image(image), decode_mask(mask)]
        if overlay:
            panels.append(overlay_mask(image, mask))
        for ax, panel, title in zip(row, panels, columns):
            ax.imshow(panel, interpolation="nearest")
            ax.set_title(title)
            ax.axis("off")
    names = classes if classes is not None else getattr(dataset, "classes", None)
    if names is not None:
        class_legend(fig, names, present=sorted(present))
    return fig


def plot_predictions(
    images: torch.Tensor,
    targets: torch.Tensor,
    preds: torch.Tensor,
    *,
    classes: Sequence[str] | None = None,
    max_rows: int = 4,
) -> Figure:
    """Draw predictions next to the ground truth.

    Args:
        images (Tensor[N, 3, H, W] float): input images (normalised or in [0, 1]).
        targets (Tensor[N, H, W] int64): ground-truth masks, 255 = void.
        preds (Tensor[N, H, W] int64): predicted labels (or Tensor[N, C, H, W] logits).
        classes (Sequence[str] | None): class names for the legend.
        max_rows (int): draw at most this many samples.

    Returns:
        A Figure with columns image, ground truth, prediction.
    """
    if preds.ndim == 4:
        preds = preds.argmax(1)
    if not (images.shape[0] == targets.shape[0] == preds.shape[0]):
        raise ValueError(
            f"expected as many images, targets and predictions; got "
            f"{images.shape[0]}, {targets.shape[0]}, {preds.shape[0]}."
        )
    rows = min(max_rows, images.shape[0])
    fig = Figure(figsize=(9, 3 * rows), layout="constrained")
    axes = fig.subplots(rows, 3, squeeze=False)
    present: set[int] = set()
    for i in range(rows):
        present.update(targets[i].unique().tolist())
        present.update(preds[i].unique().tolist())
        for ax, panel, title in zip(
            axes[i],
            (to_image(images[i]), decode_mask(targets[i]), decode_mask(preds[i])),
            ("image", "ground truth", "prediction"),
        ):
            ax.imshow(panel, interpolation="nearest")
            ax.set_title(title)
            ax.axis("off")
    if classes is not None:
        class_legend(fig, classes, present=sorted(present))
    return fig


def class_legend(
    fig: Figure, classes: Sequence[str], *, present: Sequence[int] | None = None, ncol: int = 6
) -> None:
    """Add a palette legend for ``classes`` under a figure.

    Args:
        fig (Figure): the figure to annotate.
        classes (Sequence[str]): class names, index = class id.
        present (Sequence[int] | None): only list these class ids (and void when 255 is among them).
        ncol (int): legend columns.
    """
    cmap = voc_colormap()
    ids = [
        i
        for i in (present if present is not None else range(len(classes)))
        if i < len(classes) or i == 255
    ]
    handles = [
        Patch(color=np.asarray(cmap[i]) / 255.0, label="void" if i == 255 else classes[i])
        for i in ids
    ]
    if handles:
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=min(ncol, len(handles)),
            fontsize="small",
            frameon=False,
        )
