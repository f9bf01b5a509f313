"""Tests for labkit.grading.deadlines_cli: `labkit course due | extend` from the command line,
many extensions from a CSV file, and bad input as one line that says what to do.

The course is conftest's ``late_class``: the toy lab graded by nbgrader's own autograde with
the kit's late policy, a due date and extensions given through these commands.
"""

import pytest

from labkit.cli import main
from labkit.grading import CourseError
from labkit.grading.deadlines import read_extensions
from labkit.grading.export import grade_rows
from tests.grading.conftest import DUE


def test_extensions_from_a_csv(late_class, tmp_path, capsys):
    """Does `course extend --csv` grant each row, and report bad rows by line?"""
    good = tmp_path / "ext.csv"
    good.write_text("student,lab,days,hours\ncid,toy,2,2\nfay,toy,10,\n")
    assert main(["course", "extend", "--csv", str(good), "--root", str(late_class)]) == 0
    assert "fay/toy: extension of 10 day(s)" in capsys.readouterr().out
    rows = {r.student_id: r for r in grade_rows(late_class)}
    assert rows["cid"].late_penalty == 0.0 and rows["fay"].late_penalty == 0.0
    bad = tmp_path / "bad.csv"
    bad.write_text("student,lab,days\ncid,toy,two\n,toy,1\nann,toy,-1\n")
    with pytest.raises(CourseError, match=r"line 2: could not convert.*line 3: .*line 4"):
        read_extensions(bad)
    (tmp_path / "head.csv").write_text("who,lab\n")
    with pytest.raises(CourseError, match="header 'who,lab'; expected student,lab,days"):
        read_extensions(tmp_path / "head.csv")


def test_bad_input_is_one_line_saying_what_to_do(late_class, capsys):
    """Are a time that does not parse, an unknown lab or student and a half-given command
    one line each on stderr, exit code 2, with nothing changed?"""
    root = ["--root", str(late_class)]
    for argv, expected in [
        (["due", "toy", "next friday"], "due date 'next friday' is not a time"),
        (["due", "nope", DUE], "unknown lab 'nope'"),
        (["due", "toy"], "give toy's due date"),
        (["extend", "zed", "toy", "--days", "1"], "unknown student 'zed'"),
        (["extend", "cid", "toy"], "expected STUDENT LAB with --days N"),
        (["extend", "cid", "toy", "--days", "-1"], "expected 0 or more"),
    ]:
        assert main(["course", *argv, *root]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert expected in err and "\n" not in err, (argv, err)
    assert {r.student_id: r.late_penalty for r in grade_rows(late_class)}["cid"] == 0.9
