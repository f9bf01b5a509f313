"""Tests for labkit.grading.cli: `labkit course init | collect | status | release`."""

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


def test_init_collect_status(toy_course, tmp_path_factory, capsys):
    """Do `course init`, `collect --from` and `status` make, fill and show a course, with
    exit code 1 and the path when a file cannot be placed?"""
    work = tmp_path_factory.mktemp("term")
    (work / "students.csv").write_text("id,first_name,last_name,email\nann,Ann,Lee,\nbob,Bob,Ng,\n")
    root = work / "course"
    assert (
        main(
            [
                "course",
                "init",
                str(root),
                "--students",
                str(work / "students.csv"),
                "--kit",
                str(toy_course),
            ]
        )
        == 0
    )
    assert "course ready in" in capsys.readouterr().out
    release = (root / "labs/toy/toy.ipynb").read_text()
    download = work / "download"
    for student in ("ann", "zed"):
        (download / student).mkdir(parents=True)
        (download / student / "toy.ipynb").write_text(release)
    assert main(["course", "collect", "--from", str(download), "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"placed     ann/toy  <- {download / 'ann/toy.ipynb'}" in out
    assert f"problem    {download / 'zed/toy.ipynb'}: unknown student 'zed'" in out
    assert "1 placed, 0 unchanged, 0 skipped, 1 not placed" in out
    assert (root / "submitted/ann/toy/toy.ipynb").read_text() == release
    assert main(["course", "status", "--root", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| student | lab | state | submitted (UTC) |")
    assert [ln.split("|")[1:4] for ln in lines[2:4]] == [
        [" ann ", " toy ", " submitted "],
        [" bob ", " toy ", " missing "],
    ]
    assert "toy: 0 graded, 0 failed, 1 submitted, 1 missing" in lines


def test_init_errors_are_one_line(toy_course, tmp_path_factory, capsys):
    """Are a course that exists and a malformed students file one line, exit code 2?"""
    work = tmp_path_factory.mktemp("term")
    (work / "bad.csv").write_text("id\nann\nann\n")
    (work / "course").mkdir()
    assert (
        main(
            [
                "course",
                "init",
                str(work / "course"),
                "--students",
                str(work / "bad.csv"),
                "--kit",
                str(toy_course),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("labkit course: error:")
        and "line 3: id 'ann' is already on line 2" in err
        and "\n" not in err
    )
    (work / "course" / "notes.txt").write_text("mine")
    (work / "ok.csv").write_text("id\nann\n")
    assert (
        main(
            [
                "course",
                "init",
                "--root",
                str(work / "course"),
                "--students",
                str(work / "ok.csv"),
                "--kit",
                str(toy_course),
            ]
        )
        == 2
    )
    assert "is not empty" in capsys.readouterr().err
    assert main(["course", "collect", "--from", str(work), "--root", str(work)]) == 2
    assert "has no gradebook.db" in capsys.readouterr().err


def test_demo_takes_its_kit_from_kit(tmp_path, capsys):
    """Does `course demo --kit` reach the demo: a folder that is no kit is one line naming
    --kit, exit code 2, before the demo's folder is made?"""
    assert main(["course", "demo", "--out", str(tmp_path / "demo"), "--kit", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("labkit course: error:") and "(from --kit) is not a lab kit" in err
    assert "\n" not in err and not (tmp_path / "demo").exists()


def test_export_and_report_commands(released_toy, capsys):
    """Do `labkit course export` and `report` write grades.csv and report.md, counting a
    student without a submission as missing?"""
    from nbgrader.api import Gradebook

    root = released_toy
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:  # `nbgrader db student add`
        gb.update_or_create_student("kim")
    assert main(["course", "export", "--root", str(root)]) == 0
    assert f"wrote {root / 'grades.csv'}" in capsys.readouterr().out
    rows = (root / "grades.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("kim,") and ",toy,missing," in rows[1]
    assert main(["course", "report", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "toy: 0 submitted, 1 missing, no submissions, 0 failed to grade" in out
    assert (root / "report" / "report.md").is_file()


def test_similarity_prints_the_flagged_and_status_points_to_them(tmp_path, capsys):
    """Does `course similarity` print each flagged pair (the planted copies of
    test_similarity's class) and the files, and `course status` then say how many?"""
    from nbgrader.api import Gradebook

    from labkit.grading.nbgrader_cli import stamp_in_process
    from tests.grading.test_similarity import COPIES, make_class

    make_class(tmp_path)
    stamp_in_process()  # a new gradebook without an `alembic` process, as labkit's commands
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        gb.update_or_create_student("ann")
    assert main(["course", "similarity", "sim", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    flagged = [line.split() for line in out if line.startswith("flagged ")]
    pairs = {frozenset(words[2::2]) for words in flagged}
    expected = {frozenset((a, b)) for a in COPIES for b in COPIES if a != b}
    assert pairs == expected | {frozenset(("fay", "labkit.metrics.pixel_accuracy"))}
    assert "7 flagged at a threshold of 0.8" in out[-1] and "sim.html" in out[-1]
    assert main(["course", "status", "--root", str(tmp_path)]) == 0
    assert "sim: 7 pair(s) flagged as alike" in capsys.readouterr().out
    assert main(["course", "similarity", "sim", "--threshold", "2", "--root", str(tmp_path)]) == 2
    assert "threshold must be in [0, 1]; got 2.0" in capsys.readouterr().err
