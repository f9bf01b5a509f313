"""Tests for labkit.grading.course, and for the repository's own labs as a course."""

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from labkit.grading import CourseError, nbgrader, release_labs, stale_labs
from labkit.grading.course import available_labs

REPO = Path(__file__).resolve().parents[2]
LABS = [
    "lab01_baseline_fcn",
    "lab02_lr_schedules",
    "lab03_augmentation",
    "lab04_weighted_loss",
    "lab05_unet",
    "lab06_resnet_transfer",
    "lab07_deeplab_v3",
    "lab08_deformable_conv",
]


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def test_release_writes_the_student_version(toy_course):
    """Does release_labs run nbgrader and write a stubbed, hidden-test-free notebook for each
    lab, and release nothing of a folder in solutions/ that is no lab?"""
    shutil.copytree(toy_course / "solutions/toy", toy_course / "solutions/toy2")
    (toy_course / "solutions/toy2/toy.ipynb").rename(toy_course / "solutions/toy2/toy2.ipynb")
    scratch = toy_course / "solutions/scratch/notes.ipynb"  # a notebook, but no lab's
    scratch.parent.mkdir()
    shutil.copy(toy_course / "solutions/toy/toy.ipynb", scratch)
    paths = release_labs(toy_course)
    assert paths == [toy_course / "labs" / lab / f"{lab}.ipynb" for lab in ("toy", "toy2")]
    for path in paths:
        text = path.read_text()
        assert "raise NotImplementedError" in text and "return x + 1" not in text
        assert "add_one(-5)" not in text and "HIDDEN" not in text
    assert not (toy_course / "labs/scratch").exists()
    assert (toy_course / "gradebook.db").is_file()


def test_release_names_what_is_wrong(toy_course, tmp_path_factory):
    """Are an unknown lab and a folder that is no course reported with what to do?"""
    with pytest.raises(CourseError, match=r"unknown lab\(s\) \['nope'\]; expected .*\['toy'\]"):
        release_labs(toy_course, ["nope"])
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(CourseError, match="not a course directory: expected .*nbgrader_config"):
        release_labs(empty)


def test_stale_labs_sees_a_changed_source(released_toy):
    """Is a released lab not stale until its source changes, and stale after?"""
    # stale before any release: test_cli.py::test_release_then_check (`release --check`)
    assert stale_labs(released_toy) == []
    src = released_toy / "solutions" / "toy" / "toy.ipynb"
    src.write_text(src.read_text().replace("Learning goals: add one.", "Goals: add 1."))
    assert stale_labs(released_toy) == ["toy"]
    assert not (released_toy / "solutions" / "toy" / "runs").exists()


def test_nbgrader_error_carries_the_output(toy_course):
    """Does a failing nbgrader command raise with its exit code and output?"""
    from labkit.grading import NbgraderError

    with pytest.raises(NbgraderError, match="exited with"):
        nbgrader("autograde", "missing-lab", root=toy_course)


# -- the repository's own labs ---------------------------------------------------------


def test_the_eight_labs_are_there():
    """Does solutions/ hold exactly the eight labs, each with its release in labs/?"""
    assert available_labs(REPO) == LABS
    assert sorted(p.name for p in (REPO / "labs").iterdir() if p.is_dir()) == LABS


def test_committed_releases_are_up_to_date():
    """Is labs/ what `labkit course release` makes of solutions/ today?"""
    stale = stale_labs(REPO)
    assert stale == [], f"labs/ is out of date for {stale}: run `labkit course release`"


@pytest.mark.parametrize("lab", LABS)
def test_release_holds_no_solution_and_no_hidden_test(lab):
    """Does the student version hide every solution line and hidden test of the source?"""
    source = nbformat.read(REPO / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    release_text = (REPO / "labs" / lab / f"{lab}.ipynb").read_text()
    assert "BEGIN SOLUTION" not in release_text and "HIDDEN TESTS" not in release_text
    release = nbformat.read(REPO / "labs" / lab / f"{lab}.ipynb", as_version=4)
    by_id = {_meta(c).get("grade_id"): c for c in release.cells if _meta(c).get("grade_id")}
    for cell in source.cells:
        meta = _meta(cell)
        if meta.get("solution") and cell.cell_type == "code":
            for region in re.findall(
                r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, flags=re.S
            ):
                lines = [ln.strip() for ln in region.splitlines() if len(ln.strip()) > 12]
                leaked = [ln for ln in lines if ln in by_id[meta["grade_id"]].source]
                assert not leaked, f"{lab}/{meta['grade_id']} leaks {leaked[:3]}"
        if meta.get("grade") and not meta.get("solution"):
            pattern = r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS"
            visible = {
                ln.strip() for ln in re.sub(pattern, "", cell.source, flags=re.S).splitlines()
            }
            released = {ln.strip() for ln in by_id[meta["grade_id"]].source.splitlines()}
            for block in re.findall(pattern, cell.source, flags=re.S):
                only_hidden = {ln.strip() for ln in block.splitlines()} - visible - {""}
                leaked = sorted(only_hidden & released)
                assert not leaked, f"{lab}/{meta['grade_id']} leaks {leaked[:3]}"


@pytest.mark.parametrize("lab", LABS)
def test_lab_follows_the_course_structure(lab):
    """Goals first, one PROFILE config cell defaulting to quick, exercises with visible and
    hidden tests, a results table and a written answer graded by hand?"""
    nb = nbformat.read(REPO / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    assert nb.cells[0].cell_type == "markdown" and "learning goals" in nb.cells[0].source.lower()
    config = [
        c
        for c in nb.cells
        if c.cell_type == "code" and re.search(r'^PROFILE = "quick"', c.source, flags=re.M)
    ]
    assert len(config) == 1, 'expected one config cell with PROFILE = "quick"'
    tests = [c for c in nb.cells if _meta(c).get("grade") and c.cell_type == "code"]
    answers = [c for c in nb.cells if _meta(c).get("solution") and c.cell_type == "code"]
    written = [c for c in nb.cells if _meta(c).get("grade") and c.cell_type == "markdown"]
    assert tests and answers and written
    assert all("### BEGIN HIDDEN TESTS" in c.source for c in tests), (
        "a test cell has no hidden tests"
    )
    # Exercises with a library version (most of them) must switch it off while tested.
    assert any("forbid(" in c.source for c in tests), "no hidden test switches labkit's version off"
    assert any("results_table(" in c.source for c in nb.cells if c.cell_type == "code")
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "commit the source without outputs"
    )
