"""Tests for labkit.grading.report: the class report from the gradebook and grading records.

A toy course with two autograder tests is graded by nbgrader's own autograde; the
expected numbers are worked out by hand from the notebooks handed in, and the totals are
checked against ``nbgrader export`` as well.
"""

import csv
import json
import logging
import statistics
import sys
from pathlib import Path

import pytest
from matplotlib.image import imread

from labkit.grading import CourseError, lab_scores
from labkit.grading.report import class_report, lab_summaries
from tests.grading.conftest import build_toy_class, built_once, nbgrader_export

# What each student handed in, and what it earns by hand: test_add_one (2 points) checks
# add_one(1) == 2 and add_one(-5) == -4, test_fractions (1 point) add_one(0.5) == 1.5.
PASSES = {
    "ann": {"test_add_one", "test_fractions"},  # the solution
    "bob": set(),  # the blank release
    "cid": {"test_add_one"},  # int(x) + 1: right on integers only
    "eve": set(),
}  # x + 2
POINTS = {"test_add_one": 2.0, "test_fractions": 1.0}
# Grading records as the autograde run leaves them: (status, reason, seconds).
RECORDS = {
    "ann": ("graded", "", 4.0),
    "bob": ("graded", "", 2.5),
    "cid": ("graded", "", 9.0),
    "eve": ("failed", "timeout: killed after 300 s", 300.0),
    "fay": ("graded", "", 1.0),
    "gil": ("failed", "corrupt notebook | not JSON\nline 2", 12.0),
    "hal": ("graded", "", 0.5),
}


@pytest.fixture
def graded(tmp_path: Path, tmp_path_factory) -> Path:
    """The toy course, autograded (once per run; each test gets its own copy)."""
    return built_once(tmp_path / "course", "report-class", tmp_path_factory, build_toy_class)


def _write_records(root: Path) -> None:
    folder = root / "autograded" / ".labkit" / "toy"
    folder.mkdir(parents=True)
    for student, (status, reason, seconds) in RECORDS.items():
        (folder / f"{student}.json").write_text(
            json.dumps(
                {
                    "status": status,
                    "reason": reason,
                    "seconds": seconds,
                    "finished": "2024-03-01T12:00:00+00:00",
                }
            )
        )
    (folder / "ivy.json").write_text('{"status": "graded", "seconds": ')  # cut off
    (folder / "jo.json").write_text('{"status": "done", "seconds": 1}')


def test_numbers_match_the_submissions(graded, tmp_path, caplog):
    """Are totals, their statistics, pass rates, failures and the slowest five what the
    hand-worked submissions, nbgrader's export and the records say?"""
    _write_records(graded)
    with caplog.at_level(logging.WARNING, logger="labkit.grading.report"):
        files = class_report(graded, out_dir=tmp_path / "report")
    assert {"ivy.json", "jo.json"} == {Path(r.args[0]).name for r in caplog.records}
    [toy] = files.labs
    totals = {s: sum(POINTS[t] for t in tests) for s, tests in PASSES.items()}
    assert toy.totals == totals == {"ann": 3.0, "bob": 0.0, "cid": 2.0, "eve": 0.0}
    with open(nbgrader_export(graded)) as f:
        exported = {r["student_id"]: float(r["score"]) for r in csv.DictReader(f)}
    assert exported == {**toy.totals, "dee": 0.0}
    values = list(totals.values())
    assert toy.stats() == {"mean": statistics.fmean(values), "median": 1.0, "min": 0.0, "max": 3.0}
    assert (toy.lab, toy.max_score, toy.missing) == ("toy", 4.0, ("dee",))
    assert toy.pending == 3  # ann, cid and eve wrote an answer; bob's untouched one is 0
    rates = {p.test: (p.passed, p.graded) for p in toy.pass_rates}
    assert rates == {t: (sum(t in p for p in PASSES.values()), 4) for t in POINTS}
    assert rates == {"test_add_one": (2, 4), "test_fractions": (1, 4)}
    assert [(r.student, r.reason) for r in toy.failed] == [
        ("eve", "timeout: killed after 300 s"),
        ("gil", "corrupt notebook | not JSON\nline 2"),
    ]
    assert [(r.student, r.seconds) for r in toy.slowest] == [
        ("eve", 300.0),
        ("gil", 12.0),
        ("cid", 9.0),
        ("ann", 4.0),
        ("bob", 2.5),
    ]
    assert lab_summaries(graded) == [toy]

    md = files.markdown.read_text()
    assert files.markdown == tmp_path / "report" / "report.md"
    for line in [
        "| toy | 4 | 1 | 1.25 | 1 | 0 | 3 | 4 | 2 |",
        "- Submissions: 4 of 5 students (missing: dee)",
        "- Total score (of 4): mean 1.25, median 1, min 0, max 3",
        "| test_add_one | 2/4 | 50% |",
        "| test_fractions | 1/4 | 25% |",
        "- eve: timeout: killed after 300 s",
        "- gil: corrupt notebook \\| not JSON line 2",
        "| eve | 300.0 | failed |",
        "| bob | 2.5 | graded |",
    ]:
        assert line in md.splitlines(), line
    assert "| fay |" not in md  # sixth slowest
    assert md.index("| eve | 300.0") < md.index("| gil | 12.0") < md.index("| cid | 9.0")


def test_figures_are_pngs_without_pyplot(graded, tmp_path):
    """Are the lab and grading-time figures real PNGs linked from report.md, drawn without
    pyplot, and is a second report into the same folder a clean replacement?"""
    _write_records(graded)
    out = tmp_path / "report"
    files = class_report(graded, out_dir=out)
    assert set(files.figures) == {"toy", "grading_seconds", "fail_rates"}
    md = files.markdown.read_text()
    for path in files.figures.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width, _ = imread(path).shape
        assert width > 600 and height > 100
        assert f"]({path.name})" in md
    lab = imread(files.figures["toy"])
    assert lab.shape[1] > 3 * lab.shape[0]  # three panels side by side
    assert (
        "matplotlib.pyplot" not in sys.modules
        or sys.modules["matplotlib.pyplot"].get_fignums() == []
    )
    before = {p.name for p in out.iterdir()}
    again = class_report(graded, out_dir=out)
    assert (
        {p.name for p in out.iterdir()}
        == before
        == {"report.md", "toy.png", "grading_seconds.png", "fail_rates.png"}
    )
    assert again.markdown.read_text() == md


def test_no_records_still_reports_scores(graded, tmp_path):
    """Without autograded/.labkit (plain nbgrader autograde), are there no failures, no
    timing figure, and the scores and pass rates all the same?"""
    assert not (graded / "autograded" / ".labkit").exists()
    files = class_report(graded, out_dir=tmp_path)
    [toy] = files.labs
    assert (toy.failed, toy.slowest) == ((), ())
    assert set(files.figures) == {"toy", "fail_rates"}
    assert toy.totals == {"ann": 3.0, "bob": 0.0, "cid": 2.0, "eve": 0.0}
    md = files.markdown.read_text()
    assert "Failed submissions: none" in md and "slowest" not in md
    assert "grading_seconds" not in md


def test_lab_scores_match_nbgraders_own_export(graded):
    """Do the scores read from the gradebook (lab_scores) equal the hand-worked ones and
    `nbgrader export`'s grades.csv, the written answer's point counted apart?"""
    scores = lab_scores(graded, "toy")
    assert {s: (v.auto, v.auto_max, v.manual_max) for s, v in scores.items()} == {
        s: (sum(POINTS[t] for t in tests), 3.0, 1.0) for s, tests in PASSES.items()
    }
    assert {s: v.tests for s, v in scores.items()} == {
        s: {t: (POINTS[t] * (t in tests), POINTS[t]) for t in POINTS} for s, tests in PASSES.items()
    }
    with open(nbgrader_export(graded)) as f:
        exported = {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}
    # nbgrader's score counts the written answer too: 0 until graded by hand; dee has none
    assert exported == {**{s: v.auto for s, v in scores.items()}, "dee": 0.0}


def test_no_gradebook_says_what_to_do(tmp_path):
    """Is a folder without gradebook.db a CourseError, with no report written?"""
    with pytest.raises(CourseError, match=r"no gradebook at .*gradebook\.db"):
        class_report(tmp_path, out_dir=tmp_path / "report")
    assert not (tmp_path / "report").exists()
