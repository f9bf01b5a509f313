"""What every lab notebook needs around its exercises: profile, data, training, results.

A lab notebook reads one config cell (``PROFILE = "quick"`` or ``"full"``), then::

    cfg = lab_config("baseline", profile=PROFILE)          # labkit/presets/baseline_<profile>.yaml
    data = lab_data(cfg)                                     # Shapes drawn on first use
    run = train_model(my_model, data, name="my FCN")         # labkit.train.fit underneath
    display(Markdown(results_table([run], classes=data.classes)))

``quick`` is what the autograder runs (under nbgrader a notebook is always run ``quick``,
whatever its config cell says): the ``*_quick`` preset shrunk to one of the
:data:`QUICK_BUDGETS`, named by the lab (a small Shapes set of 64² images, a few epochs, one
CPU thread; fewer images for the labs that train big networks) so that a whole notebook runs
in under 90 s on two cores (``benchmarks/lab_times.json``). ``full`` is the preset as written: VOC or ADE20K
from ``$LABKIT_DATA`` on a GPU, the real experiment. ``cpu`` sits between them: the setting in
which ``make ablations`` measured the lab's lesson (:mod:`labkit.lessons`), a few minutes per
compared pair on a laptop CPU, so the student sees the effect live; a lab names that preset
(``lab_config(..., cpu_preset="lesson02_constant_quick")``).

The budget of a full run is the environment variable ``LABKIT_BUDGET``:

- unset, empty or ``full``: the preset's budget as written;
- ``smoke``: :func:`smoke_budget` — one epoch of one training batch, a handful of
  validation images, small crops, one loader worker. Everything else stays as the preset
  has it (dataset, model, class count, batch sizes, ``val_batch_size``, device), so a smoke
  run goes through exactly the code paths of the real one, in minutes on a CPU. For
  checking a course server, a notebook change or the test suite's notebooks, never for
  results.

Any other value is a :class:`~labkit.config.ConfigError`. The smoke budget caps both
profiles, and it is a cap: it holds over a cell's own overrides of the budget
(``lab_config(..., overrides={"epochs": 8})``, a config changed with ``apply_overrides``) because
:func:`lab_config`, :func:`lab_data` and :func:`train_model` each apply it.

On the full profile :func:`train_model` keeps a checkpoint of every run after each epoch
(``runs/<config name>/<run name>/last.pt`` under the notebook's folder) and, when the
notebook is run again after a kernel restart or an idle culler, continues the run of the
same name where it stopped (see :func:`train_model`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from labkit.config import ConfigError, ExperimentConfig, apply_overrides, load_preset
from labkit.devices import cpu_threads
from labkit.history import History
from labkit.tables import markdown_table, percent

if TYPE_CHECKING:  # for the hints only: the functions import labkit.experiment where they use it
    from labkit.experiment import TrainingSetup

__all__ = [
    "BUDGETS",
    "QUICK_BUDGETS",
    "SMOKE_CROP",
    "SMOKE_VAL_IMAGES",
    "LabData",
    "LabRun",
    "lab_config",
    "lab_data",
    "results_table",
    "run_folder",
    "smoke_budget",
    "train_model",
]

_QUICK: dict[str, Any] = {
    "shapes.num_train": 192,
    "shapes.num_val": 48,
    "shapes.size": 64,
    "crop_size": 64,
    "batch_size": 8,
    "epochs": 4,
    "device": "cpu",
    "cpu_threads": 1,
}
#: The budgets the quick profile puts on a ``*_quick`` preset inside a lab notebook, by name
#: (``lab_config(..., quick_budget="deeplab_v3")``): the autograder runs every notebook top
#: to bottom, several trainings each, on a shared CPU. The full profile ignores them.
QUICK_BUDGETS: dict[str, dict[str, Any]] = {
    "default": _QUICK,
    # Lab 3 trains twice, with and without augmentation: fewer images, more epochs, so the
    # augmented run has time to catch up.
    "augmentation": {**_QUICK, "max_train_images": 64, "epochs": 8},
    # Lab 5 trains three networks: a quarter of the full widths, 128 of the 192 images.
    "unet": {**_QUICK, "model_options.base_width": 8, "max_train_images": 128},
    # A ResNet-18 costs about 40 times lab 1's FCN per image. 24 steps are too few for
    # median-frequency weights to pay off (at first they push every pixel towards the rare
    # shapes), so the quick runs use the plain loss.
    "resnet_transfer": {
        **_QUICK,
        "max_train_images": 64,
        "max_val_images": 32,
        "epochs": 3,
        "class_weighting": None,
    },
    # Lab 7 trains six recipes on DeepLab v3-ResNet-18 (the notebook swaps it in for the
    # presets' ResNet-50, which takes a second a step): 64 images of 4 classes for 4 epochs,
    # 24 to score; from scratch it climbs from about 23 to 37 % mIoU in that time.
    "deeplab_v3": {
        **_QUICK,
        "shapes.num_classes": 4,
        "epochs": 4,
        "max_train_images": 64,
        "max_val_images": 24,
    },
}
PROFILES = ("quick", "cpu", "full")
#: Values of ``$LABKIT_BUDGET`` (an unset or empty variable means ``"full"``).
BUDGETS = ("full", "smoke")
#: The smoke budget's training crop and the most validation images it scores.
SMOKE_CROP, SMOKE_VAL_IMAGES = 64, 4

log = logging.getLogger(__name__)


def lab_config(
    preset: str,
    *,
    profile: str = "quick",
    quick_budget: str = "default",
    cpu_preset: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ExperimentConfig:
    """The experiment config a lab cell trains with.

    Args:
        preset (str): preset family, e.g. ``"baseline"`` for
            ``labkit/presets/baseline_<profile>.yaml``.
        profile (str): ``"quick"`` (CPU, Shapes, a :data:`QUICK_BUDGETS` budget), ``"cpu"``
            (``cpu_preset`` as written) or ``"full"``.
        quick_budget (str): the name of the quick profile's budget in :data:`QUICK_BUDGETS`.
        cpu_preset (str | None): the full name of the preset the ``cpu`` profile trains with
            (a lab's ``Lesson.cpu_preset``); a lab without one has no ``cpu`` profile.
        overrides (Mapping[str, Any] | None): config keys to change, dotted as in
            :func:`labkit.config.apply_overrides` and ``labkit train --set`` (``{"epochs": 2,
            "augment.hflip": 0.5}``); they apply after the budget.

    Raises:
        labkit.config.ConfigError: on an unknown profile, budget, preset or key.
    """
    if quick_budget not in QUICK_BUDGETS:
        raise ConfigError(
            f"quick_budget: expected one of {sorted(QUICK_BUDGETS)}; got {quick_budget!r}."
        )
    if profile not in PROFILES:
        raise ConfigError(
            f"PROFILE: expected one of {PROFILES}; got {profile!r}. Set "
            'PROFILE = "quick" in the notebook\'s config cell.'
        )
    if profile != "quick" and os.environ.get("NBGRADER_EXECUTION"):
        # nbgrader sets NBGRADER_EXECUTION while it autogrades or validates: grading runs on
        # the grader's CPU with the Shapes set, whatever profile the student last used.
        log.warning("nbgrader is running this notebook: profile %r replaced by 'quick'", profile)
        profile = "quick"
    budget = _budget()
    if profile == "cpu" and cpu_preset is None:
        raise ConfigError(
            f'PROFILE = "cpu": this lab has no measured CPU setting (its preset is {preset!r}); '
            'expected PROFILE = "quick" or "full".'
        )
    cfg = load_preset(cpu_preset if profile == "cpu" else f"{preset}_{profile}")
    if profile == "quick":
        cfg = apply_overrides(cfg, QUICK_BUDGETS[quick_budget])
    cfg = apply_overrides(cfg, dict(overrides or {}))
    if budget == "smoke":
        log.warning(
            "LABKIT_BUDGET=smoke: %s trains %s",
            cfg.name,
            ", ".join(f"{k}={v}" for k, v in smoke_budget(cfg).items()),
        )
    return _within_budget(cfg)


def _within_budget(cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` capped to the smoke budget when ``$LABKIT_BUDGET`` asks for it (idempotent)."""
    return apply_overrides(cfg, smoke_budget(cfg)) if _budget() == "smoke" else cfg


def _budget() -> str:
    budget = os.environ.get("LABKIT_BUDGET", "").strip().lower() or "full"
    if budget not in BUDGETS:
        raise ConfigError(
            f"LABKIT_BUDGET: expected one of {BUDGETS} (or unset); got "
            f"{os.environ['LABKIT_BUDGET']!r}. Unset it for the real experiment, "
            "or set LABKIT_BUDGET=smoke for a short check of the full profile."
        )
    return budget


def smoke_budget(cfg: ExperimentConfig) -> dict[str, Any]:
    """The overrides ``LABKIT_BUDGET=smoke`` puts on a config.

    Only the budget shrinks: one epoch of exactly one training batch
    (``max_train_images = batch_size``), at most :data:`SMOKE_VAL_IMAGES` validation
    images, :data:`SMOKE_CROP`-pixel crops (and validation images resized to that when the
    preset resizes them), a warm-up shrunk in proportion, and one data-loader worker where
    the preset has several. Batch sizes, ``val_batch_size``,
    dataset, model, classes and device stay as the preset has them.

    Args:
        cfg (ExperimentConfig): a config of either profile.

    Returns:
        Dotted keys and values for :func:`labkit.config.apply_overrides`; applied to their
        own result they change nothing.
    """
    val = (
        SMOKE_VAL_IMAGES
        if cfg.max_val_images is None
        else min(cfg.max_val_images, SMOKE_VAL_IMAGES)
    )
    train = (
        cfg.batch_size
        if cfg.max_train_images is None
        else min(cfg.max_train_images, cfg.batch_size)
    )
    out: dict[str, Any] = {
        "epochs": 1,
        "max_train_images": train,
        "max_val_images": val,
        "crop_size": min(cfg.crop_size, SMOKE_CROP),
        "warmup_epochs": cfg.warmup_epochs / max(cfg.epochs, 1),
    }
    if cfg.eval_size is not None:
        out["eval_size"] = min(cfg.eval_size, SMOKE_CROP)
    if cfg.num_workers > 1:
        # Starting a loader's worker processes costs about 0.4 s each per pass, more than a
        # smoke run's one batch; one worker still goes through the worker-process path.
        out["num_workers"] = 1
    return out


@dataclass
class LabData:
    """A lab's datasets and loaders (see :func:`lab_data`), each built when first used.

    Built lazily so that a cell that only reads ``root`` or ``classes`` builds no pipeline:
    labkit's referee grades a lab with the library's versions of its exercises switched off
    (:mod:`labkit.grading.strip`), and lab 03's exercises are the training pipeline.
    ``dataclasses.replace`` gives a copy that builds its own.

    Attributes:
        config: the config they are built from.
        root: the dataset root.
        runs_root: the folder of run folders (checkpoints of :func:`train_model`).
        train_transforms: ``f(image, mask) -> (image, mask)`` replacing the config's training
            pipeline, or ``None``.
        classes: class names, index = class id.
        train_set: training images with the config's augmentation, ``(image, mask)`` pairs.
        val_set: validation images, ``(image Tensor[3, H, W], mask Tensor[H, W] int64)``.
        train_loader: shuffled, seeded training batches.
        val_loader: validation batches in order.
    """

    config: ExperimentConfig
    root: Path
    runs_root: Path = Path("runs")
    train_transforms: Callable | None = None

    @functools.cached_property
    def _sets(self) -> tuple[Any, Any, tuple[str, ...]]:
        from labkit.experiment import build_datasets

        return build_datasets(self.config, root=self.root, train_transforms=self.train_transforms)

    @functools.cached_property
    def _loaders(self) -> tuple[DataLoader, DataLoader]:
        from labkit.experiment import build_loaders

        return build_loaders(self.config, self.train_set, self.val_set)

    @functools.cached_property
    def classes(self) -> tuple[str, ...]:
        """Class names, index = class id (read without building a pipeline)."""
        if "_sets" in self.__dict__:
            return self._sets[2]
        from labkit.data.layouts import open_split
        from labkit.experiment import split_names

        split = split_names(self.config)[1]
        return tuple(open_split(self.config.dataset, self.root, split).classes)

    @property
    def train_set(self) -> Any:
        """Training images with the config's augmentation (a seeded dataset)."""
        return self._sets[0]

    @property
    def val_set(self) -> Any:
        """Validation images and masks."""
        return self._sets[1]

    @property
    def train_loader(self) -> DataLoader:
        """Shuffled, seeded training batches."""
        return self._loaders[0]

    @property
    def val_loader(self) -> DataLoader:
        """Validation batches in order."""
        return self._loaders[1]

    @property
    def num_classes(self) -> int:
        """Number of classes, background included."""
        return len(self.classes)


def lab_data(
    cfg: ExperimentConfig,
    *,
    runs_root: str | os.PathLike = "runs",
    train_transforms: Callable | None = None,
) -> LabData:
    """Open (and on first use draw) the config's dataset; its sets and loaders are built when
    first used.

    Args:
        cfg (ExperimentConfig): from :func:`lab_config`.
        runs_root (str | os.PathLike): where a Shapes set is drawn when ``$LABKIT_DATA`` holds none
            (``<runs_root>/.data``) and :func:`train_model` keeps its checkpoints.
        train_transforms (Callable | None): ``f(image, mask) -> (image, mask)`` replacing the
            config's training pipeline (a student's own augmentation, say).

    Raises:
        labkit.data.DatasetNotFoundError: the full profile without ``$LABKIT_DATA``.
    """
    from labkit.experiment import resolve_data_root

    cfg = _within_budget(cfg)
    root = resolve_data_root(cfg, runs_root=runs_root)
    return LabData(cfg, root, runs_root=Path(runs_root), train_transforms=train_transforms)


@dataclass
class LabRun:
    """One trained model of a lab (see :func:`train_model`).

    Attributes:
        name: the row label in results tables.
        model: the trained model (on the CPU, in eval mode).
        history: one row per epoch (losses, mIoU, learning rate).
        scores: validation scores after the last epoch (:func:`labkit.train.evaluate`).
        parameters: number of parameters.
        seconds: training time.
    """

    name: str
    model: nn.Module
    history: History
    scores: dict
    parameters: int
    seconds: float


def run_folder(data: LabData, name: str) -> Path:
    """Where :func:`train_model` keeps the checkpoint of run ``name``:
    ``<runs_root>/<config name>/<name as a folder name>``."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.") or "model"
    return data.runs_root / data.config.name / slug


def _fingerprint(
    cfg: ExperimentConfig, model: nn.Module, epochs: int, parts: dict, data: LabData
) -> str:
    # What must be equal for a checkpoint to continue this run: the config, the network's
    # parameter names and shapes, the epochs, the kinds of optimizer, schedule and loss, and
    # the data. A changed forward() with the same parameters cannot be seen here.
    plain = {
        "config": cfg.to_dict(),
        "epochs": epochs,
        "model": [type(model).__qualname__]
        + [f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items()],
        "parts": {k: type(v).__qualname__ for k, v in parts.items()},
        "data": [str(data.root), len(data.train_set), len(data.val_set)],
    }
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()


def _resumable(folder: Path, fingerprint: str) -> int | None:
    """The epochs the checkpoint in ``folder`` has done, if it continues this run; else None."""
    from labkit.checkpoint import CheckpointError, load_checkpoint

    last = folder / "last.pt"
    if not last.is_file():
        return None
    try:
        ckpt = load_checkpoint(last)
    except (CheckpointError, OSError, RuntimeError) as err:
        log.warning(
            "cannot read %s (%s: %s); training %s from the start",
            last,
            type(err).__name__,
            err,
            folder.name,
        )
        return None
    if ckpt.get("meta", {}).get("fingerprint") != fingerprint:
        log.warning(
            "%s belongs to another run (config, model, epochs, loss, optimizer, "
            "schedule or data differ); training from the start and replacing it. "
            "Give this run another name= to keep both.",
            last,
        )
        return None
    return int(ckpt["progress"]["epoch"])


def _run_epochs(cfg: ExperimentConfig, epochs: int | None) -> int:
    """The epochs :func:`train_model` trains: ``epochs``, else the config's, within the smoke
    budget when ``$LABKIT_BUDGET`` asks for it."""
    epochs = epochs or cfg.epochs
    if _budget() == "smoke":
        epochs = min(epochs, smoke_budget(cfg)["epochs"])
    return epochs


def _checkpoints_folder(data: LabData, name: str, checkpoints: bool | None) -> Path | None:
    """Where run ``name`` keeps its checkpoints (:func:`run_folder`); ``None`` when it keeps
    none. ``checkpoints=None`` means on for the full profile, off for the quick one and while
    nbgrader runs the notebook."""
    if checkpoints is None:
        checkpoints = data.config.profile == "full" and not os.environ.get("NBGRADER_EXECUTION")
    return run_folder(data, name) if checkpoints else None


def _fit_run(
    model: nn.Module,
    data: LabData,
    setup: TrainingSetup,
    name: str,
    epochs: int,
    folder: Path | None,
    *,
    resume: bool,
    progress: bool,
) -> tuple[History, dict, float]:
    """Train run ``name`` with :func:`labkit.train.fit`, keeping its checkpoints in ``folder``
    (none when ``None``) and continuing the one there when it matches (with ``resume``).

    Returns:
        The history, the last epoch's validation scores and the training time in seconds (of
        all epochs, when the run was resumed).
    """
    from labkit.train import evaluate, fit

    fingerprint = None
    if folder is not None:
        parts = {"loss": setup.loss_fn, "optimizer": setup.optimizer, "scheduler": setup.scheduler}
        fingerprint = _fingerprint(data.config, model, epochs, parts, data)
    resuming = _continues(folder, fingerprint, name, epochs) if folder and resume else False
    last: dict[str, Any] = {}
    start = time.perf_counter()
    history = fit(
        model,
        data.train_loader,
        data.val_loader,
        epochs=epochs,
        num_classes=data.num_classes,
        progress=progress,
        log_every=0,
        checkpoint_dir=folder,
        resume=resuming,
        meta={"run": name, "fingerprint": fingerprint} if folder else None,
        on_epoch_end=lambda epoch, scores: last.update(scores),
        **setup.fit_options(),
    )
    # A resumed run's time is that of all its epochs, not of this call alone.
    seconds = sum(r["seconds"] for r in history.rows) if resuming else time.perf_counter() - start
    if not last:  # a finished run resumed from its checkpoint: score it once, here
        last = evaluate(
            model,
            data.val_loader,
            num_classes=data.num_classes,
            device=setup.device,
            amp=setup.amp,
            channels_last=setup.channels_last,
        )
    return history, last, seconds


def _continues(folder: Path, fingerprint: str, name: str, epochs: int) -> bool:
    """Whether run ``name`` continues from the checkpoint in ``folder``; says so when it does."""
    done = _resumable(folder, fingerprint)
    if done is None:
        return False
    # A warning, so that it shows in the notebook: a student who changed code that the
    # fingerprint cannot see (a forward, a loss's body) must know to retrain.
    log.warning(
        "run %r: continuing from %s after epoch %d of %d (train_model(..., "
        "resume=False) or deleting the folder trains it anew)",
        name,
        folder / "last.pt",
        done,
        epochs,
    )
    return True


def train_model(
    model: nn.Module,
    data: LabData,
    *,
    name: str = "model",
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Callable[[torch.optim.Optimizer, int], Any] | None = None,
    epochs: int | None = None,
    progress: bool = True,
    checkpoints: bool | None = None,
    resume: bool = True,
) -> LabRun:
    """Train ``model`` on ``data`` with :func:`labkit.train.fit` and score it.

    Whatever is not given comes from ``data.config``, through the same
    :func:`labkit.experiment.build_training` as ``labkit train``: the device (``device``,
    under a ``gpu_memory_gib`` cap), ``amp`` and ``channels_last``, the optimizer (its
    ``optimizer``, ``lr``, ``weight_decay``), the loss (its ``loss`` and
    ``class_weighting``), the schedule (with its ``warmup_epochs``) and the number of epochs.
    The seed is the config's, so two calls train identically. The scores are those of the
    last epoch's validation, on the training device: the validation set is scored once per
    epoch and never again afterwards.

    Checkpoints: with ``checkpoints`` on, ``last.pt`` (and ``best.pt``) are written to
    :func:`run_folder` after every epoch. With ``resume`` (the default) a later call for a
    run of the same ``name`` continues from ``last.pt`` (after a kernel restart, say; a
    finished run is not trained again) when the config, the model's parameters, ``epochs``,
    the kinds of loss, optimizer and schedule and the data are the same; otherwise it logs
    a warning, trains from the start and replaces the checkpoint. ``checkpoints=None`` means
    on for the full profile, off for the quick one and always off while nbgrader runs the
    notebook (``NBGRADER_EXECUTION``): grading runs in a scratch folder and must not pick up
    or leave behind state.

    Args:
        model (nn.Module): returns logits (Tensor[N, C, H, W]).
        data (LabData): from :func:`lab_data`.
        name (str): the label of this run in tables and plots, and its checkpoint folder's name.
        loss_fn (Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None): ``loss_fn(logits,
            masks) -> Tensor[]``.
        optimizer (torch.optim.Optimizer | None): over ``model``'s parameters.
        scheduler (Callable[[torch.optim.Optimizer, int], Any] | None): ``scheduler(optimizer,
            total_steps) -> LRScheduler`` stepped every iteration (a function, because the step
            count is known only here).
        epochs (int | None): passes over the training set.
        progress (bool): show progress bars.
        checkpoints (bool | None): keep ``last.pt``/``best.pt`` in :func:`run_folder` (``None``: see
            above).
        resume (bool): continue a matching run from its ``last.pt``; ``False`` starts over.

    Returns:
        The :class:`LabRun`; its model is on the CPU, in eval mode.
    """
    from labkit.experiment import build_training
    from labkit.models import count_parameters

    cfg = data.config
    epochs = _run_epochs(cfg, epochs)
    folder = _checkpoints_folder(data, name, checkpoints)
    torch.manual_seed(cfg.seed)
    with cpu_threads(cfg.cpu_threads):
        setup = build_training(
            cfg,
            model,
            root=data.root,
            num_classes=data.num_classes,
            steps_per_epoch=len(data.train_loader),
            epochs=epochs,
            optimizer=optimizer,
            scheduler=scheduler,
            loss_fn=loss_fn,
        )
        history, last, seconds = _fit_run(
            model, data, setup, name, epochs, folder, resume=resume, progress=progress
        )
        model.cpu().eval()
    scores = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in last.items()}
    return LabRun(name, model, history, scores, count_parameters(model), seconds)


def results_table(runs: Sequence[LabRun], *, classes: Sequence[str] | None = None) -> str:
    """A markdown table of runs: parameters, time, pixel accuracy, mIoU, per-class IoU.

    Args:
        runs (Sequence[LabRun]): the runs, one row each.
        classes (Sequence[str] | None): class names for per-class IoU columns (none when omitted).

    Returns:
        Markdown text; show it with ``IPython.display.Markdown``.
    """
    classes = list(classes or [])
    head = ["run", "parameters", "train s", "pixel acc %", "mIoU %"] + [
        f"IoU {c} %" for c in classes
    ]
    rows = [
        [
            run.name,
            f"{run.parameters:,}",
            f"{run.seconds:.0f}",
            percent(run.scores["pixel_accuracy"]),
            percent(run.scores["miou"]),
            *(percent(float(v)) for v in run.scores["iou"][: len(classes)]),
        ]
        for run in runs
    ]
    return markdown_table(head, rows, align="l" + "r" * (len(head) - 1))
