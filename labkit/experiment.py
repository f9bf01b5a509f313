"""From an :class:`~labkit.config.ExperimentConfig` to a finished run folder.

:func:`run_experiment` builds the datasets, loaders, model, optimizer, schedule and loss a
config describes, trains with :func:`labkit.train.fit` and writes the run folder::

    runs/<name>/
        config.yaml           the full config (every key spelled out)
        last.pt, best.pt      checkpoints (last: resumable state; best: best val mIoU)
        history.csv           one row per epoch (labkit.history.History)
        iterations.csv        one row per optimizer step: loss and learning rate
        metrics.json          scores of the best epoch, model size, time, data used
        learning_curves.png   loss, mIoU and learning rate per epoch
        class_counts.json     pixel counts per class (only with class_weighting)
        tensorboard/          event files (only with tensorboard: true)

Data are read from the config's ``data_root`` or ``$LABKIT_DATA`` and never written there;
the only thing written outside the run folder is a Shapes set drawn on first use into
``<runs root>/.data/`` (or, where that cannot be written, the user's cache
``~/.cache/labkit``) when no Shapes set was given (see :func:`resolve_data_root`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from labkit import distributed
from labkit.config import ConfigError, ExperimentConfig, save_config
from labkit.data.layouts import LAYOUTS, open_split
from labkit.devices import cap_memory, cpu_threads, pick_device
from labkit.errors import LabkitError
from labkit.history import History
from labkit.sampling import ResumableSampler, SeededDataset

__all__ = [
    "ExperimentResult",
    "RunExistsError",
    "TrainingSetup",
    "build_datasets",
    "build_loaders",
    "build_loss_fn",
    "build_optimizer",
    "build_training",
    "resolve_data_root",
    "run_experiment",
    "split_names",
    "take_first",
]

log = logging.getLogger(__name__)

#: Files a run writes into its folder; ``overwrite=True`` removes exactly these.
RUN_FILES = (
    "config.yaml",
    "last.pt",
    "best.pt",
    "history.csv",
    "iterations.csv",
    "metrics.json",
    "learning_curves.png",
    "class_counts.json",
    "tensorboard",
)
# Keys that may change when a run is resumed: they do not change what is computed.
_RESUMABLE_CHANGES = {
    "description",
    "device",
    "num_workers",
    "tensorboard",
    "checkpoint_every",
    "gpu_memory_gib",
    "cpu_threads",
}


class RunExistsError(LabkitError, ValueError):
    """The run folder already holds a run and neither resume nor overwrite was asked for."""


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` produced."""

    config: ExperimentConfig
    run_dir: Path
    history: History
    metrics: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


def split_names(cfg: ExperimentConfig) -> tuple[str, str]:
    """The training and validation split names of the config's dataset."""
    default = LAYOUTS[cfg.dataset].splits
    return cfg.train_split or default[0], cfg.val_split or default[1]


def _shapes_arguments(cfg: ExperimentConfig) -> dict[str, Any]:
    s = cfg.shapes
    return dict(
        num_train=s.num_train,
        num_val=s.num_val,
        size=s.size,
        num_classes=s.num_classes,
        seed=s.seed,
        deformation=float(s.deformation),
    )


def _shapes_meta(root: Path) -> dict | None:
    try:
        return json.loads((root / "VOCdevkit" / "VOC2012" / "shapes.json").read_text())
    except (OSError, ValueError):
        return None


def _drawn_with(root: Path, args: dict[str, Any]) -> bool:
    meta = _shapes_meta(root)
    return (
        meta is not None
        and {k: v for k, v in meta.get("arguments", {}).items() if k in args} == args
    )


def _user_cache() -> list[Path]:
    """``$XDG_CACHE_HOME/labkit``, else ``~/.cache/labkit`` (the XDG base directory rule);
    none for a user without a home (no ``$HOME``, no passwd entry)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    try:
        return [(Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "labkit"]
    except RuntimeError:
        return []


def _unwritable(folder: Path) -> OSError | None:
    """``None`` if ``folder`` can be made and written (a file is made and removed), else why."""
    try:  # permission bits do not tell: a read-only mount or root-squashed NFS say no later
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".labkit-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc
    return None


def _shapes_home(candidates: list[Path], args: dict[str, Any], *, hint: str) -> Path:
    """The first candidate that holds the set or can be written; DatasetNotFoundError if none."""
    from labkit.data import DatasetNotFoundError

    tried: list[tuple[Path, OSError]] = []
    for folder in candidates:
        if _drawn_with(folder, args) or (why := _unwritable(folder)) is None:
            if tried:
                log.warning(
                    "cannot write %s (%s); the Shapes set goes to %s instead",
                    tried[0][0],
                    tried[0][1].strerror or tried[0][1],
                    folder,
                )
            return folder
        tried.append((folder, why))
    places = "; ".join(f"{p} ({type(e).__name__}: {e.strerror or e})" for p, e in tried)
    raise DatasetNotFoundError(
        f"no Shapes set drawn with {args}, and nowhere to draw one: tried {places}. {hint}"
    ) from tried[-1][1]


def resolve_data_root(cfg: ExperimentConfig, *, runs_root: str | os.PathLike = "runs") -> Path:
    """Where the config's dataset lives, drawing the Shapes set first if needed.

    VOC and ADE20K: ``data_root``, else ``$LABKIT_DATA`` (checked when the dataset opens).
    Shapes, in order: ``data_root`` (used as it is if it holds a Shapes set, whatever its
    options, else drawn there with the config's ``shapes`` options); ``$LABKIT_DATA`` if it
    holds a Shapes set drawn with exactly the config's options (read only); else
    ``<runs_root>/.data/shapes-<options>``, drawn once and reused by every later run with
    the same options. Where ``runs_root`` cannot be written (a read-only course folder, a
    student who is not its owner), the set goes to the user's cache instead,
    ``$XDG_CACHE_HOME/labkit/shapes-<options>`` (default ``~/.cache/labkit``), with a warning.

    Raises:
        labkit.data.DatasetNotFoundError: VOC/ADE20K without a root or ``$LABKIT_DATA``; or
            the Shapes set must be drawn and no folder for it can be written (the message
            names each place tried, why it failed, and what to set; the cause is the last
            ``OSError``).
    """
    from labkit.data import resolve_root
    from labkit.data.shapes import generate_shapes

    if cfg.dataset != "shapes":
        layout = LAYOUTS[cfg.dataset]
        return resolve_root(cfg.data_root, dataset=layout.title, expected=layout.folder)
    args = _shapes_arguments(cfg)
    env = os.environ.get("LABKIT_DATA")
    tag = "-".join(f"{k}{v}" for k, v in args.items())
    caches = [folder / f"shapes-{tag}" for folder in [Path(runs_root) / ".data", *_user_cache()]]
    if cfg.data_root is not None:
        root = Path(cfg.data_root).expanduser()
        meta = _shapes_meta(root)
        if meta is not None:
            drawn = {k: v for k, v in meta.get("arguments", {}).items() if k in args}
            if drawn != args:
                log.warning(
                    "using the Shapes set in %s as it is (drawn with %s); the config asks for %s",
                    root,
                    drawn,
                    args,
                )
            return root
        root = _shapes_home([root], args, hint="Set data_root to a folder you can write.")
    elif env and _drawn_with(Path(env).expanduser(), args):
        return Path(env).expanduser()
    else:
        draw = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in args.items())
        root = _shapes_home(
            caches,
            args,
            hint=(
                "Run from a folder you can write (runs/ is made there), set XDG_CACHE_HOME to "
                "one, or set LABKIT_DATA to a folder holding this set, drawn there by "
                f"`labkit data shapes --out DIR {draw}`."
            ),
        )
        if _drawn_with(root, args):
            return root
        if env and _shapes_meta(Path(env).expanduser()) is not None:
            log.info(
                "the Shapes set in $LABKIT_DATA was drawn with other options than %s; "
                "drawing the config's set into %s",
                args,
                root,
            )
    if distributed.context().is_main:
        log.info("drawing the Shapes set into %s", root)
        generate_shapes(root, **args)
    distributed.barrier()
    return root


def build_datasets(
    cfg: ExperimentConfig, *, root: Path, train_transforms: Any = None
) -> tuple[Any, Any, tuple[str, ...]]:
    """The training set (augmented, seeded per sample), the validation set and class names.

    Args:
        cfg (ExperimentConfig): the config.
        root (Path): the dataset root.
        train_transforms (Any): ``f(image, mask) -> (image, mask)`` replacing the config's
            training pipeline (a lab student's own augmentation, say).

    Returns:
        ``(train_set, val_set, classes)``; ``train_set`` is a
        :class:`labkit.sampling.SeededDataset`.
    """
    from labkit.data.transforms import eval_transforms
    from labkit.data.transforms import train_transforms as config_pipeline

    train_split, val_split = split_names(cfg)
    a = cfg.augment
    train = open_split(
        cfg.dataset,
        root,
        train_split,
        train_transforms
        or config_pipeline(
            crop_size=cfg.crop_size, scale=a.scale, hflip=a.hflip, rotate=a.rotate, blur=a.blur
        ),
    )
    val = open_split(cfg.dataset, root, val_split, eval_transforms(size=cfg.eval_size))
    classes = tuple(train.classes)
    train, val = take_first(train, cfg.max_train_images), take_first(val, cfg.max_val_images)
    return SeededDataset(train, seed=cfg.seed), val, classes


def val_batch_size(cfg: ExperimentConfig) -> int:
    """Validation images per batch: ``val_batch_size``, else ``batch_size`` on Shapes and 1 on
    VOC/ADE20K, whose images differ in size and cannot be stacked."""
    return cfg.val_batch_size or (cfg.batch_size if cfg.dataset == "shapes" else 1)


def take_first(dataset: Any, n: int | None) -> Any:
    """The first ``n`` items of ``dataset`` (all of it when ``n`` is ``None`` or not smaller).

    Args:
        dataset (Any): a map-style dataset.
        n (int | None): how many items to keep; ``None``: every one.

    Returns:
        ``dataset`` itself, or a :class:`~torch.utils.data.Subset` of its first ``n`` items.
    """
    return dataset if n is None or n >= len(dataset) else Subset(dataset, range(n))


def build_loaders(
    cfg: ExperimentConfig, train_set: Any, val_set: Any
) -> tuple[DataLoader, DataLoader]:
    """Loaders whose order is resumable and split across ``torchrun`` ranks.

    ``batch_size`` is per process. Training drops the last incomplete batch; validation
    keeps every image, once over all ranks.

    Raises:
        ConfigError: if the training set has fewer images than one batch.
    """
    ctx = distributed.context()
    pin = torch.cuda.is_available()
    train_sampler = ResumableSampler(
        len(train_set), shuffle=True, seed=cfg.seed, num_replicas=ctx.world_size, rank=ctx.rank
    )
    train = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        sampler=train_sampler,
        drop_last=True,
        num_workers=cfg.num_workers,
        pin_memory=pin,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    if len(train) == 0:
        raise ConfigError(
            f"batch_size: expected at most the {len(train_sampler)} training "
            f"images of one process; got {cfg.batch_size}."
        )
    val_sampler = ResumableSampler(
        len(val_set), shuffle=False, num_replicas=ctx.world_size, rank=ctx.rank, pad=False
    )
    val = DataLoader(
        val_set,
        batch_size=val_batch_size(cfg),
        sampler=val_sampler,
        num_workers=cfg.num_workers,
        pin_memory=pin,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    return train, val


def build_optimizer(cfg: ExperimentConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD, Adam or AdamW over the trainable parameters; deformable offsets in their own group."""
    from labkit.models import offset_param_groups

    groups = offset_param_groups(
        model, lr=cfg.lr, offset_lr_mult=cfg.offset_lr_mult, weight_decay=cfg.weight_decay
    )
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    kind = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return kind(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_loss_fn(
    cfg: ExperimentConfig, *, root: Path, num_classes: int, cache: Path | None = None
) -> nn.Module:
    """The configured loss, with class weights from the training set's pixel counts.

    Args:
        cfg (ExperimentConfig): the config.
        root (Path): the dataset root.
        num_classes (int): number of classes.
        cache (Path | None): a JSON file to keep the counts in (read if present, else written).
    """
    from labkit.data.stats import class_pixel_counts
    from labkit.losses import build_loss, class_weights

    weight = None
    if cfg.class_weighting is not None:
        if cache is not None and cache.is_file():
            counts = torch.tensor(json.loads(cache.read_text())["counts"])
        else:
            plain = take_first(
                open_split(cfg.dataset, root, split_names(cfg)[0], None), cfg.max_train_images
            )
            counts = class_pixel_counts(plain, num_classes)
            if cache is not None and distributed.context().is_main:
                cache.write_text(json.dumps({"counts": counts.tolist()}))
        weight = class_weights(counts, method=cfg.class_weighting)
        log.info(
            "class weights (%s): %s", cfg.class_weighting, [round(w, 3) for w in weight.tolist()]
        )
    return build_loss(cfg.loss, weight=weight, ignore_index=255, **cfg.loss_options)


@dataclass
class TrainingSetup:
    """Everything :func:`labkit.train.fit` needs from a config besides model and data.

    Attributes:
        device: the training device (the config's ``device``; under ``torchrun`` the rank's GPU).
        optimizer: over the model's parameters.
        scheduler: stepped every iteration.
        loss_fn: on ``device``.
        amp, channels_last: the config's flags (``None`` = on for CUDA).
    """

    device: torch.device
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loss_fn: Any
    amp: bool | None
    channels_last: bool | None

    def fit_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`labkit.train.fit` this setup decides."""
        return {
            "device": self.device,
            "amp": self.amp,
            "channels_last": self.channels_last,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "loss_fn": self.loss_fn,
        }


def build_training(
    cfg: ExperimentConfig,
    model: nn.Module,
    *,
    root: Path,
    num_classes: int,
    steps_per_epoch: int,
    epochs: int | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    loss_fn: Any = None,
    counts_cache: Path | None = None,
) -> TrainingSetup:
    """Device, memory cap, optimizer, schedule and loss for training ``model`` as ``cfg`` says.

    The one place :func:`run_experiment` (``labkit train``) and
    :func:`labkit.labs.train_model` (the notebooks) turn a config into training parts, so
    both honour ``device``, ``gpu_memory_gib``, ``amp`` and ``channels_last`` alike. The
    memory cap is applied here, before anything is put on the GPU.

    Args:
        cfg (ExperimentConfig): the config.
        model (nn.Module): the network to train (its parameters go to the optimizer).
        root (Path): the dataset root (class weights are counted there).
        num_classes (int): number of classes.
        steps_per_epoch (int): optimizer steps per epoch (``len(train_loader)``).
        epochs (int | None): the run's epochs (``cfg.epochs`` when ``None``).
        optimizer (torch.optim.Optimizer | None): use this one instead of the config's.
        scheduler (Any): ``scheduler(optimizer, total_steps) -> LRScheduler`` instead of the
            config's schedule.
        loss_fn (Any): use this loss instead of the config's (moved to the device if a module).
        counts_cache (Path | None): JSON file caching the class pixel counts (see
            :func:`build_loss_fn`).

    Raises:
        ValueError: on a device that does not exist or a cap the GPU cannot give.
    """
    from labkit.schedules import build_scheduler

    ctx = distributed.context()
    if ctx.enabled and torch.cuda.is_available():
        device = torch.device("cuda", ctx.local_rank)
    else:
        device = pick_device(cfg.device)
    cap_memory(device, gib=cfg.gpu_memory_gib)
    total = (epochs or cfg.epochs) * steps_per_epoch
    optimizer = optimizer or build_optimizer(cfg, model)
    if loss_fn is None:
        loss_fn = build_loss_fn(cfg, root=root, num_classes=num_classes, cache=counts_cache)
    if isinstance(loss_fn, nn.Module):
        loss_fn = loss_fn.to(device)  # class weights must live where the logits do
    sched = (
        scheduler(optimizer, total)
        if scheduler is not None
        else build_scheduler(
            cfg.schedule,
            optimizer,
            total_steps=total,
            warmup_steps=round(cfg.warmup_epochs * steps_per_epoch),
            **cfg.schedule_options,
        )
    )
    return TrainingSetup(device, optimizer, sched, loss_fn, cfg.amp, cfg.channels_last)


def _may_write_run(cfg: ExperimentConfig, run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    # Reads only: every rank runs it, so all of them stop on the same error (none waits at
    # a barrier for a rank 0 that has already given up).
    saved = run_dir / "config.yaml"
    if not saved.is_file() or overwrite:
        return
    if not resume:
        raise RunExistsError(
            f"{run_dir} already holds a run; pass --resume to continue it, "
            "--overwrite to start it over, or --name for a new folder."
        )
    from labkit.config import load_config

    old, new = load_config(saved).to_dict(), cfg.to_dict()
    changed = sorted(k for k in new if k not in _RESUMABLE_CHANGES and old.get(k) != new[k])
    if changed:
        diffs = ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in changed)
        raise ConfigError(
            f"cannot resume {run_dir} with a different config ({diffs}); drop "
            "those overrides, or train under a new --name."
        )


def _clear_run_dir(run_dir: Path) -> None:
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _open_run_dir(cfg: ExperimentConfig, run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Check that ``run_dir`` may take the run, then (rank 0) clear it when ``overwrite`` asks
    and write ``config.yaml``; every rank returns once that is done."""
    _may_write_run(cfg, run_dir, resume=resume, overwrite=overwrite)
    distributed.barrier()  # every rank has looked before rank 0 changes anything
    if distributed.context().is_main:
        if overwrite:
            _clear_run_dir(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    distributed.barrier()


def _write_results(run_dir: Path, history: History, metrics: dict[str, Any]) -> dict[str, Path]:
    """Write (rank 0) ``history.csv``, ``learning_curves.png`` and ``metrics.json``; every
    file of the run, by role, once all ranks are done."""
    files = {
        "config": run_dir / "config.yaml",
        "last": run_dir / "last.pt",
        "best": run_dir / "best.pt",
        "history": run_dir / "history.csv",
        "iterations": run_dir / "iterations.csv",
        "metrics": run_dir / "metrics.json",
        "curves": run_dir / "learning_curves.png",
    }
    if distributed.context().is_main:
        history.to_csv(files["history"])
        history.iterations_to_csv(files["iterations"])
        history.plot().savefig(files["curves"], dpi=90)
        files["metrics"].write_text(json.dumps(metrics, indent=2))
    distributed.barrier()
    return files


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _finite(x: float) -> float | None:
    return None if isinstance(x, float) and math.isnan(x) else x


def _metrics(
    cfg: ExperimentConfig,
    history: History,
    classes: tuple[str, ...],
    *,
    model: nn.Module,
    root: Path,
    device: torch.device,
) -> dict[str, Any]:
    from labkit.models import count_parameters

    best, last = history.best, history.rows[-1]
    return {
        "name": cfg.name,
        "model": cfg.model,
        "dataset": cfg.dataset,
        "profile": cfg.profile,
        "data_root": str(root),
        "device": str(device),
        "world_size": distributed.context().world_size,
        "parameters": count_parameters(model),
        "trainable_parameters": count_parameters(model, trainable_only=True),
        "epochs": len(history),
        "best_epoch": int(best["epoch"]),
        "seconds": sum(r["seconds"] for r in history.rows),
        "val": {
            "miou": best["miou"],
            "pixel_accuracy": best["pixel_accuracy"],
            "mean_accuracy": _finite(best["mean_accuracy"]),
            "fwiou": best["fwiou"],
            "loss": _finite(best["val_loss"]),
            "iou": {c: _finite(best[f"iou_{i}"]) for i, c in enumerate(classes)},
        },
        "train": {
            "miou": best["train_miou"],
            "pixel_accuracy": best["train_pixel_accuracy"],
            "loss": best["train_loss"],
        },
        "last": {
            "epoch": int(last["epoch"]),
            "miou": last["miou"],
            "pixel_accuracy": last["pixel_accuracy"],
        },
    }


def run_experiment(
    cfg: ExperimentConfig,
    *,
    runs_root: str | os.PathLike = "runs",
    run_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> ExperimentResult:
    """Train the experiment a config describes and write its run folder.

    Args:
        cfg (ExperimentConfig): the experiment.
        runs_root (str | os.PathLike): folder of run folders; the run goes to
            ``runs_root/cfg.name``.
        run_dir (str | os.PathLike | None): the run folder itself, overriding
            ``runs_root/cfg.name``.
        resume (bool): continue the run in the folder from its ``last.pt`` (the config must match).
        overwrite (bool): delete an earlier run's files in the folder first.
        progress (bool): show progress bars.

    Returns:
        The :class:`ExperimentResult` (``metrics`` as written to ``metrics.json``).

    Raises:
        RunExistsError: if the folder holds a run and neither resume nor overwrite is set.
        ConfigError: if resuming with a changed config, or the data do not fit the config.
        labkit.data.DatasetNotFoundError: if the dataset is missing.
    """
    from labkit.models import build_model
    from labkit.train import fit

    start = time.perf_counter()
    run_dir = Path(run_dir) if run_dir is not None else Path(runs_root) / cfg.name
    _open_run_dir(cfg, run_dir, resume=resume, overwrite=overwrite)
    _seed_everything(cfg.seed)
    root = resolve_data_root(cfg, runs_root=runs_root)
    train_set, val_set, classes = build_datasets(cfg, root=root)
    num_classes = len(classes)
    train_loader, val_loader = build_loaders(cfg, train_set, val_set)

    model = build_model(cfg.model, num_classes=num_classes, **cfg.model_options)
    setup = build_training(
        cfg,
        model,
        root=root,
        num_classes=num_classes,
        steps_per_epoch=len(train_loader),
        counts_cache=run_dir / "class_counts.json",
    )
    device = setup.device
    meta = {"config": cfg.to_dict(), "classes": list(classes), "data_root": str(root)}
    with cpu_threads(cfg.cpu_threads):  # a notebook keeps its own setting afterwards
        history = fit(
            model,
            train_loader,
            val_loader,
            epochs=cfg.epochs,
            num_classes=num_classes,
            checkpoint_dir=run_dir,
            resume=resume,
            checkpoint_every=cfg.checkpoint_every,
            progress=progress,
            tensorboard=cfg.tensorboard,
            meta=meta,
            **setup.fit_options(),
        )
    metrics = _metrics(cfg, history, classes, model=model, root=root, device=device)
    metrics["wall_seconds"] = time.perf_counter() - start
    files = _write_results(run_dir, history, metrics)
    return ExperimentResult(cfg, run_dir, history, metrics, files)
