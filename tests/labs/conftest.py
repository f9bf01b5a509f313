"""Grade a lab with plain nbgrader in a throwaway course directory.

The course directory holds only the repository's ``nbgrader_config.py`` and the lab's
``solutions/<lab>/`` folder, and every step that grades is nbgrader's own
(``generate_assignment``, ``autograde``, through ``NbGraderAPI`` with the course's config,
as its command line runs them): what a university JupyterHub with nbgrader and labkit
installed as a library would run. Nothing of labkit's own grading commands takes part. The
command line itself is tested with labkit's course commands (tests/grading/); here it would
only add an interpreter start and nbgrader's imports (seconds) per step.

Each lab's module grades its class once (a module fixture): the solution, the blank release
and the planted mistakes go through one ``nbgrader autograde``. What is spent is kept small
where it is not what the test is about:

- the kernels train on ``LABKIT_BUDGET=smoke`` (one batch; the graded cells of every lab
  come before its training, and how long the quick profile takes is ``make bench``'s lab
  timings' business);
- they read one Shapes set drawn once per test process (``$LABKIT_DATA``);
- only the solution runs its whole notebook: the other submissions stop after their last
  autograded cell (:func:`cut_after_last_test`), and :meth:`Course.assert_cut_kept_every_test`
  checks, per lab, against nbgrader's own gradebook, that no graded cell was cut;
- ``nbgrader validate``'s verdict on the instructor's notebook is read from the outputs of
  the solution's graded run (:meth:`Course.validate_source`), not from a second execution.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import nbformat
import pytest

from labkit.grading import LabScore, fill_solutions, lab_scores, replace_in_cell
from tests.grading.conftest import nbgrader_api
from tests.warm_kernels import WarmKernelManager

REPO = Path(__file__).resolve().parents[2]
# Every test process shares two cores: one thread per notebook kernel, no GUI backend.
KERNEL_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
    "PYTHONWARNINGS": "ignore",
}
# The preset whose Shapes set a lab's quick profile reads (lab 08's shapes are deformed more).
SHAPES_PRESET = {"lab08_deformable_conv": "dcn_conv"}
SOLUTION = "solution"


def _grade_ids(nb: nbformat.NotebookNode) -> list[str]:
    return [
        c.metadata["nbgrader"]["grade_id"]
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade_id")
    ]


def _is_autograded(cell: nbformat.NotebookNode) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def cut_after_last_test(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without the code cells after its last autograded test cell (the
    training and plots that score nothing); markdown and nbgrader cells stay."""
    out = copy.deepcopy(nb)
    last = max(i for i, c in enumerate(out.cells) if _is_autograded(c))
    out.cells = [
        c
        for i, c in enumerate(out.cells)
        if i <= last or c.cell_type != "code" or c.metadata.get("nbgrader")
    ]
    return out


class Course:
    """A temporary nbgrader course holding one lab, released from the repository's source;
    ``env`` is added to the environment nbgrader's kernels start from."""

    def __init__(self, root: Path, lab: str, env: dict[str, str]) -> None:
        self.root, self.lab, self.env = root, lab, env
        shutil.copy2(REPO / "nbgrader_config.py", root)
        shutil.copytree(
            REPO / "solutions" / lab,
            root / "solutions" / lab,
            ignore=shutil.ignore_patterns("runs", "__pycache__", ".ipynb_checkpoints"),
        )
        self.nbgrader("generate_assignment", lab, force=True)
        self.source_path = root / "solutions" / lab / f"{lab}.ipynb"
        self.source = nbformat.read(self.source_path, as_version=4)
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
        """Submit each notebook as its student (all but :data:`SOLUTION` cut after their last
        test), run ``nbgrader autograde`` once, read the grades."""
        for student, nb in submissions.items():
            folder = self.root / "submitted" / student / self.lab
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(
                nb if student == SOLUTION else cut_after_last_test(nb), folder / f"{self.lab}.ipynb"
            )
        for student in submissions:
            self.nbgrader("autograde", self.lab, student, force=True, create=True)
        return lab_scores(self.root, self.lab)

    def nbgrader(self, action: str, *args, **kwargs) -> dict:
        """``NbGraderAPI.<action>(*args, **kwargs)`` on this course, in this process, its
        kernels started with :attr:`env` and forked from a warm process
        (:mod:`tests.warm_kernels`: nbgrader's executor with jupyter_client's kernel manager
        otherwise unchanged)."""
        with mock.patch("nbgrader.preprocessors.execute.AsyncKernelManager", WarmKernelManager):
            return nbgrader_api(self.root, action, *args, env=self.env, **kwargs)

    def autograded(self, student: str) -> nbformat.NotebookNode:
        """The notebook nbgrader graded for ``student``, with its outputs."""
        return nbformat.read(
            self.root / "autograded" / student / self.lab / f"{self.lab}.ipynb", as_version=4
        )

    def validate_source(self) -> dict:
        """``nbgrader validate``'s results on the instructor's notebook (``{}``: it passes),
        judged on the outputs of the solution's graded run.

        The source's cells are the graded notebook's, one for one (the release keeps every
        cell; autograde puts the hidden tests back), so the run's outputs are copied into the
        source and nbgrader's own Validator judges them, with its metadata checks and
        without its clear-and-execute steps.
        """
        from nbgrader.preprocessors import CheckCellMetadata
        from nbgrader.validator import Validator

        ran = self.autograded(SOLUTION)
        source = copy.deepcopy(self.source)
        assert [c.cell_type for c in ran.cells] == [
            c.cell_type for c in source.cells
        ] and _grade_ids(ran) == _grade_ids(source), "the graded run's cells are not the source's"
        for mine, theirs in zip(source.cells, ran.cells):
            if mine.cell_type == "code":
                mine.outputs, mine.execution_count = theirs.outputs, theirs.execution_count
        path = self.root / "validate" / self.lab / f"{self.lab}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(source, path)
        validator = Validator()
        validator.preprocessors = [CheckCellMetadata]
        return validator.validate(str(path))

    def assert_cut_kept_every_test(self, students) -> None:
        """Did every cut submission keep, and run, every autograded cell nbgrader's gradebook
        knows for this lab, so that no graded cell was left out by the cut?"""
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{self.root / 'gradebook.db'}") as gb:
            tests = {
                c.name
                for c in gb.find_notebook(self.lab, self.lab).grade_cells
                if c.cell_type == "code"
            }
        assert tests, f"{self.lab}: the gradebook knows no autograded cell"
        for student in students:
            ran = {
                c.metadata["nbgrader"]["grade_id"]: c
                for c in self.autograded(student).cells
                if _is_autograded(c)
            }
            assert set(ran) == tests, (student, tests ^ set(ran))
            unrun = [k for k, c in ran.items() if c.execution_count is None]
            assert not unrun, f"{student}: graded cells {unrun} did not run"

    @staticmethod
    def assert_grades(
        scores: dict[str, LabScore],
        *,
        right: str = SOLUTION,
        blank: str = "blank",
        wrong: tuple[str, ...] = ("wrong",),
    ) -> None:
        """The solution scores every autograded point, the blank release none, each wrong
        submission fewer than the solution (messages name the test cells)."""
        full = scores[right]
        assert full.auto_max > 0, "the lab has no autograded tests"
        assert full.auto == full.auto_max, (
            f"the solution lost points: {[k for k, (s, m) in full.tests.items() if s < m]}"
        )
        assert full.manual_max > 0, "the lab has no manually graded written answer"
        assert scores[blank].auto == 0, (
            f"the blank release scored in {[k for k, (s, _) in scores[blank].tests.items() if s]}"
        )
        for name in wrong:
            assert scores[name].auto < full.auto_max, f"{name} kept every point"


@pytest.fixture(scope="session")
def shapes_data(tmp_path_factory) -> Callable[[str], str]:
    """``shapes_data(lab)``: the folder of the Shapes set the lab's quick profile reads,
    drawn once per test process."""
    from labkit.experiment import resolve_data_root
    from labkit.labs import lab_config

    drawn: dict[str, str] = {}

    def get(lab: str) -> str:
        preset = SHAPES_PRESET.get(lab, "baseline")
        if preset not in drawn:
            runs = tmp_path_factory.mktemp("shapes")
            drawn[preset] = str(resolve_data_root(lab_config(preset), runs_root=runs))
        return drawn[preset]

    return get


@pytest.fixture(scope="module")
def course(tmp_path_factory, shapes_data) -> Callable[[str], Course]:
    """``course(lab)``: a fresh nbgrader course directory with ``lab`` released; its kernels
    train on the smoke budget and read the Shapes set of ``shapes_data``."""

    def make(lab: str) -> Course:
        env = {**KERNEL_ENV, "LABKIT_BUDGET": "smoke", "LABKIT_DATA": shapes_data(lab)}
        return Course(tmp_path_factory.mktemp(lab), lab, env)

    return make
