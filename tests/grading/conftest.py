"""A two-cell nbgrader course to exercise labkit.grading without running a real lab."""

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from labkit.grading import fill_solutions, nbgrader, replace_in_cell

REPO = Path(__file__).resolve().parents[2]
SOLUTION = "def add_one(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n"
TESTS = ("assert add_one(1) == 2, 'add_one(1): expected 2'\n"
         "### BEGIN HIDDEN TESTS\nassert add_one(-5) == -4\n### END HIDDEN TESTS\n")


def _meta(cell, **kw):
    cell.metadata["nbgrader"] = {"grade": False, "locked": False, "schema_version": 3,
                                 "solution": False, "task": False, **kw}
    return cell


def write_toy_lab(root: Path, lab: str = "toy") -> Path:
    """``root/solutions/<lab>/<lab>.ipynb``: one answer, one test cell (2 points), one
    written answer (1 point)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Toy lab\nLearning goals: add one."),
        _meta(nbformat.v4.new_code_cell(SOLUTION), grade_id="add_one", solution=True),
        _meta(nbformat.v4.new_code_cell(TESTS), grade_id="test_add_one", grade=True,
              locked=True, points=2),
        _meta(nbformat.v4.new_markdown_cell("Adding one moves right."), grade_id="why",
              grade=True, solution=True, points=1),
    ]
    path = root / "solutions" / lab / f"{lab}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def toy_course(tmp_path: Path) -> Path:
    """A course directory with the repository's nbgrader_config.py and a toy lab."""
    (tmp_path / "nbgrader_config.py").write_text((REPO / "nbgrader_config.py").read_text())
    write_toy_lab(tmp_path)
    return tmp_path


def add_fractions_test(root: Path) -> None:
    """A second autograder test of the toy lab (1 point) that an int-only add_one fails."""
    path = root / "solutions/toy/toy.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = nbformat.v4.new_code_cell("assert add_one(0.5) == 1.5, 'add_one(0.5): expected 1.5'")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "test_fractions", "locked": True,
                                 "points": 1, "schema_version": 3, "solution": False,
                                 "task": False}
    nb.cells.insert(3, cell)
    nbformat.write(nb, path)


def grade_toy_class(root: Path, *, stamps: dict[str, str] | None = None) -> None:
    """In a course with the toy lab released, hand in ann (the solution), bob (the blank release), cid
    (``int(x) + 1``: right on integers only) and eve (``x + 2``), with ``stamps`` as their
    timestamp.txt, and grade them with the real ``nbgrader autograde``."""
    release = nbformat.read(root / "labs/toy/toy.ipynb", as_version=4)
    good = fill_solutions(release, nbformat.read(root / "solutions/toy/toy.ipynb", as_version=4))
    subs = {"ann": good, "bob": release,
            "cid": replace_in_cell(good, "add_one", "x + 1", "int(x) + 1"),
            "eve": replace_in_cell(good, "add_one", "x + 1", "x + 2")}
    for student, nb in subs.items():
        folder = root / "submitted" / student / "toy"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / "toy.ipynb")
        if student in (stamps or {}):
            (folder / "timestamp.txt").write_text(stamps[student])
    nbgrader("autograde", "toy", "--force", root=root, env={**os.environ, "OMP_NUM_THREADS": "1"})


def built_once(course: Path, cache: dict, tmp_path_factory, build: Callable[[Path], None]
               ) -> Path:
    """``course`` after ``build(course)``; the first call builds, later ones copy that."""
    if "path" not in cache:
        build(course)
        cache["path"] = tmp_path_factory.mktemp("built")
        shutil.copytree(course, cache["path"], dirs_exist_ok=True)
    else:
        shutil.copytree(cache["path"], course, dirs_exist_ok=True)
    return course
