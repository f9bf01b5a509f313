"""The main job on the embedded default dataset: generate, train, evaluate, plot.

``make demo`` runs :func:`run_demo` through ``labkit demo``: it generates the Shapes set,
trains the baseline FCN for a short fixed budget on the CPU, evaluates it and writes a
figure. It is what a new instructor runs first to see that the kit works end to end.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from labkit.data import VOCSegmentation, eval_transforms, generate_shapes, train_transforms
from labkit.models import build_model, count_parameters
from labkit.schedules import build_scheduler
from labkit.train import History, evaluate, fit
from labkit.viz import plot_predictions

__all__ = ["DemoConfig", "DemoResult", "run_demo"]

log = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    """What the demo generates and trains. The defaults fit about a minute of 2 CPU cores."""

    num_train: int = 320
    num_val: int = 80
    size: int = 96
    num_classes: int = 21
    model: str = "baseline_fcn"
    epochs: int = 8
    batch_size: int = 16
    lr: float = 2e-3
    seed: int = 0


@dataclass
class DemoResult:
    """What the demo produced."""

    config: DemoConfig
    history: History
    scores: dict
    classes: tuple[str, ...]
    parameters: int
    files: dict[str, Path] = field(default_factory=dict)


def run_demo(out: str | Path, *, config: DemoConfig | None = None,
             progress: bool = True) -> DemoResult:
    """Generate the Shapes set, train a small FCN, evaluate it and save a figure.

    Args:
        out: run folder; the data go to ``out/data``, results to ``out``.
        config: sizes and training budget; :class:`DemoConfig` defaults when ``None``.
        progress: show progress bars.

    Returns:
        The :class:`DemoResult`; ``files`` maps ``figure``, ``curves``, ``history`` and
        ``metrics`` to the files written.
    """
    cfg = config or DemoConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    data_root = generate_shapes(out / "data", num_train=cfg.num_train, num_val=cfg.num_val,
                                size=cfg.size, num_classes=cfg.num_classes, seed=cfg.seed)
    train_set = VOCSegmentation(data_root, split="train",
                                transforms=train_transforms(crop_size=cfg.size, scale=(0.75, 1.5)))
    val_set = VOCSegmentation(data_root, split="val", transforms=eval_transforms())
    generator = torch.Generator().manual_seed(cfg.seed)
    train_loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True,
                              drop_last=True, generator=generator)
    val_loader = DataLoader(val_set, batch_size=cfg.batch_size)

    model = build_model(cfg.model, num_classes=cfg.num_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    scheduler = build_scheduler("poly", optimizer, total_steps=cfg.epochs * len(train_loader))
    loss_fn = nn.CrossEntropyLoss(ignore_index=255)
    history = fit(model, train_loader, val_loader, epochs=cfg.epochs, optimizer=optimizer,
                  loss_fn=loss_fn, scheduler=scheduler, num_classes=cfg.num_classes,
                  device="cpu", progress=progress)
    scores = evaluate(model, val_loader, num_classes=cfg.num_classes, device="cpu",
                      loss_fn=loss_fn)

    images, masks = next(iter(val_loader))
    model.eval()
    with torch.no_grad():
        preds = model(images).argmax(1)
    files = {
        "figure": out / "predictions.png",
        "curves": out / "learning_curves.png",
        "history": out / "history.csv",
        "metrics": out / "metrics.json",
    }
    plot_predictions(images, masks, preds, classes=val_set.classes).savefig(files["figure"], dpi=90)
    history.plot().savefig(files["curves"], dpi=90)
    history.to_csv(files["history"])
    files["metrics"].write_text(json.dumps({
        "config": asdict(cfg),
        "pixel_accuracy": scores["pixel_accuracy"], "mean_accuracy": scores["mean_accuracy"],
        "miou": scores["miou"], "fwiou": scores["fwiou"],
        "iou": dict(zip(val_set.classes, scores["iou"].tolist())),
    }, indent=2))
    return DemoResult(config=cfg, history=history, scores=scores, classes=tuple(val_set.classes),
                      parameters=count_parameters(model), files=files)
