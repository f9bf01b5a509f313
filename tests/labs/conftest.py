"""Grade a lab with the real nbgrader command line in a throwaway course directory.

The course directory holds only the repository's ``nbgrader_config.py`` and the lab's
``solutions/<lab>/`` folder, and every step is a plain ``nbgrader`` command
(``generate_assignment``, ``autograde``, ``validate``): what a university JupyterHub with
nbgrader and labkit installed as a library would run. Nothing of labkit's own grading
commands takes part.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from labkit.grading import LabScore, fill_solutions, lab_scores, nbgrader, replace_in_cell

REPO = Path(__file__).resolve().parents[2]
# Every test process shares two cores: one thread per notebook kernel, no GUI backend.
KERNEL_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg",
              "PYTHONWARNINGS": "ignore"}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(KERNEL_ENV)
    env.pop("LABKIT_DATA", None)  # the quick profile draws its own Shapes set
    return env


class Course:
    """A temporary nbgrader course holding one lab, released from the repository's source."""

    def __init__(self, root: Path, lab: str) -> None:
        self.root, self.lab = root, lab
        shutil.copy2(REPO / "nbgrader_config.py", root)
        shutil.copytree(REPO / "solutions" / lab, root / "solutions" / lab,
                        ignore=shutil.ignore_patterns("runs", "__pycache__",
                                                      ".ipynb_checkpoints"))
        nbgrader("generate_assignment", lab, "--force", root=root, env=_env())
        self.source = nbformat.read(root / "solutions" / lab / f"{lab}.ipynb", as_version=4)
        self.release = nbformat.read(root / "labs" / lab / f"{lab}.ipynb", as_version=4)

    def solution(self) -> nbformat.NotebookNode:
        """The release with the source's solutions typed in, as a student would hand in."""
        return fill_solutions(self.release, self.source)

    def wrong(self, grade_id: str, old: str, new: str) -> nbformat.NotebookNode:
        """The solution submission with one plausible mistake planted in cell ``grade_id``."""
        return replace_in_cell(self.solution(), grade_id, old, new)

    def with_cell(self, grade_id: str, source: str) -> nbformat.NotebookNode:
        """The solution submission with cell ``grade_id`` holding ``source`` instead (say, a
        student who calls labkit's own version of the exercise)."""
        nb = self.solution()
        cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
        assert cells, f"no cell with grade_id {grade_id!r}"
        cells[0].source = source
        return nb

    def autograde(self, submissions: dict[str, nbformat.NotebookNode]) -> dict[str, LabScore]:
        """Submit each notebook as its student, run ``nbgrader autograde``, read the grades."""
        for student, nb in submissions.items():
            folder = self.root / "submitted" / student / self.lab
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, folder / f"{self.lab}.ipynb")
        nbgrader("autograde", self.lab, "--force", root=self.root, env=_env(), timeout=1500)
        return lab_scores(self.root, self.lab)

    def validate_source(self) -> str:
        """Output of ``nbgrader validate`` on the instructor's notebook (executes it)."""
        nb = self.root / "solutions" / self.lab / f"{self.lab}.ipynb"
        proc = nbgrader("validate", str(nb), root=self.root, env=_env(), timeout=900,
                        check=False)
        return proc.stdout


    @staticmethod
    def assert_grades(scores: dict[str, LabScore], *, right: str = "solution",
                      blank: str = "blank", wrong: tuple[str, ...] = ("wrong",)) -> None:
        """The solution scores every autograded point, the blank release none, each wrong
        submission fewer than the solution (messages name the test cells)."""
        full = scores[right]
        assert full.auto_max > 0, "the lab has no autograded tests"
        assert full.auto == full.auto_max, \
            f"the solution lost points: {[k for k, (s, m) in full.tests.items() if s < m]}"
        assert full.manual_max > 0, "the lab has no manually graded written answer"
        assert scores[blank].auto == 0, \
            f"the blank release scored in {[k for k, (s, _) in scores[blank].tests.items() if s]}"
        for name in wrong:
            assert scores[name].auto < full.auto_max, f"{name} kept every point"


@pytest.fixture
def course(tmp_path: Path) -> Callable[[str], Course]:
    """``course(lab)``: a fresh nbgrader course directory with ``lab`` released."""
    return lambda lab: Course(tmp_path, lab)
