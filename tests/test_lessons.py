"""Do the labs show what ``make ablations`` measured, and show it right?

The oracle is ``benchmarks/ablations.json``, the raw runs: every figure of the packaged
``labkit/lessons.json`` is recomputed here from them with numpy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from labkit import lessons
from labkit.errors import UsageError
from labkit.lessons import LESSONS, lesson_figure, lesson_table, measured

ROOT = Path(__file__).resolve().parents[1]


def _runs() -> dict:
    return json.loads((ROOT / "benchmarks" / "ablations.json").read_text())


def _score(run: dict, metric: str, rare: list[str]) -> float:
    if metric == "rare_iou":
        return float(np.nanmean([run["iou"][c] for c in rare]))
    return run[metric]


def test_every_lesson_is_measured_in_the_committed_runs():
    """Does lessons.json hold every lesson, each figure recomputed from the raw runs: the
    scores seed by seed, the gap, its standard error, the verdict and the pair's time?"""
    data = _runs()
    rare = data["environment"]["rare_classes"]
    by = {(r["key"], r["seed"]): r for r in data["runs"]}
    labs = {x.lab for x in LESSONS}
    got = [m for lab in sorted(labs) for m in measured(lab)]
    assert [m.lesson for m in got] == sorted(LESSONS, key=lambda x: x.lab)
    for m in got:
        assert m.seeds == [0, 1, 2]  # fixed before any run, all of them reported
        for arm, values in ((m.lesson.high, m.high), (m.lesson.low, m.low)):
            want = [_score(by[arm.key, s], m.lesson.metric, rare) for s in m.seeds]
            assert values == pytest.approx(want), (m.lesson.effect, arm.key)
        high, low = np.array(m.high), np.array(m.low)
        assert m.diff == pytest.approx(high.mean() - low.mean())
        se = math.sqrt(high.var(ddof=1) / 3 + low.var(ddof=1) / 3)
        assert m.se == pytest.approx(se)
        if m.diff > 2 * se:
            assert m.verdict == "holds"
        elif m.diff < -2 * se:
            assert m.verdict == "does not hold"
        else:
            assert "within noise" in m.verdict
        pair = np.mean(
            [
                by[m.lesson.high.key, s]["seconds"] + by[m.lesson.low.key, s]["seconds"]
                for s in (0, 1, 2)
            ]
        )
        assert m.pair_seconds == pytest.approx(pair)


def test_a_lab_shows_each_of_its_tables_apart():
    """Does lab 07's headline table hold its lessons and its architecture table the DeepLab
    study's comparisons (no live preset named), and is an unknown table refused?"""
    by_table: dict[str, set[str]] = {}
    for x in LESSONS:
        if x.lab == "lab07_deeplab_v3":
            by_table.setdefault(x.table, set()).add(x.effect)
    assert set(by_table) == {"lesson", "architecture"}
    for table, effects in by_table.items():
        text = lesson_table("lab07_deeplab_v3", table=table)
        for other in set(by_table) - {table}:
            assert not any(e in text for e in by_table[other])
        assert all(e in text for e in effects)
        assert ('PROFILE = "cpu"' in text) == (table == "lesson")
        fig = lesson_figure("lab07_deeplab_v3", table=table)
        assert sorted(ax.get_title().split("\n")[0] for ax in fig.axes) == sorted(effects)
    with pytest.raises(
        UsageError, match=r"expected table to be one of \['architecture', 'lesson'\]"
    ):
        lesson_table("lab07_deeplab_v3", table="heads")


def test_table_shows_each_rows_mean_and_sd_beside_the_students_score():
    """Does the table give each row its mean ± sd over the seeds (numpy's), the gap with its
    SE and verdict, and the student's score where given ("—" where not)?"""
    text = lesson_table("lab02_lr_schedules", yours={"cosine": 0.4567})
    (m,) = measured("lab02_lr_schedules")
    for arm, values in ((m.lesson.high, m.high), (m.lesson.low, m.low)):
        line = next(x for x in text.splitlines() if f"| {arm.label} |" in x)
        mean, sd = 100 * np.mean(values), 100 * np.std(values, ddof=1)
        assert f"{mean:.1f} ± {sd:.1f}" in line
        assert line.rstrip(" |").endswith("45.7" if arm.label == "cosine" else "—")
    assert f"{100 * m.diff:+.1f} ± {100 * m.se:.1f} ({m.verdict})" in text
    assert "3 seeds" in text


def test_figure_draws_every_seed_the_means_and_the_students_star():
    """One panel per lesson; bars at the means, one dot per seed, a star for the student."""
    fig = lesson_figure("lab04_weighted_loss", yours={"unweighted": 0.3})
    found = measured("lab04_weighted_loss")
    assert len(fig.axes) == len(found) == 2
    for ax, m in zip(fig.axes, found):
        heights = [p.get_height() for p in ax.patches]
        assert heights == pytest.approx([100 * np.mean(m.low), 100 * np.mean(m.high)])
        dots = [line for line in ax.lines if line.get_marker() == "."]
        assert sorted(len(d.get_ydata()) for d in dots) == [3, 3]
        stars = [line for line in ax.lines if line.get_marker() == "*"]
        assert [list(s.get_ydata()) for s in stars] == [[pytest.approx(30.0)]]
        assert ax.get_legend() is not None


def test_unknown_and_unmeasured_labs_say_what_to_do(monkeypatch):
    """A lab without a lesson names the ones that have one; a lesson missing from the file
    says to run make ablations."""
    with pytest.raises(UsageError, match=r"expected one of the labs .*'lab02_lr_schedules'"):
        measured("lab09")
    monkeypatch.setattr(lessons, "_load", lambda: {"lessons": []})
    with pytest.raises(UsageError, match="no measurement of lab05_unet; run `make ablations`"):
        measured("lab05_unet")


def test_a_runs_scores_give_each_lesson_its_own_metric():
    """Given run.scores and the class names, does the mIoU lesson show the run's mIoU and the
    rare-class lesson the mean IoU of the measured rare classes (a class the student's data
    lacks left out; none of them: "—")?"""
    found = measured("lab04_weighted_loss")
    rare = found[0].rare_classes
    assert len(rare) == 2
    classes = ["background", *rare, "other"]
    scores = {"miou": 0.41, "iou": [0.9, 0.2, float("nan"), 0.5]}
    text = lesson_table("lab04_weighted_loss", yours={"unweighted": scores}, classes=classes)
    lines = [x for x in text.splitlines() if "| unweighted |" in x]
    by_metric = {m.lesson.metric: line for m, line in zip(found, lines)}
    assert by_metric["rare_iou"].rstrip(" |").endswith("| 20.0")  # nan left out: 0.2 alone
    assert by_metric["miou"].rstrip(" |").endswith("| 41.0")
    text = lesson_table("lab04_weighted_loss", yours={"unweighted": scores}, classes=["a", "b"])
    rare_line = [x for x in text.splitlines() if "| unweighted |" in x][0]
    assert rare_line.rstrip(" |").endswith("| —")


def test_the_pa3_chain_is_one_table_with_the_reports_figures():
    """Does the chain table hold every PA3 step in order, its mean ± sd over the seeds
    recomputed from the raw runs, the PA3 report's figures beside it, and the student's?"""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _ablation_report import STUDIES

    data = _runs()
    text = lessons.pa3_chain_table(yours={"unet": 0.5})
    lines = [x for x in text.splitlines()[2:]]
    spec = STUDIES["pa3"]
    assert [x.split(" | ")[0].lstrip("| ") for x in lines] == [
        label for _, label, *_ in spec["rows"]
    ]
    for line, (key, *_) in zip(lines, spec["rows"]):
        miou = [r["miou"] for r in data["runs"] if r["key"] == key]
        assert f"{100 * np.mean(miou):.1f} ± {100 * np.std(miou, ddof=1):.1f}" in line
        iou, accuracy = spec["seed"][key]
        assert f"| {100 * iou:.1f} | {accuracy:.1f} |" in line
        assert line.rstrip(" |").endswith("50.0" if key == "unet" else "—")
