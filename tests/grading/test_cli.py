"""Tests for labkit.grading.cli: `labkit course release`."""

from labkit.cli import main


def test_release_then_check(toy_course, capsys):
    """Does --check fail before a release, and pass after `labkit course release`?"""
    assert main(["course", "release", "--check", "--root", str(toy_course)]) == 1
    assert "toy: labs/toy is out of date" in capsys.readouterr().out
    assert main(["course", "release", "toy", "--root", str(toy_course)]) == 0
    assert "released" in capsys.readouterr().out
    assert (toy_course / "labs" / "toy" / "toy.ipynb").is_file()
    assert main(["course", "release", "--check", "--root", str(toy_course)]) == 0
    assert "up to date" in capsys.readouterr().out


def test_release_errors_are_one_line(toy_course, tmp_path_factory, capsys):
    """Are an unknown lab and a non-course folder one line on stderr with exit code 2?"""
    assert main(["course", "release", "nope", "--root", str(toy_course)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("labkit course: error: unknown lab(s) ['nope']") and "\n" not in err
    empty = tmp_path_factory.mktemp("empty")
    assert main(["course", "release", "--root", str(empty)]) == 2
    assert "not a course directory" in capsys.readouterr().err
