"""The record of a training run: a row per epoch, a row per optimizer step, CSV files and
learning curves (per epoch, and per step smoothed as TensorBoard smooths them)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from labkit.errors import UsageError

__all__ = ["History", "plot_histories", "plot_iterations", "smooth"]


@dataclass
class History:
    """Per-epoch record of a training run.

    Attributes:
        rows: one dict per epoch with ``epoch``; ``train_loss``, ``train_pixel_accuracy`` and
            ``train_miou`` (from the training batches as they were trained on, augmented and
            in training mode); ``val_loss``, ``pixel_accuracy``, ``mean_accuracy``, ``miou``
            and ``fwiou`` on the validation set; ``lr`` (of the first parameter group at the
            end of the epoch); ``seconds``; and ``iou_<c>`` for every class ``c`` (NaN where
            the class occurs in neither the ground truth nor the prediction).
        iterations: one dict per optimizer step with ``step`` (counted from 1 over the whole
            run), ``epoch``, ``loss`` (of that batch, on this process) and ``lr`` (of the first
            parameter group, the rate the step was taken with). A schedule acts per step, so
            this is where its effect on the loss shows; four epochs make four points.
    """

    rows: list[dict[str, float]] = field(default_factory=list)
    iterations: list[dict[str, float]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, key: str) -> list[float]:
        """All epochs' values of one field, e.g. ``history.column("miou")``."""
        if self.rows and key not in self.rows[0]:
            raise KeyError(f"no column {key!r} in the history; it has {list(self.rows[0])}.")
        return [row[key] for row in self.rows]

    @property
    def best(self) -> dict[str, float]:
        """The row with the highest validation mIoU (NaN rows never win; the first of ties)."""
        if not self.rows:
            raise UsageError("History is empty; train for at least one epoch first.")
        return max(self.rows, key=lambda r: -math.inf if math.isnan(r["miou"]) else r["miou"])

    def to_csv(self, path: str | Path) -> Path:
        """Write the rows to a CSV file (one line per epoch) and return its path."""
        path = Path(path)
        keys = list(self.rows[0]) if self.rows else []
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)
        return path

    def iterations_to_csv(self, path: str | Path) -> Path:
        """Write :attr:`iterations` to a CSV file (one line per optimizer step)."""
        path = Path(path)
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(_ITERATION_KEYS))
            writer.writeheader()
            writer.writerows(self.iterations)
        return path

    @classmethod
    def from_csv(cls, path: str | Path, *, iterations: str | Path | None = None) -> History:
        """Read a file written by :meth:`to_csv` (every value as a float, ``epoch`` an int),
        and, given ``iterations``, one written by :meth:`iterations_to_csv`."""
        history = cls(_read_csv(path))
        if iterations is not None:
            history.iterations = _read_csv(iterations)
        return history

    def plot(self) -> Figure:
        """Learning curves: losses, mIoU and pixel accuracy, and the learning rate per epoch.

        Returns:
            A Figure with three panels.
        """
        fig = Figure(figsize=(12, 3.4), layout="constrained")
        ax_loss, ax_score, ax_lr = fig.subplots(1, 3)
        epochs = self.column("epoch")
        ax_loss.plot(epochs, self.column("train_loss"), marker="o", label="train")
        ax_loss.plot(epochs, self.column("val_loss"), marker="o", label="val")
        ax_loss.set(title="loss", xlabel="epoch")
        ax_loss.legend()
        ax_score.plot(epochs, self.column("miou"), marker="o", label="val mIoU")
        ax_score.plot(epochs, self.column("pixel_accuracy"), marker="o", label="val pixel acc.")
        if self.rows and "train_miou" in self.rows[0]:
            ax_score.plot(epochs, self.column("train_miou"), ls="--", label="train mIoU")
        ax_score.set(title="scores", xlabel="epoch", ylim=(0, 1))
        ax_score.legend()
        ax_lr.plot(epochs, self.column("lr"), marker="o")
        ax_lr.set(title="learning rate (end of epoch)", xlabel="epoch")
        return fig


def _read_csv(path: str | Path) -> list[dict[str, float]]:
    with Path(path).open(newline="") as fh:
        return [
            {k: (int(v) if k in ("epoch", "step") else float(v)) for k, v in row.items()}
            for row in csv.DictReader(fh)
        ]


_ITERATION_KEYS = ("step", "epoch", "loss", "lr")


def smooth(values: Sequence[float], *, weight: float = 0.9) -> list[float]:
    """Exponential moving average with TensorBoard's debiasing.

    ``s_t = weight * s_{t-1} + (1 - weight) * x_t`` from ``s_0 = 0``, divided by
    ``1 - weight ** t`` so that the first points are not pulled towards zero.

    Args:
        values (Sequence[float]): the raw series, e.g. the loss of every step.
        weight (float): in [0, 1); 0 returns the values, 0.9 averages over about 10 steps.

    Returns:
        The smoothed series, as long as ``values``.
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"expected weight in [0, 1); got {weight!r}")
    out, last = [], 0.0
    for t, x in enumerate(values, start=1):
        last = weight * last + (1.0 - weight) * x
        out.append(last / (1.0 - weight**t))
    return out


def plot_iterations(
    histories: Sequence[History], labels: Sequence[str], *, weight: float = 0.9
) -> Figure:
    """Overlay several runs' training loss per optimizer step (raw, faint; smoothed, solid)
    and their learning rate per step: where a schedule's effect shows.

    Args:
        histories (Sequence[History]): one :class:`History` per run, with ``iterations``.
        labels (Sequence[str]): the legend entry of each.
        weight (float): the smoothing of :func:`smooth`.

    Returns:
        A Figure with two panels.

    Raises:
        ValueError: if the numbers of histories and labels differ, or a history has no
            iterations (one read from ``history.csv`` alone, say).
    """
    if len(histories) != len(labels):
        raise ValueError(
            f"expected one label per history; got {len(histories)} histories and "
            f"{len(labels)} labels."
        )
    for history, label in zip(histories, labels):
        if not history.iterations:
            raise ValueError(
                f"the history of {label!r} has no per-step record; expected one from fit() "
                "or History.from_csv(..., iterations='iterations.csv')."
            )
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax_loss, ax_lr = fig.subplots(1, 2)
    for history, label in zip(histories, labels):
        steps = [r["step"] for r in history.iterations]
        loss = [r["loss"] for r in history.iterations]
        (line,) = ax_loss.plot(steps, smooth(loss, weight=weight), label=label)
        ax_loss.plot(steps, loss, color=line.get_color(), alpha=0.2, lw=0.8)
        ax_lr.plot(steps, [r["lr"] for r in history.iterations], label=label)
    ax_loss.set(title=f"training loss per step (smoothed, {weight})", xlabel="step")
    ax_lr.set(title="learning rate per step", xlabel="step")
    ax_loss.legend()
    return fig


def plot_histories(histories: Sequence[History], labels: Sequence[str]) -> Figure:
    """Overlay the learning curves of several runs (validation mIoU and training loss).

    Args:
        histories (Sequence[History]): one :class:`History` per run.
        labels (Sequence[str]): the legend entry of each.

    Returns:
        A Figure with two panels.

    Raises:
        ValueError: if the numbers of histories and labels differ.
    """
    if len(histories) != len(labels):
        raise ValueError(
            f"expected one label per history; got {len(histories)} histories and "
            f"{len(labels)} labels."
        )
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax_miou, ax_loss = fig.subplots(1, 2)
    for history, label in zip(histories, labels):
        epochs = history.column("epoch")
        ax_miou.plot(epochs, history.column("miou"), marker="o", label=label)
        ax_loss.plot(epochs, history.column("train_loss"), marker="o", label=label)
    ax_miou.set(title="validation mIoU", xlabel="epoch", ylim=(0, 1))
    ax_loss.set(title="training loss", xlabel="epoch")
    ax_miou.legend()
    return fig
