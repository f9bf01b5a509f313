"""The training and evaluation loop every lab and the ``labkit`` command share.

One :func:`fit` replaces the copied per-experiment scripts course code tends to grow; what
differs between experiments (model, loss, schedule, augmentation) comes in as arguments.
The same loop runs on a laptop CPU (float32, reproducible bit for bit with a fixed seed) and
on a shared GPU (mixed precision and ``channels_last`` by default), in one process or under
``torchrun`` (see :mod:`labkit.distributed`). With ``checkpoint_dir`` it writes ``last.pt``
after every epoch (and every ``checkpoint_every`` iterations) and ``best.pt`` whenever the
validation mIoU improves; ``resume=True`` continues from ``last.pt`` exactly where it stopped.

Samplers and datasets with ``set_epoch`` (``DistributedSampler``,
:class:`labkit.sampling.ResumableSampler`, :class:`labkit.sampling.SeededDataset`) are told
the epoch (0-based) before it starts. Under ``torchrun`` the model is wrapped in
``DistributedDataParallel``, losses and confusion matrices are summed over the ranks and only
rank 0 writes checkpoints and TensorBoard logs.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from labkit import distributed
from labkit.checkpoint import load_checkpoint, load_weights, rng_state, save_atomic, set_rng_state
from labkit.devices import explain_oom, pick_device, resolve_amp, resolve_channels_last
from labkit.errors import MissingPackageError, UsageError
from labkit.history import History
from labkit.metrics import ConfusionMatrix

__all__ = ["History", "evaluate", "fit", "main_logits"]

log = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _show_progress(progress: bool) -> bool:
    # nbgrader sets NBGRADER_EXECUTION while it autogrades or validates a notebook.
    return progress and not os.environ.get("NBGRADER_EXECUTION") and distributed.context().is_main


def _collect_before_fork(loader: Any) -> None:
    # A loader with workers forks them when iteration starts. A DataLoader iterator that was
    # never exhausted and sits in a reference cycle (one that tqdm.auto used to start beside
    # each loop, see _bar; a notebook's `next(iter(loader))` held by a widget), uncollected,
    # is copied into the new workers, whose own garbage collection then runs its __del__
    # there: it fails ("can only test a child process"), its message goes to the kernel's
    # ZeroMQ stream from the child, and ZeroMQ aborts the worker ("DataLoader worker ...
    # killed by signal: Aborted"). Collect it here, in the parent, first. Loaders without
    # workers fork nothing and skip the cost.
    if getattr(loader, "num_workers", 0) > 0:
        gc.collect()


def _bar(loader: Iterable, *, desc: str, show: bool) -> Any:
    """A progress bar over one pass of ``loader`` that starts exactly one pass of it.

    ``tqdm.auto``'s class calls ``iter()`` on its iterable when it is built and again when
    it is looped over. Given a DataLoader, the first pass would fork its own workers,
    prefetch batches nobody reads and, never exhausted, wait out its workers' shutdown
    timeout (5 s) when it is collected; it would also draw the loader's base seed. Given
    the one iterator, tqdm only counts.
    """
    total = len(loader) if hasattr(loader, "__len__") else None
    return tqdm(iter(loader), total=total, desc=desc, leave=False, disable=not show)


def main_logits(output: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
    """The logits to score from a model's output.

    Args:
        output (torch.Tensor | dict[str, torch.Tensor]): a model's output: logits (Tensor[N, C, H,
            W]), or torchvision's segmentation dict, whose ``"out"`` holds them (and ``"aux"`` the
            auxiliary head's).

    Returns:
        The main logits (Tensor[N, C, H, W]).
    """
    return output["out"] if isinstance(output, dict) else output


def _loss(loss_fn: LossFn, output, target: torch.Tensor) -> torch.Tensor:
    # torchvision-style auxiliary heads are weighted 0.5, as in torchvision's references.
    if isinstance(output, dict):
        loss = loss_fn(output["out"], target)
        if "aux" in output:
            loss = loss + 0.5 * loss_fn(output["aux"], target)
        return loss
    return loss_fn(output, target)


def _labels(logits: torch.Tensor) -> torch.Tensor:
    # max(1).indices is the argmax (first maximum), about 3x faster than argmax(1) on CPU.
    return logits.detach().max(1).indices  # (N, H, W)


def _to_device(
    images: torch.Tensor, masks: torch.Tensor, device: torch.device, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return (
        images.to(device, non_blocking=True, memory_format=fmt),
        masks.to(device, non_blocking=True),
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    *,
    num_classes: int,
    device: str | torch.device | None = None,
    loss_fn: LossFn | None = None,
    progress: bool = False,
    amp: bool | None = None,
    channels_last: bool | None = None,
    distributed_eval: bool | None = None,
) -> dict:
    """Score a model on a data loader.

    Args:
        model (nn.Module): returns logits (Tensor[N, C, H, W]) for images (Tensor[N, 3, H, W]).
        loader (Iterable): yields ``(images Tensor[N, 3, H, W], masks Tensor[N, H, W] int64)``.
        num_classes (int): number of classes ``C``.
        device (str | torch.device | None): where to run; ``None`` picks the emptiest CUDA GPU, else
            the CPU.
        loss_fn (LossFn | None): when given, the mean loss per image is reported as ``loss``.
        progress (bool): show a progress bar.
        amp (bool | None): mixed precision; ``None`` means on for CUDA.
        channels_last (bool | None): ``channels_last`` inputs; ``None`` means on for CUDA.
        distributed_eval (bool | None): sum the counts over all ranks; ``None`` does so when a
            process group of several ranks exists. Each rank must then see a disjoint shard of the
            data (``ResumableSampler(pad=False)``), or images are counted twice.

    Returns:
        The scores of :meth:`labkit.metrics.ConfusionMatrix.compute` plus ``loss`` (NaN
        without ``loss_fn``) and ``matrix`` (Tensor[C, C] int64, on the CPU).
    """
    device = pick_device(device)
    use_amp, use_cl = resolve_amp(amp, device), resolve_channels_last(channels_last, device)
    model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, device=device)
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss * images, images
    _collect_before_fork(loader)
    for images, masks in _bar(loader, desc="eval", show=_show_progress(progress)):
        images, masks = _to_device(images, masks, device, use_cl)
        with explain_oom(
            batch_size=images.shape[0], crop=images.shape[-2:], device=device, phase="evaluating"
        ):
            with torch.autocast(device.type, enabled=use_amp):
                logits = main_logits(model(images))
            if loss_fn is not None:
                sums[0] += loss_fn(logits.float(), masks).double() * images.shape[0]
                sums[1] += images.shape[0]
        cm.update(_labels(logits), masks)
    model.train(was_training)
    if distributed_eval is None:
        distributed_eval = distributed.context().enabled
    if distributed_eval:
        cm.all_reduce()
        distributed.all_reduce_sum(sums)
    scores = cm.compute()
    scores["loss"] = (sums[0] / sums[1]).item() if loss_fn is not None and sums[1] else math.nan
    scores["matrix"] = cm.matrix.cpu()
    return scores


class _Progress:
    """What a checkpoint must hold besides model, optimizer, scheduler and scaler."""

    def __init__(self, num_classes: int, device: torch.device) -> None:
        self.epoch = 0  # epochs completed
        self.samples = 0  # samples of this rank trained on in the current epoch
        self.step = 0  # optimizer steps in all
        self.sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss * images, images
        self.cm = ConfusionMatrix(num_classes, device=device)
        self.history = History()
        self.best = -math.inf
        # (step, epoch, loss, lr) of the steps not yet in history.iterations: the loss stays a
        # tensor until flush(), so that recording it never waits for the device.
        self.pending: list[tuple[int, int, torch.Tensor, float]] = []

    def record(self, epoch: int, loss: torch.Tensor, lr: float) -> None:
        self.pending.append((self.step, epoch, loss.detach(), lr))

    def flush(self) -> None:
        """Move the pending steps into ``history.iterations`` (one device sync for all)."""
        if not self.pending:
            return
        losses = torch.stack([p[2].float() for p in self.pending]).tolist()
        self.history.iterations += [
            {"step": step, "epoch": epoch, "loss": loss, "lr": lr}
            for (step, epoch, _, lr), loss in zip(self.pending, losses)
        ]
        self.pending.clear()

    def state_dict(self) -> dict:
        self.flush()
        return {
            "epoch": self.epoch,
            "samples": self.samples,
            "step": self.step,
            "sums": self.sums.cpu(),
            "cm": self.cm.state_dict(),
            "history": self.history.rows,
            "iterations": self.history.iterations,
            "best": self.best,
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.samples, self.best = state["epoch"], state["samples"], state["best"]
        self.step = state["step"]
        self.sums.copy_(state["sums"])
        self.cm.load_state_dict(state["cm"])
        self.history.rows = [dict(r) for r in state["history"]]
        # .get: checkpoints written before the per-step record have none
        self.history.iterations = [dict(r) for r in state.get("iterations", [])]
        self.pending.clear()


def _prepare_epoch(loader: Any, epoch: int, skip: int) -> None:
    sampler = getattr(loader, "sampler", None)
    for obj in (sampler, getattr(loader, "dataset", None)):
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch - 1)  # 0-based, as DistributedSampler counts
    if hasattr(sampler, "set_start"):
        sampler.set_start(skip)


def _open_tensorboard(tensorboard: bool | str | os.PathLike, checkpoint_dir: Path | None):
    if not tensorboard:
        return None
    if tensorboard is True:
        if checkpoint_dir is None:
            raise UsageError(
                "tensorboard=True writes to <checkpoint_dir>/tensorboard; pass "
                "checkpoint_dir=... or tensorboard='some/folder'."
            )
        tensorboard = checkpoint_dir / "tensorboard"
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise MissingPackageError(
            "TensorBoard logging needs the tensorboard package: run "
            "`pip install tensorboard`, or train without "
            "tensorboard."
        ) from err
    return SummaryWriter(log_dir=str(tensorboard))


class _Step:
    """One optimizer step of :func:`fit`: the forward pass under autocast, the loss, the
    backward pass through the grad scaler, the optimizer and the scheduler. Under ``torchrun``
    the forward pass goes through the model wrapped in ``DistributedDataParallel``."""

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn,
        scheduler: Any,
        *,
        amp: bool,
        channels_last: bool,
    ) -> None:
        self.model, self.net = model, distributed.wrap_model(model, device)
        self.optimizer, self.loss_fn, self.scheduler = optimizer, loss_fn, scheduler
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp)
        self.device, self.amp, self.channels_last = device, amp, channels_last

    def __call__(self, epoch: int, images: torch.Tensor, masks: torch.Tensor):
        """One optimizer (and scheduler) step; the model's output and the loss."""
        with explain_oom(batch_size=images.shape[0], crop=images.shape[-2:], device=self.device):
            with torch.autocast(self.device.type, enabled=self.amp):
                output = self.net(images)
                loss = _loss(self.loss_fn, output, masks)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"the training loss became {loss.item()} at epoch {epoch}; expected a "
                    "finite value. Lower the learning rate or check the class weights."
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        return output, loss


class _Checkpoints:
    """A run's ``last.pt`` and ``best.pt``: written by rank 0, atomically; read on resume."""

    def __init__(
        self,
        folder: Path,
        step: _Step,
        state: _Progress,
        generator: torch.Generator | None,
        epochs: int,
        meta: dict | None,
    ) -> None:
        self.folder, self.model, self.state = folder, step.model, state
        # In this order last.pt stores them and a resume loads them.
        self.parts = {
            "optimizer": step.optimizer,
            "scheduler": step.scheduler,
            "scaler": step.scaler,
        }
        self.generator, self.epochs, self.meta = generator, epochs, meta or {}

    def resume(self) -> None:
        """Continue from ``last.pt`` when there is one: weights, optimizer, scheduler,
        scaler, progress, random state and the loader's generator."""
        path, ctx, state = self.folder / "last.pt", distributed.context(), self.state
        if not path.is_file():
            log.info("no checkpoint in %s; starting from scratch", self.folder)
            return
        ckpt = load_checkpoint(path)
        load_weights(self.model, ckpt)
        for key, part in self.parts.items():
            if part is not None and key in ckpt:
                part.load_state_dict(ckpt[key])
        state.load_state_dict(ckpt["progress"])
        if not ctx.is_main:  # rank 0's checkpoint holds the partial sums of all ranks
            state.sums.zero_()
            state.cm.reset()
        set_rng_state(ckpt["rng"])
        if self.generator is not None and ckpt["loader_generator"] is not None:
            self.generator.set_state(ckpt["loader_generator"])
        if ckpt["epochs"] != self.epochs:
            log.warning(
                "resuming a run planned for %d epochs with epochs=%d; the schedule "
                "will not match an uninterrupted run",
                ckpt["epochs"],
                self.epochs,
            )
        log.info("resumed from %s at epoch %d, sample %d", path, state.epoch, state.samples)

    def save_last(self, epoch_generator: torch.Tensor | None, *, at_epoch_end: bool) -> None:
        """Write ``last.pt``: at the end of an epoch, or within one (``epoch_generator``:
        the loader's generator as the epoch began, so a resume redraws the same order)."""
        ctx, state = distributed.context(), self.state
        if ctx.enabled and not at_epoch_end:
            # Rank 0 keeps the sums of all ranks, so the resumed epoch adds up correctly.
            distributed.all_reduce_sum(state.sums)
            state.cm.all_reduce()
            if not ctx.is_main:
                state.sums.zero_()
                state.cm.reset()
        if ctx.is_main:
            gen = (
                self.generator.get_state()
                if at_epoch_end and self.generator is not None
                else epoch_generator
            )
            save_atomic(
                {
                    "model": self.model.state_dict(),
                    "epochs": self.epochs,
                    "rng": rng_state(),
                    "loader_generator": gen,
                    "progress": state.state_dict(),
                    "meta": self.meta,
                    **{k: v.state_dict() for k, v in self.parts.items() if v is not None},
                },
                self.folder / "last.pt",
            )
        distributed.barrier()

    def save_best(self, epoch: int, miou: float) -> None:
        """Write ``best.pt`` when ``miou`` beats every earlier epoch's."""
        if not math.isnan(miou) and miou > self.state.best:
            self.state.best = miou
            if distributed.context().is_main:
                save_atomic(
                    {
                        "model": self.model.state_dict(),
                        "epoch": epoch,
                        "miou": miou,
                        "meta": self.meta,
                    },
                    self.folder / "best.pt",
                )


class _Reporter:
    """Where a run says how it goes: the log, TensorBoard (rank 0) and the progress bar."""

    def __init__(
        self,
        tensorboard: bool | str | os.PathLike,
        folder: Path | None,
        *,
        log_every: int,
        progress: bool,
    ) -> None:
        self.writer = (
            _open_tensorboard(tensorboard, folder) if distributed.context().is_main else None
        )
        self.log_every, self.show = log_every, _show_progress(progress)

    def iteration(self, bar: Any, epoch: int, i: int, loss: torch.Tensor, step: int) -> None:
        if self.log_every and i % self.log_every == 0:
            log.info("epoch %d iteration %d: loss %.4f", epoch, i, loss.item())
            if self.writer is not None:
                self.writer.add_scalar("train/loss_iteration", loss.item(), step)
        if self.show:
            bar.set_postfix(loss=f"{loss.item():.3f}")

    def epoch(self, row: dict) -> None:
        log.info(
            "epoch %d: train loss %.4f, val mIoU %.4f, pixel acc %.4f",
            row["epoch"],
            row["train_loss"],
            row["miou"],
            row["pixel_accuracy"],
        )
        if self.writer is not None:
            for key in ("train_loss", "train_miou", "val_loss", "miou", "pixel_accuracy", "lr"):
                self.writer.add_scalar(f"epoch/{key}", row[key], row["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _Loop:
    """The epochs of one :func:`fit` call: a training pass, validation, a history row."""

    def __init__(
        self,
        step: _Step,
        state: _Progress,
        train_loader: Iterable,
        val_loader: Iterable,
        epochs: int,
        checkpoint_every: int,
        on_epoch_end: Callable[[int, dict], Any] | None,
    ) -> None:
        self.step, self.state = step, state
        self.train_loader, self.val_loader, self.epochs = train_loader, val_loader, epochs
        self.checkpoint_every, self.on_epoch_end = checkpoint_every, on_epoch_end
        self.generator = getattr(train_loader, "generator", None)
        # fit attaches these afterwards, in this order: the checkpoints (built from the loop,
        # see keep_checkpoints) and a resume first, then the reporter, which opens TensorBoard.
        self.checkpoints: _Checkpoints | None = None
        self.reporter: _Reporter | None = None

    def keep_checkpoints(self, folder: Path, meta: dict | None, *, resume: bool) -> None:
        """Write ``last.pt`` and ``best.pt`` into ``folder``; with ``resume``, first continue
        from the ``last.pt`` there."""
        self.checkpoints = _Checkpoints(
            folder, self.step, self.state, self.generator, self.epochs, meta
        )
        if resume:
            self.checkpoints.resume()

    def run(self) -> History:
        try:
            for epoch in range(self.state.epoch + 1, self.epochs + 1):
                start = time.perf_counter()
                _prepare_epoch(self.train_loader, epoch, self.state.samples)
                epoch_generator = self.generator.get_state() if self.generator is not None else None
                self.train_pass(epoch, epoch_generator)
                self.end_epoch(epoch, start, epoch_generator)
        finally:
            self.reporter.close()
        return self.state.history

    def train_pass(self, epoch: int, epoch_generator: torch.Tensor | None) -> None:
        """One pass over the training loader, from where the epoch's progress stands."""
        state, step = self.state, self.step
        device = step.device
        step.net.train()
        loader = self.train_loader
        iterations = len(loader) if hasattr(loader, "__len__") else None
        _collect_before_fork(loader)
        bar = _bar(loader, desc=f"epoch {epoch}/{self.epochs}", show=self.reporter.show)
        for i, (images, masks) in enumerate(bar, start=1):
            images, masks = _to_device(images, masks, device, step.channels_last)
            lr = step.optimizer.param_groups[0]["lr"]  # the rate this step is taken with
            output, loss = step(epoch, images, masks)
            n = images.shape[0]
            state.sums += torch.stack(
                [loss.detach().double() * n, torch.tensor(n, dtype=torch.float64, device=device)]
            )
            state.samples += n
            state.step += 1
            state.record(epoch, loss, lr)
            state.cm.update(_labels(main_logits(output)), masks)
            self.reporter.iteration(bar, epoch, i, loss, state.step)
            if self.checkpoint_every and i % self.checkpoint_every == 0 and i != iterations:
                self.checkpoints.save_last(epoch_generator, at_epoch_end=False)

    def end_epoch(self, epoch: int, start: float, epoch_generator: torch.Tensor | None) -> None:
        """Validate, append the epoch's row, report it and write the checkpoints."""
        state, step = self.state, self.step
        distributed.all_reduce_sum(state.sums)
        state.cm.all_reduce()
        state.flush()
        train = state.cm.compute()
        scores = evaluate(
            step.model,
            self.val_loader,
            num_classes=state.cm.num_classes,
            device=step.device,
            loss_fn=step.loss_fn,
            amp=step.amp,
            channels_last=step.channels_last,
        )
        row = {
            "epoch": epoch,
            "train_loss": (state.sums[0] / state.sums[1].clamp(min=1)).item(),
            "train_pixel_accuracy": train["pixel_accuracy"],
            "train_miou": train["miou"],
            "val_loss": scores["loss"],
            "pixel_accuracy": scores["pixel_accuracy"],
            "mean_accuracy": scores["mean_accuracy"],
            "miou": scores["miou"],
            "fwiou": scores["fwiou"],
            "lr": step.optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - start,
        }
        row.update({f"iou_{c}": float(v) for c, v in enumerate(scores["iou"].tolist())})
        state.history.rows.append(row)
        if self.on_epoch_end is not None:
            self.on_epoch_end(epoch, scores)
        state.epoch, state.samples = epoch, 0
        state.sums.zero_()
        state.cm.reset()
        self.reporter.epoch(row)
        if self.checkpoints is not None:
            self.checkpoints.save_best(epoch, row["miou"])
            self.checkpoints.save_last(epoch_generator, at_epoch_end=True)


def _checkpoint_folder(
    checkpoint_dir: str | os.PathLike | None,
    train_loader: Iterable,
    epochs: int,
    resume: bool,
    checkpoint_every: int,
) -> Path | None:
    """``checkpoint_dir`` as a path, once :func:`fit`'s options are known to go together."""
    if epochs < 1:
        raise UsageError(f"epochs must be at least 1; got {epochs}.")
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if (resume or checkpoint_every) and ckpt_dir is None:
        raise UsageError(
            "resume and checkpoint_every need checkpoint_dir=... to know where last.pt lives."
        )
    if checkpoint_every and not hasattr(getattr(train_loader, "sampler", None), "set_start"):
        raise UsageError(
            "checkpoint_every needs a train loader whose sampler can skip the "
            "samples seen before the checkpoint (labkit.sampling.ResumableSampler); "
            "use it, or checkpoint per epoch only (checkpoint_every=0)."
        )
    return ckpt_dir


def _place_model(model: nn.Module, device: torch.device, *, channels_last: bool) -> None:
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)


def fit(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    num_classes: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    channels_last: bool | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    checkpoint_every: int = 0,
    progress: bool = True,
    log_every: int = 50,
    tensorboard: bool | str | os.PathLike = False,
    meta: dict | None = None,
    on_epoch_end: Callable[[int, dict], Any] | None = None,
) -> History:
    """Train ``model`` and evaluate it on ``val_loader`` after every epoch.

    Args:
        model (nn.Module): returns logits (Tensor[N, C, H, W]) or a dict with ``"out"`` (and
            ``"aux"``, weighted 0.5 in the loss).
        train_loader (Iterable): yields ``(images Tensor[N, 3, H, W], masks Tensor[N, H, W]
            int64)``; its sampler and dataset are told each epoch (see the module docstring).
        val_loader (Iterable): the same, for validation.
        epochs (int): number of passes over ``train_loader`` (in all, counting resumed ones).
        optimizer (torch.optim.Optimizer): the optimizer over ``model``'s parameters.
        loss_fn (LossFn): ``loss_fn(logits, masks) -> Tensor[]``; ignore label 255 is its business.
        num_classes (int): number of classes ``C``.
        scheduler (torch.optim.lr_scheduler.LRScheduler | None): stepped after every optimizer
            step, once per iteration (not per epoch), so ``total_steps`` of
            :func:`labkit.schedules.build_scheduler` is ``epochs * len(train_loader)``; poly and
            cosine schedules then decay smoothly within an epoch, as DeepLab trains.
        device (str | torch.device | None): where to train; ``None``/``"auto"`` picks the emptiest
            CUDA GPU, else CPU.
        amp (bool | None): mixed precision (float16 autocast and a grad scaler); ``None`` = on for
            CUDA.
        channels_last (bool | None): ``channels_last`` memory format; ``None`` = on for CUDA.
        checkpoint_dir (str | os.PathLike | None): folder for ``last.pt`` and ``best.pt`` (written
            atomically).
        resume (bool): continue from ``checkpoint_dir/last.pt`` when it exists (model, optimizer,
            scheduler, scaler, history, random state, position in the epoch).
        checkpoint_every (int): also write ``last.pt`` every this many iterations (0: only at the
            end of epochs); needs a sampler with ``set_start`` (``ResumableSampler``).
        progress (bool): show tqdm progress bars (widgets in Jupyter, text in a terminal); always
            off on ranks other than 0 and while nbgrader autogrades.
        log_every (int): log the training loss every this many iterations (0: never).
        tensorboard (bool | str | os.PathLike): write TensorBoard logs to
            ``checkpoint_dir/tensorboard`` (``True``) or to the given folder; needs the
            ``tensorboard`` package.
        meta (dict | None): plain values every checkpoint stores under ``"meta"`` (e.g. the config).
        on_epoch_end (Callable[[int, dict], Any] | None): called as ``on_epoch_end(epoch, scores)``
            after each epoch's validation, with the full scores of :func:`evaluate` (``matrix``
            included), so a caller can keep the last ones instead of scoring the model again.

    Returns:
        The :class:`History`, one row per epoch.

    Raises:
        ValueError: on ``epochs < 1``, ``resume`` or ``checkpoint_every`` without what they need.
        FloatingPointError: when the training loss stops being finite.
        labkit.devices.GPUOutOfMemoryError: when CUDA runs out of memory.
    """
    ckpt_dir = _checkpoint_folder(checkpoint_dir, train_loader, epochs, resume, checkpoint_every)
    device = pick_device(device)
    use_amp, use_cl = resolve_amp(amp, device), resolve_channels_last(channels_last, device)
    _place_model(model, device, channels_last=use_cl)
    state = _Progress(num_classes, device)
    step = _Step(model, device, optimizer, loss_fn, scheduler, amp=use_amp, channels_last=use_cl)
    loop = _Loop(step, state, train_loader, val_loader, epochs, checkpoint_every, on_epoch_end)
    if ckpt_dir is not None:
        loop.keep_checkpoints(ckpt_dir, meta, resume=resume)
    loop.reporter = _Reporter(tensorboard, ckpt_dir, log_every=log_every, progress=progress)
    return loop.run()
