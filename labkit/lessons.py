"""Each lab's lesson as a measured comparison: the two runs that show it, and what
``make ablations`` found when it trained both over several seeds.

A lab teaches one effect (a decaying schedule beats a constant rate, U-Net's skips beat the
FCN, ...). On one seed, on a laptop, the student's own two runs may land either way; the
seed-to-seed noise of a short CPU run is often as large as the effect. So every lab shows
the student's numbers beside the measured ones: the mean and standard deviation of each row
over the seeds, the gap, its standard error and the verdict, read from ``lessons.json``,
which ``benchmarks/ablations.py`` writes next to this module from the same runs as
``benchmarks/ABLATIONS.md``.

Each row is a preset (``labkit train --preset NAME``), so the measured comparison is one
anyone can repeat; the lessons themselves are listed in :mod:`labkit.lesson_catalog`.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from matplotlib.figure import Figure

from labkit.errors import UsageError
from labkit.lesson_catalog import LESSONS, Arm, Lesson
from labkit.tables import markdown_table, percent

__all__ = [
    "LESSONS",
    "Arm",
    "Lesson",
    "Measured",
    "Yours",
    "lesson_figure",
    "lesson_table",
    "measured",
    "pa3_chain_table",
]


@dataclass(frozen=True)
class Measured:
    """What ``make ablations`` found for one :class:`Lesson`.

    Attributes:
        lesson: the comparison.
        high, low: each row's score on every seed, in seed order (fractions, not percent).
        seeds: the seeds, fixed before any run.
        diff, se: the mean gap ``high - low`` and its standard error.
        verdict: ``"holds"`` (gap > 2 SE), ``"... within noise"`` or ``"does not hold"``
            (gap < -2 SE).
        pair_seconds: the mean training time of one seed's two runs, one CPU thread each.
        rare_classes: the classes ``"rare_iou"`` averages (the two object classes with the
            fewest training pixels of the measured set).
    """

    lesson: Lesson
    high: list[float]
    low: list[float]
    seeds: list[int]
    diff: float
    se: float
    verdict: str
    pair_seconds: float
    rare_classes: list[str]


#: A student's run as the tables take it: its scores (``run.scores``, with ``"miou"`` and the
#: per-class ``"iou"``), or one number, the lesson's metric itself.
Yours = Mapping[str, Mapping[str, Any] | float]


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    sd = statistics.stdev(values) if len(values) > 1 else math.nan
    return statistics.fmean(values), sd


def _load() -> dict:
    """``lessons.json``, shipped inside the package (so an installed labkit has it)."""
    return json.loads(resources.files("labkit").joinpath("lessons.json").read_text())


def measured(lab: str) -> list[Measured]:
    """The measured comparisons of one lab, from the committed ``lessons.json``.

    Args:
        lab (str): the lab's folder name, e.g. ``"lab02_lr_schedules"``.

    Returns:
        One :class:`Measured` per lesson of the lab that has been measured.

    Raises:
        UsageError: the lab has no lesson, or ``lessons.json`` holds none of its lessons.
    """
    lessons = [x for x in LESSONS if x.lab == lab]
    if not lessons:
        labs = sorted({x.lab for x in LESSONS})
        raise UsageError(f"expected one of the labs with a measured lesson, {labs}; got {lab!r}.")
    data = _load()
    found = {(m["lab"], m["effect"]): m for m in data["lessons"]}
    rare = data.get("environment", {}).get("rare_classes", [])
    out = []
    for lesson in lessons:
        m = found.get((lesson.lab, lesson.effect))
        if m is not None:
            fields = ("high", "low", "seeds", "diff", "se", "verdict", "pair_seconds")
            out.append(Measured(lesson, **{k: m[k] for k in fields}, rare_classes=rare))
    if not out:
        raise UsageError(
            f"lessons.json holds no measurement of {lab}; run `make ablations` to make one."
        )
    return out


def _in_table(lab: str, table: str) -> list[Measured]:
    found = [m for m in measured(lab) if m.lesson.table == table]
    if not found:
        tables = sorted({m.lesson.table for m in measured(lab)})
        raise UsageError(f"expected table to be one of {tables} for {lab}; got {table!r}.")
    return found


def _your_score(
    m: Measured, label: str, yours: Yours, classes: Sequence[str] | None
) -> float | None:
    """The student's score of the row ``label`` on the lesson's metric; None when not given
    or not defined (the rare classes are not among the student's classes)."""
    value = yours.get(label)
    if value is None or isinstance(value, (int, float)):
        return value
    if m.lesson.metric != "rare_iou":
        return float(value[m.lesson.metric])
    index = [list(classes or []).index(c) for c in m.rare_classes if c in (classes or [])]
    ious = [float(value["iou"][i]) for i in index]
    ious = [x for x in ious if not math.isnan(x)]
    return sum(ious) / len(ious) if ious else None


def lesson_table(
    lab: str,
    *,
    yours: Yours | None = None,
    classes: Sequence[str] | None = None,
    table: str = "lesson",
) -> str:
    """The lab's measured comparisons as a markdown table, the student's scores beside them.

    Args:
        lab (str): the lab's folder name.
        yours (Yours | None): the student's runs by row label: ``run.scores`` (or a number,
            the lesson's metric as a fraction); rows without one show "—".
        classes (Sequence[str] | None): the class names of the student's data, to find the
            rare classes in ``run.scores["iou"]``.
        table (str): which of the lab's tables (:attr:`Lesson.table`): ``"lesson"``, its
            headline effect, or a further one such as lab 07's ``"architecture"``.

    Returns:
        A markdown table, one line per row of each lesson, and the measured setting below it.

    Raises:
        UsageError: the lab has no measured comparison in ``table``.
    """
    yours, rows = yours or {}, []
    found = _in_table(lab, table)
    for m in found:
        gap = f"{100 * m.diff:+.1f} ± {100 * m.se:.1f} ({m.verdict})"
        for arm, values in ((m.lesson.high, m.high), (m.lesson.low, m.low)):
            mean, sd = _mean_sd(values)
            first = arm is m.lesson.high
            rows.append(
                [
                    m.lesson.effect if first else "",
                    arm.label,
                    _metric_name(m) if first else "",
                    f"{100 * mean:.1f} ± {100 * sd:.1f}",
                    gap if first else "",
                    percent(_your_score(m, arm.label, yours, classes)),
                ]
            )
    header = ["lesson", "run", "score", f"measured, {len(found[0].seeds)} seeds (%)"]
    header += ["gap ± SE (points)", "yours (%)"]
    notes: list[str] = []
    for m in found:  # one line per setting (lab 04's two lessons share theirs)
        live = m.lesson.cpu_preset
        note = f"Measured on: {m.lesson.setting}" + (
            f' (preset `{live}`, what `PROFILE = "cpu"` trains).' if live else "."
        )
        if note not in notes:
            notes.append(note)
    return "\n\n".join([markdown_table(header, rows, align="lllrrr"), *notes])


def _metric_name(m: Measured) -> str:
    if m.lesson.metric == "rare_iou":
        return f"IoU of the rarest classes ({', '.join(m.rare_classes)})"
    return {"miou": "val mIoU"}.get(m.lesson.metric, m.lesson.metric)


def lesson_figure(
    lab: str,
    *,
    yours: Yours | None = None,
    classes: Sequence[str] | None = None,
    table: str = "lesson",
) -> Figure:
    """Each lesson's two rows: every seed's score (dots), the mean ± sd (bar), and the
    student's score (a star) where given.

    Args:
        lab (str): the lab's folder name.
        yours (Yours | None): the student's runs by row label, as for :func:`lesson_table`.
        classes (Sequence[str] | None): the class names of the student's data.
        table (str): which of the lab's tables, as for :func:`lesson_table`.

    Returns:
        A Figure with one panel per lesson.
    """
    yours, found = yours or {}, _in_table(lab, table)
    fig = Figure(figsize=(4.2 * len(found), 3.6), layout="constrained")
    for ax, m in zip(fig.subplots(1, len(found), squeeze=False)[0], found):
        arms = [(m.lesson.low, m.low), (m.lesson.high, m.high)]
        for x, (arm, values) in enumerate(arms):
            mean, sd = _mean_sd(values)
            ax.bar(x, 100 * mean, yerr=100 * sd, color="C0" if x else "0.7", capsize=6)
            ax.plot([x] * len(values), [100 * v for v in values], "k.", ms=8)
            score = _your_score(m, arm.label, yours, classes)
            if score is not None:
                ax.plot(x, 100 * score, "r*", ms=14)
        ax.set_xticks([0, 1], [a.label for a, _ in arms], fontsize=8)
        ax.set_ylabel(f"{_metric_name(m)} (%)", fontsize=8)
        gap = f"{100 * m.diff:+.1f} ± {100 * m.se:.1f} points: {m.verdict}"
        ax.set_title(f"{m.lesson.effect}\n{gap}", fontsize=9)
        stars = [line for line in ax.lines if line.get_marker() == "*"]
        if stars:
            ax.legend(stars[:1], ["yours"])
    return fig


def pa3_chain_table(*, yours: Mapping[str, float] | None = None) -> str:
    """The PA3 chain as one table on one budget and data (``make ablations``), the PA3
    report's figures beside it: baseline → cosine → augmentation → weighted loss → U-Net →
    ResNet-18 encoder.

    Args:
        yours (Mapping[str, float] | None): the student's val mIoU (a fraction) by step key
            (``"baseline"``, ``"cosine"``, ``"augment"``, ``"weighted"``, ``"unet"``,
            ``"resnet18"``, ...), shown in a last column.

    Returns:
        A markdown table, one line per step.
    """
    yours, rows = yours or {}, []
    for row in _load().get("pa3_chain", []):
        (miou, miou_sd), (acc, acc_sd) = _mean_sd(row["miou"]), _mean_sd(row["pixel_accuracy"])
        rows.append(
            [
                row["label"],
                f"{100 * miou:.1f} ± {100 * miou_sd:.1f}",
                f"{100 * acc:.1f} ± {100 * acc_sd:.1f}",
                f"{100 * row['pa3_iou']:.1f}",
                f"{100 * row['pa3_pixel_accuracy']:.1f}",
                percent(yours.get(row["key"])),
            ]
        )
    if not rows:
        raise UsageError("lessons.json holds no PA3 chain; run `make ablations` to make one.")
    header = ["step", "val mIoU % (Shapes, 3 seeds)", "pixel acc %", "PA3 report: mean IoU %"]
    header += ["PA3: pixel acc %", "yours: val mIoU %"]
    return markdown_table(header, rows, align="lrrrrr")
