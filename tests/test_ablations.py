"""``make ablations``: its seconds-long smoke run, its resume, and its verdicts on the claims."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import ablations  # noqa: E402
from _ablation_report import CLAIMS, STUDIES, verdict  # noqa: E402

from labkit.lessons import LESSONS  # noqa: E402


def _run(out: Path, *studies: str) -> subprocess.CompletedProcess:
    # One run at a time: the suite's two workers already fill the two cores; with --jobs 1
    # every run still goes through the process pool, as with more.
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "ablations.py"),
            "--smoke",
            "--jobs",
            "1",
            "--out",
            str(out),
            "--study",
            *studies,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        # lab 06's lesson pretrains an encoder into the hub cache: a cache of the test's own
        env={**os.environ, "TORCH_HOME": str(out / "torch")},
    )


def test_smoke_run_reports_every_study_and_resumes_after_a_crash(tmp_path):
    """Every row trains with two seeds; the report has each study's table and every claim,
    with last-epoch figures; a rerun trains only what is missing and reads back the rest.

    One test, not three: the smoke run is the expensive part and tests may land on
    different workers."""
    from labkit.history import History

    proc = _run(tmp_path, *STUDIES)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "ablations.json").read_text())
    rows = [key for study in STUDIES.values() for key, *_ in study["rows"]]
    assert sorted((r["key"], r["seed"]) for r in data["runs"]) == sorted(
        (k, s) for k in rows for s in (0, 1)
    )
    runs = tmp_path / "runs"
    for run in data["runs"]:
        assert 0 <= run["miou"] <= 1 and 0 <= run["pixel_accuracy"] <= 1
        last = History.from_csv(runs / f"{run['key']}-seed{run['seed']}" / "history.csv").rows[-1]
        assert run["miou"] == pytest.approx(last["miou"])  # the last epoch, not the best
    assert len(data["environment"]["rare_classes"]) == 2

    report = (tmp_path / "ABLATIONS.md").read_text()
    for study in STUDIES.values():
        assert f"## {study['title']}" in report
        for _, label, _, _ in study["rows"]:
            assert f"| {label} |" in report
    for *_, text in CLAIMS:
        assert f"| {text} |" in report
    cosine = [r["miou"] for r in data["runs"] if r["key"] == "cosine"]
    mean, sd = np.mean(cosine), np.std(cosine, ddof=1)
    assert f"| + cosine schedule | {100 * mean:.1f} ± {100 * sd:.1f} |" in report

    (runs / "dcn_v1-seed1" / "metrics.json").unlink()  # as if that run had crashed
    changed = runs / "dcn_conv-seed1" / "config.yaml"  # as if the study had been edited since
    changed.write_text(changed.read_text().replace("lr: 0.002", "lr: 0.5"))
    kept = runs / "dcn_conv-seed0" / "metrics.json"
    before = {p: p.stat().st_mtime_ns for p in (kept, changed.with_name("metrics.json"))}
    proc = _run(tmp_path, "dcn")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert kept.stat().st_mtime_ns == before[kept]
    assert (
        changed.with_name("metrics.json").stat().st_mtime_ns
        != before[changed.with_name("metrics.json")]
    )
    assert "lr: 0.002" in changed.read_text()
    assert (runs / "dcn_v1-seed1" / "metrics.json").is_file()
    assert not list(runs.glob("*/*.pt"))  # finished runs keep their scores, not checkpoints
    # --study dcn replaced the dcn runs and kept every other study's, in the file and report
    again = json.loads((tmp_path / "ablations.json").read_text())
    assert sorted((r["key"], r["seed"]) for r in again["runs"]) == sorted(
        (k, s) for k in rows for s in (0, 1)
    )
    assert [c["studies"] for c in again["environment"]["commands"]][-1] == ["dcn"]
    for study in STUDIES.values():
        assert f"## {study['title']}" in (tmp_path / "ABLATIONS.md").read_text()
    lessons = json.loads((tmp_path / "lessons.json").read_text())["lessons"]
    assert len(lessons) == len(LESSONS) and all(m["seeds"] == [0, 1] for m in lessons)

    report = tmp_path / "ABLATIONS.md"
    written = report.read_text()
    report.unlink()
    trained = {p: p.stat().st_mtime_ns for p in runs.glob("*/metrics.json")}
    assert ablations.main(["--report", "--out", str(tmp_path)]) == 0  # in this process
    assert report.read_text() == written  # from ablations.json alone, nothing retrained
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*/metrics.json")} == trained
    assert "## Deformable convolution" in (tmp_path / "ABLATIONS.md").read_text()


@pytest.mark.parametrize(
    "high, low, expected",
    [
        ([0.60, 0.61, 0.62], [0.50, 0.51, 0.52], "**holds**"),
        ([0.60, 0.70, 0.50], [0.58, 0.62, 0.54], "same direction, within noise"),
        ([0.58, 0.62, 0.54], [0.60, 0.70, 0.50], "opposite direction, within noise"),
        ([0.50, 0.51, 0.52], [0.60, 0.61, 0.62], "**does not hold**"),
    ],
)
def test_verdict_compares_the_gap_with_its_standard_error(high, low, expected):
    """The gap's standard error is that of a difference of two means (Welch's)."""
    diff, se, word = verdict(high, low)
    assert diff == pytest.approx(np.mean(high) - np.mean(low))
    oracle = math.sqrt(np.var(high, ddof=1) / len(high) + np.var(low, ddof=1) / len(low))
    assert se == pytest.approx(oracle)
    assert word == expected


def test_every_claim_names_rows_of_its_study():
    """A claim compares rows of its study; a lesson may also use rows of another study."""
    every = {key for spec in STUDIES.values() for key, *_ in spec["rows"]}
    for study, _, high, low, _ in CLAIMS:
        keys = every if study == "lessons" else {key for key, *_ in STUDIES[study]["rows"]}
        assert {high, low} <= keys


def test_a_lesson_that_reuses_a_row_trains_exactly_that_row():
    """Is every lesson arm the config its run key trains in make ablations (the preset, the
    study's budget and the row's overrides), so that sharing a run is sharing the setting?"""
    from labkit.config import apply_overrides, load_preset
    from labkit.lessons import LESSONS

    rows = {
        key: apply_overrides(load_preset(preset), {**spec["budget"], **overrides})
        for spec in STUDIES.values()
        for key, _, preset, overrides in spec["rows"]
    }
    for lesson in LESSONS:
        for arm in (lesson.high, lesson.low):
            assert rows[arm.key] == apply_overrides(load_preset(arm.preset), arm.overrides), arm


def test_verdict_without_a_difference_or_a_measurement():
    assert verdict([0.5, 0.5], [0.5, 0.5])[2] == "no difference"
    assert verdict([math.nan, math.nan], [0.5, 0.4])[2].startswith("not measured")
    assert verdict([0.6], [0.5])[2] == "holds (one seed)"


def test_the_committed_report_and_lessons_are_those_of_the_committed_runs(tmp_path):
    """Are benchmarks/ABLATIONS.md and labkit/lessons.json exactly what `--report` writes
    from benchmarks/ablations.json, so that no table a lab shows is stale?"""
    import shutil

    shutil.copy(ROOT / "benchmarks" / "ablations.json", tmp_path / "ablations.json")
    assert ablations.main(["--report", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "ABLATIONS.md").read_text() == (
        ROOT / "benchmarks" / "ABLATIONS.md"
    ).read_text()
    # as text: a NaN (a class in no mask) is never equal to itself once parsed
    assert (tmp_path / "lessons.json").read_text() == (ROOT / "labkit" / "lessons.json").read_text()
