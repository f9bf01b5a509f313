"""Tests for labkit.grading.deadlines and `labkit course due | extend`: due dates and
extensions in nbgrader's gradebook, shown by status, the report and collect, and bad input.

The course is conftest's ``late_class``, graded by
nbgrader's own autograde with the kit's late policy.
"""

import os
import shutil
from datetime import datetime, timezone

import pytest

from labkit.cli import main
from labkit.grading.deadlines import lateness, parse_when
from labkit.grading.export import grade_rows
from tests.grading.conftest import EXTENSIONS


def test_status_report_and_due_show_it(late_class, capsys):
    """Do `course status`, the class report and `course due` show how late each one is, the
    penalty, the extensions and the policy?"""
    assert main(["course", "status", "--root", str(late_class)]) == 0
    out = capsys.readouterr().out
    line = {ln.split("|")[1].strip(): ln for ln in out.splitlines() if ln.startswith("| ")}
    assert "2 d 1 h late, -0.9 |" in line["cid"]
    assert "1 d 12 h late" not in line["eve"] and "ext. 2 d" in line["eve"]
    assert "4 min late, -0.3 |" in line["gus"]
    assert "missing" in line["dee"] and "ext. 1 d" in line["dee"]
    assert "late policy: 10 % of the points per started day late, at most 50 %; 0 after 7" in out
    assert "due: toy 2025-03-02 00:00 UTC" in out

    assert main(["course", "report", "--root", str(late_class)]) == 0
    report = (late_class / "report/report.md").read_text()
    assert "- Late: 3: cid (2.0 d, -0.9), fay (10.0 d, -3), gus (0.0 d, -0.3)" in report
    assert "due dates: toy 2025-03-02 00:00 UTC" in report

    assert main(["course", "due", "toy", "2025-03-03T00:00+01:00", "--root", str(late_class)]) == 0
    assert "due: toy 2025-03-02 23:00 UTC" in capsys.readouterr().out
    items = lateness(late_class)
    assert items["cid", "toy"].seconds_late == pytest.approx(26 * 3600)
    assert {r.student_id: r for r in grade_rows(late_class)}["cid"].late_penalty == pytest.approx(
        0.6
    )
    # nbgrader adds an extension to the due date: none may be left without one
    assert main(["course", "due", "toy", "--clear", "--root", str(late_class)]) == 2
    assert "toy has extensions (dee, eve)" in capsys.readouterr().err
    for student in EXTENSIONS:
        assert main(["course", "extend", student, "toy", "--clear", "--root", str(late_class)]) == 0
    assert main(["course", "due", "toy", "--clear", "--root", str(late_class)]) == 0
    assert "due: none set" in capsys.readouterr().out
    assert all(r.late_penalty == 0 for r in grade_rows(late_class))
    assert main(["course", "extend", "cid", "toy", "--days", "1", "--root", str(late_class)]) == 2
    assert "toy has no due date to extend" in capsys.readouterr().err


@pytest.mark.parametrize("stamp", ["2025-03-01 10:00:00 UTC", "2025-03-02 10:00:00 UTC"])
def test_collect_reports_late_and_checks_canvas_marker(late_class, tmp_path, stamp, capsys):
    """Does `course collect` say a placed submission is late, and, when Canvas marks one
    `late_` whose time is not after the due date, say to check it?"""
    download = tmp_path / "download"
    download.mkdir()
    body = (late_class / "submitted/ann/toy/toy.ipynb").read_bytes()
    (download / "nguyenann_late_ann_9001_toy.ipynb").write_bytes(body)
    when = parse_when(stamp).timestamp()
    os.utime(download / "nguyenann_late_ann_9001_toy.ipynb", (when, when))
    shutil.rmtree(late_class / "submitted/ann")
    assert main(["course", "collect", "--from", str(download), "--root", str(late_class)]) == 0
    out = capsys.readouterr().out
    if stamp.startswith("2025-03-01"):
        assert "check      ann/toy: the LMS marks it late, but its time" in out
    else:
        assert "late       ann/toy: 10 h late" in out
    written = (late_class / "submitted/ann/toy/timestamp.txt").read_text()
    assert parse_when(written) == datetime.fromtimestamp(when, timezone.utc)
