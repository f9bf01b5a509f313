"""Working with finished run folders: reload, evaluate, compare, predict.

A run folder (``runs/<name>``, written by :func:`labkit.experiment.run_experiment`) holds
everything needed to rebuild its model: ``config.yaml`` and the checkpoints, which carry the
class names and the data root the run used. These functions back ``labkit evaluate``,
``labkit compare`` and ``labkit predict``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from labkit.checkpoint import CheckpointError, load_checkpoint, load_weights
from labkit.config import ExperimentConfig, load_config
from labkit.devices import cpu_threads
from labkit.errors import UsageError
from labkit.history import History, plot_histories
from labkit.tables import markdown_table, percent
from labkit.train import main_logits

__all__ = [
    "IMAGE_SUFFIXES",
    "LoadedRun",
    "compare_runs",
    "confusion_figure",
    "evaluate_run",
    "load_run",
    "predict_images",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class LoadedRun:
    """A run's config, classes and model with the chosen checkpoint's weights (eval mode)."""

    run_dir: Path
    config: ExperimentConfig
    classes: tuple[str, ...]
    model: nn.Module
    checkpoint: dict[str, Any]
    data_root: Path | None


def _require_run_folder(run_dir: Path) -> None:
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(
            f"{run_dir} is not a run folder: expected config.yaml, last.pt and "
            "best.pt written by `labkit train` (runs/<name>)."
        )


def load_run(
    run_dir: str | os.PathLike, *, checkpoint: str = "best", device: str | torch.device = "cpu"
) -> LoadedRun:
    """Rebuild a run's model from its folder.

    Args:
        run_dir (str | os.PathLike): the run folder.
        checkpoint (str): ``"best"`` (best validation mIoU) or ``"last"``.
        device (str | torch.device): where to put the model.

    Returns:
        The :class:`LoadedRun`.

    Raises:
        CheckpointError: if the folder or checkpoint is missing or does not fit.
        ValueError: on another ``checkpoint`` name.
    """
    from labkit.models import build_model

    if checkpoint not in ("best", "last"):
        raise UsageError(f"expected checkpoint 'best' or 'last'; got {checkpoint!r}.")
    run_dir = Path(run_dir)
    _require_run_folder(run_dir)
    cfg = load_config(run_dir / "config.yaml")
    state = load_checkpoint(run_dir / f"{checkpoint}.pt")
    meta = state.get("meta", {})
    classes = tuple(meta.get("classes", ()))
    if not classes:
        raise CheckpointError(
            f"{run_dir / (checkpoint + '.pt')} names no classes; expected a "
            "checkpoint written by `labkit train`."
        )
    model = build_model(cfg.model, num_classes=len(classes), **cfg.model_options)
    load_weights(model, state)
    model.to(device).eval()
    root = meta.get("data_root")
    return LoadedRun(run_dir, cfg, classes, model, state, Path(root) if root else None)


def evaluate_run(
    run_dir: str | os.PathLike | LoadedRun,
    *,
    split: str = "val",
    checkpoint: str = "best",
    device: str | torch.device | None = None,
    data_root: str | os.PathLike | None = None,
    progress: bool = False,
) -> dict:
    """Score a run's model on a split of its dataset.

    Args:
        run_dir (str | os.PathLike | LoadedRun): the run folder, or a run :func:`load_run` already
            loaded (then ``checkpoint`` and ``device`` are the ones it was loaded with).
        split (str): ``"val"``/``"train"`` (ADE20K's ``validation``/``training`` are accepted as
            such) or any split name of the dataset.
        checkpoint (str): ``"best"`` or ``"last"``.
        device (str | torch.device | None): where to run; ``None`` picks the emptiest GPU, else the
            CPU.
        data_root (str | os.PathLike | None): the dataset root; ``None`` uses the one the run
            trained on.
        progress (bool): show a progress bar.

    Returns:
        The scores of :func:`labkit.train.evaluate` plus ``classes``, ``split`` and
        ``checkpoint_epoch``.
    """
    from labkit.data.layouts import LAYOUTS, open_split
    from labkit.data.transforms import eval_transforms
    from labkit.devices import pick_device
    from labkit.experiment import resolve_data_root, take_first, val_batch_size
    from labkit.train import evaluate

    if isinstance(run_dir, LoadedRun):
        run = run_dir
        device = next(run.model.parameters()).device
    else:
        device = pick_device(device)
        run = load_run(run_dir, checkpoint=checkpoint, device=device)
    cfg = run.config
    layout = LAYOUTS[cfg.dataset]
    split = layout.split(split)
    root = Path(data_root) if data_root is not None else run.data_root
    if root is None:
        root = resolve_data_root(cfg, runs_root=run.run_dir.parent)
    limit = cfg.max_val_images if split == layout.splits[1] else cfg.max_train_images
    dataset = take_first(
        open_split(cfg.dataset, root, split, eval_transforms(size=cfg.eval_size)), limit
    )
    loader = DataLoader(dataset, batch_size=val_batch_size(cfg), num_workers=cfg.num_workers)
    with cpu_threads(cfg.cpu_threads):
        scores = evaluate(
            run.model,
            loader,
            num_classes=len(run.classes),
            device=device,
            progress=progress,
            distributed_eval=False,
        )
    scores.update(
        classes=run.classes,
        split=split,
        checkpoint_epoch=run.checkpoint.get(
            "epoch", run.checkpoint.get("progress", {}).get("epoch")
        ),
    )
    return scores


def confusion_figure(
    matrix: torch.Tensor, classes: Sequence[str], *, normalize: bool = True
) -> Figure:
    """A heatmap of a confusion matrix (rows: truth, columns: prediction).

    Drawn with ``imshow``, one image of ``C × C`` pixels: seaborn's ``heatmap`` draws a
    mesh cell per entry, and for ADE20K's 150 classes rendering that took 18 s and 19 GB of
    memory, enough to kill a student's kernel. Up to 12 classes each cell carries its value.

    Args:
        matrix (Tensor[C, C] int64): pixel counts.
        classes (Sequence[str]): the ``C`` class names.
        normalize (bool): divide each row by its total (recall per class); empty rows stay 0.

    Returns:
        The Figure.
    """
    m = matrix.double()
    if normalize:
        m = m / m.sum(1, keepdim=True).clamp(min=1)
    values, n = m.numpy(), len(classes)
    side = min(4 + 0.32 * n, 40)
    fig = Figure(figsize=(side + 1.5, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(
        values, cmap="viridis", vmin=0, vmax=1 if normalize else None, interpolation="nearest"
    )
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(n), list(classes), rotation=90, fontsize=min(10, 400 / max(n, 1)))
    ax.set_yticks(range(n), list(classes), fontsize=min(10, 400 / max(n, 1)))
    if n <= 12:
        light = values.max() / 2 if values.size else 0
        for (i, j), v in np.ndenumerate(values):
            ax.text(
                j,
                i,
                f"{v:.2f}" if normalize else f"{int(v)}",
                ha="center",
                va="center",
                fontsize=8,
                color="black" if v > light else "white",
            )
    ax.set(
        xlabel="predicted",
        ylabel="true",
        title="confusion matrix" + (" (row-normalised)" if normalize else ""),
    )
    return fig


def _read_metrics(run_dir: Path) -> dict:
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise CheckpointError(
            f"{run_dir} has no metrics.json; expected a run folder whose "
            "training finished (`labkit train`, or resume it with --resume)."
        )
    return json.loads(path.read_text())


def compare_runs(run_dirs: Sequence[str | os.PathLike]) -> tuple[str, Figure]:
    """Compare finished runs: a markdown table and overlaid learning curves.

    The table has one row per run (model, best validation mIoU, training mIoU of that epoch,
    pixel accuracy and the mIoU difference to the first run, in points), the layout of the
    course reports.

    Args:
        run_dirs (Sequence[str | os.PathLike]): run folders; the first is the reference.

    Returns:
        ``(markdown, figure)``.

    Raises:
        ValueError: if no folder is given.
        CheckpointError: if a folder is not a finished run.
    """
    if not run_dirs:
        raise UsageError("expected at least one run folder to compare; got none.")
    dirs = [Path(d) for d in run_dirs]
    for d in dirs:
        _require_run_folder(d)
    metrics = [_read_metrics(d) for d in dirs]
    ref = metrics[0]["val"]["miou"]
    rows = [
        [
            d.name,
            m["model"],
            *(
                percent(x, digits=2, sign=True)
                for x in (m["val"]["miou"], m["train"]["miou"], m["val"]["pixel_accuracy"])
            ),
            "—" if i == 0 else f"{100 * (m['val']['miou'] - ref):+.2f}",
        ]
        for i, (d, m) in enumerate(zip(dirs, metrics))
    ]
    header = ["run", "model", "val mIoU", "train mIoU", "pixel acc", "Δ val mIoU vs first"]
    histories = [History.from_csv(d / "history.csv") for d in dirs]
    return (
        markdown_table(header, rows, align="llrrrr"),
        plot_histories(histories, [d.name for d in dirs]),
    )


def _save_mask(mask: np.ndarray, path: Path) -> None:
    from labkit.data.palette import voc_colormap

    img = Image.fromarray(mask.astype(np.uint8), mode="P")
    img.putpalette(voc_colormap().reshape(-1).tolist())
    img.save(path)


@torch.no_grad()
def predict_images(
    run_dir: str | os.PathLike,
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    checkpoint: str = "best",
    device: str | torch.device | None = None,
    alpha: float = 0.5,
) -> list[Path]:
    """Segment every image of a folder with a run's model.

    For each ``<name>.<ext>`` writes ``<name>_mask.png`` (palette PNG whose pixel values are
    the class ids, a valid VOC label file) and ``<name>_overlay.png`` (the mask blended over
    the image). Images are predicted one at a time at their own size (or resized like the
    run's validation images when it used ``eval_size``; the mask is scaled back).

    Args:
        run_dir (str | os.PathLike): the run folder.
        in_dir (str | os.PathLike): folder of images (``IMAGE_SUFFIXES``).
        out_dir (str | os.PathLike): where to write; created if missing.
        checkpoint (str): ``"best"`` or ``"last"``.
        device (str | torch.device | None): where to run; ``None`` picks the emptiest GPU, else the
            CPU.
        alpha (float): opacity of the mask in the overlay.

    Returns:
        The files written, masks and overlays in turn.

    Raises:
        ValueError: if ``in_dir`` is not a folder or holds no images.
    """
    from labkit.data.transforms import eval_transforms
    from labkit.devices import pick_device

    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise UsageError(f"expected a folder of images; {in_dir} is not a folder.")
    images = sorted(p for p in in_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise UsageError(f"expected images ({', '.join(IMAGE_SUFFIXES)}) in {in_dir}; found none.")
    device = pick_device(device)
    run = load_run(run_dir, checkpoint=checkpoint, device=device)
    transform = eval_transforms(size=run.config.eval_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    with cpu_threads(run.config.cpu_threads):
        return [
            p
            for path in images
            for p in _predict_one(run, path, transform, out_dir, device=device, alpha=alpha)
        ]


@torch.no_grad()
def _predict_one(
    run: LoadedRun, path: Path, transform: Any, out_dir: Path, *, device: torch.device, alpha: float
) -> list[Path]:
    from labkit.data.voc import read_rgb
    from labkit.viz import overlay_mask

    rgb = read_rgb(path)  # (H, W, 3) uint8
    image, _ = transform(rgb, np.zeros(rgb.shape[:2], np.uint8))  # (3, h, w)
    logits = main_logits(run.model(image.unsqueeze(0).to(device)))  # (1, C, h, w)
    if logits.shape[-2:] != rgb.shape[:2]:
        logits = F.interpolate(
            logits.float(), size=rgb.shape[:2], mode="bilinear", align_corners=False
        )
    mask = logits.argmax(1)[0].cpu().numpy()  # (H, W)
    mask_path = out_dir / f"{path.stem}_mask.png"
    overlay_path = out_dir / f"{path.stem}_overlay.png"
    _save_mask(mask, mask_path)
    blend = overlay_mask(rgb.astype(np.float32) / 255.0, mask, alpha=alpha)
    Image.fromarray((blend * 255).round().astype(np.uint8)).save(overlay_path)
    return [mask_path, overlay_path]
