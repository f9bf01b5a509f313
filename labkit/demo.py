"""The main job on the embedded default dataset: generate, train, evaluate, plot.

``make demo`` runs :func:`run_demo` through ``labkit demo``. It is the ``baseline_quick``
preset (the PA3 baseline FCN on the generated Shapes set, on the CPU) run end to end with the
same code as ``labkit train``, ``labkit evaluate`` and ``labkit predict``: the Shapes set is
drawn when missing, the network is trained for the preset's fixed budget, the best
checkpoint is scored on the validation split, and figures are written next to the run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from labkit.config import ExperimentConfig, apply_overrides, load_preset
from labkit.data import VOCSegmentation, eval_transforms
from labkit.experiment import run_experiment
from labkit.history import History
from labkit.models import count_parameters
from labkit.runs import confusion_figure, evaluate_run, load_run
from labkit.viz import plot_predictions

__all__ = ["DemoResult", "run_demo"]


@dataclass
class DemoResult:
    """What the demo produced.

    Attributes:
        config: the experiment that was trained.
        history: per-epoch record of the training run.
        scores: validation scores of the best checkpoint (see :func:`labkit.train.evaluate`).
        classes: class names, index = class id.
        parameters: number of parameters of the model.
        files: name → path of everything written.
    """

    config: ExperimentConfig
    history: History
    scores: dict
    classes: tuple[str, ...]
    parameters: int
    files: dict[str, Path] = field(default_factory=dict)


def run_demo(
    out: str | os.PathLike,
    *,
    preset: str = "baseline_quick",
    overrides: dict | None = None,
    progress: bool = True,
) -> DemoResult:
    """Train a preset on the Shapes set, evaluate it and save figures.

    Args:
        out (str | os.PathLike): folder for the run (``out/<preset>``) and the generated data
            (``out/.data``).
        preset (str): the experiment preset to run (``labkit/presets/<preset>.yaml``).
        overrides (dict | None): config keys to change, e.g. ``{"epochs": 1, "shapes.num_train":
            16}``.
        progress (bool): show progress bars.

    Returns:
        The :class:`DemoResult`. ``files`` holds ``predictions``, ``curves``, ``confusion``,
        ``history``, ``metrics`` and ``best``. A rerun replaces the earlier demo run.
    """
    cfg = load_preset(preset)
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    result = run_experiment(cfg, runs_root=out, overwrite=True, progress=progress)
    run = load_run(result.run_dir, checkpoint="best", device="cpu")
    scores = evaluate_run(run, split="val")

    val = VOCSegmentation(
        run.data_root, split="val", transforms=eval_transforms(size=cfg.eval_size)
    )
    images, masks = next(iter(DataLoader(val, batch_size=4)))
    with torch.no_grad():
        preds = run.model(images).argmax(1)
    files = dict(result.files)
    files["predictions"] = result.run_dir / "predictions.png"
    files["confusion"] = result.run_dir / "confusion_matrix.png"
    plot_predictions(images, masks, preds, classes=run.classes).savefig(
        files["predictions"], dpi=90
    )
    confusion_figure(scores["matrix"], run.classes).savefig(files["confusion"], dpi=90)
    return DemoResult(
        config=cfg,
        history=result.history,
        scores=scores,
        classes=run.classes,
        parameters=count_parameters(run.model),
        files=files,
    )
