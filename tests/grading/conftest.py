"""A two-cell nbgrader course to exercise labkit.grading without running a real lab."""

from pathlib import Path

import nbformat
import pytest

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
