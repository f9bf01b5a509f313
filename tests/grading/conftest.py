"""A two-cell nbgrader course to exercise labkit.grading without running a real lab.

Building a graded course costs seconds (nbgrader, kernels, judges), so a course several
tests read is built once per test run with :func:`shared_build` (once across the
pytest-xdist workers too) and copied where a test changes it (:func:`built_once`).
"""

import fcntl
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import nbformat
import pytest

from labkit.grading import fill_solutions, replace_in_cell

REPO = Path(__file__).resolve().parents[2]
SOLUTION = "def add_one(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n"
TESTS = (
    "assert add_one(1) == 2, 'add_one(1): expected 2'\n"
    "### BEGIN HIDDEN TESTS\nassert add_one(-5) == -4\n### END HIDDEN TESTS\n"
)


def judge_uid(use_bwrap: bool) -> int | None:
    """Whom a judge runs student code as, as autograde picks it: the grader's own user where,
    with limits only, the sandbox's uid cannot reach this interpreter (a root grader's pyenv
    under /root); else uid NOBODY."""
    from labkit.grading.sandbox import NOBODY, unreachable

    barred = unreachable(Path(os.path.realpath(sys.executable)), NOBODY)
    return None if os.geteuid() == 0 and not use_bwrap and barred else NOBODY


def _meta(cell, **kw):
    cell.metadata["nbgrader"] = {
        "grade": False,
        "locked": False,
        "schema_version": 3,
        "solution": False,
        "task": False,
        **kw,
    }
    return cell


def write_toy_lab(root: Path, lab: str = "toy") -> Path:
    """``root/solutions/<lab>/<lab>.ipynb``: one answer, one test cell (2 points), one
    written answer (1 point)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Toy lab\nLearning goals: add one."),
        _meta(nbformat.v4.new_code_cell(SOLUTION), grade_id="add_one", solution=True),
        _meta(
            nbformat.v4.new_code_cell(TESTS),
            grade_id="test_add_one",
            grade=True,
            locked=True,
            points=2,
        ),
        _meta(
            nbformat.v4.new_markdown_cell("Adding one moves right."),
            grade_id="why",
            grade=True,
            solution=True,
            points=1,
        ),
    ]
    path = root / "solutions" / lab / f"{lab}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def make_toy_course(root: Path) -> Path:
    """``root`` as a course: the repository's nbgrader_config.py and the toy lab."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text((REPO / "nbgrader_config.py").read_text())
    write_toy_lab(root)
    return root


@pytest.fixture
def toy_course(tmp_path: Path) -> Path:
    """A course directory with the repository's nbgrader_config.py and a toy lab."""
    return make_toy_course(tmp_path)


def nbgrader_api(
    root: Path, action: str, *args, env: dict[str, str] | None = None, **kwargs
) -> dict:
    """``NbGraderAPI.<action>(*args, **kwargs)`` on the course ``root``, in this process.

    nbgrader's own converters with the course's config, as its command line runs them, for
    tests whose subject is not that command line: no interpreter to start and nbgrader to
    import (seconds) per call. ``env`` is added to the environment nbgrader's kernels start
    from. Raises with nbgrader's log when the action fails.
    """
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    from labkit.grading.nbgrader_cli import stamp_in_process

    stamp_in_process()  # a new gradebook without an `alembic` process, as labkit's commands
    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    config.CourseDirectory.root = str(root)
    # nbgrader runs `jupyter` by name; kernels get one thread, as the suite's two workers
    # share two cores
    env = {
        "OMP_NUM_THREADS": "1",
        **(env or {}),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    }
    with mock.patch.dict(os.environ, env):
        result = getattr(NbGraderAPI(config=config), action)(*args, **kwargs)
    assert result["success"], f"nbgrader {action} {args} failed:\n{result.get('log')}"
    return result


def nbgrader_export(root: Path) -> Path:
    """``root/nbgrader.csv`` as ``nbgrader export --to nbgrader.csv`` writes it: nbgrader's
    CSV export plugin on the course's gradebook, in this process."""
    from nbgrader.api import Gradebook
    from nbgrader.plugins import CsvExportPlugin

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        CsvExportPlugin(to=str(root / "nbgrader.csv")).export(gb)
    return root / "nbgrader.csv"


def add_fractions_test(root: Path) -> None:
    """A second autograder test of the toy lab (1 point) that an int-only add_one fails."""
    path = root / "solutions/toy/toy.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = nbformat.v4.new_code_cell("assert add_one(0.5) == 1.5, 'add_one(0.5): expected 1.5'")
    cell.metadata["nbgrader"] = {
        "grade": True,
        "grade_id": "test_fractions",
        "locked": True,
        "points": 1,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }
    nb.cells.insert(3, cell)
    nbformat.write(nb, path)


def grade_toy_class(root: Path, *, stamps: dict[str, str] | None = None) -> None:
    """In a course with the toy lab released, hand in ann (the solution), bob (the blank release), cid
    (``int(x) + 1``: right on integers only) and eve (``x + 2``), with ``stamps`` as their
    timestamp.txt, and grade them with nbgrader's own autograde (in this process)."""
    release = nbformat.read(root / "labs/toy/toy.ipynb", as_version=4)
    good = fill_solutions(release, nbformat.read(root / "solutions/toy/toy.ipynb", as_version=4))
    subs = {
        "ann": good,
        "bob": release,
        "cid": replace_in_cell(good, "add_one", "x + 1", "int(x) + 1"),
        "eve": replace_in_cell(good, "add_one", "x + 1", "x + 2"),
    }
    for student, nb in subs.items():
        folder = root / "submitted" / student / "toy"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / "toy.ipynb")
        if student in (stamps or {}):
            (folder / "timestamp.txt").write_text(stamps[student])
    nbgrader_api(root, "autograde", "toy", "*")  # "*": every student, as the command line


def build_toy_class(root: Path) -> None:
    """The toy lab with both tests released, ann, bob, cid and eve autograded
    (:func:`grade_toy_class`); dee is in the gradebook and hands in nothing."""
    from nbgrader.api import Gradebook

    make_toy_course(root)
    add_fractions_test(root)
    nbgrader_api(root, "generate_assignment", "toy")
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:  # `nbgrader db student add`
        gb.update_or_create_student("dee")  # hands in nothing
    grade_toy_class(root)


def shared_build(tmp_path_factory, key: str, build: Callable[[Path], Any]) -> tuple[Path, Any]:
    """A folder ``build`` filled once per test run, and what ``build`` returned (as JSON).

    Every pytest-xdist worker of the run shares it: the first caller builds under a lock
    while any other waits (a module fixture would be built again by each worker running
    one of its tests). Read it as it is; copy it (:func:`built_once`) to change it.

    Args:
        tmp_path_factory: pytest's fixture; key: the build's name, unique in the suite.
        build: fills the empty folder it is given; returns a JSON-serialisable value.
    """
    base = tmp_path_factory.getbasetemp()
    # each worker's basetemp lies in the run's own folder, which they all share
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = shared / f"shared-{key}", shared / f"shared-{key}.json"
    with open(shared / f"shared-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
            folder.mkdir()
            value = build(folder)
            done.write_text(json.dumps(value))
    return folder, json.loads(done.read_text())


def built_once(course: Path, key: str, tmp_path_factory, build: Callable[[Path], None]) -> Path:
    """``course``: a copy of the folder ``build`` filled (once per run, see
    :func:`shared_build`), for a test that changes it."""
    folder, _ = shared_build(tmp_path_factory, key, build)
    shutil.copytree(folder, course, dirs_exist_ok=True)
    return course


GRADED_DUE = "2024-03-02 00:00:00 UTC"
GRADED_STAMPS = {"ann": "2024-03-01 12:00:00.000000 UTC", "cid": "2024-03-05 08:30:00.000000 UTC"}


def build_graded_class(root: Path) -> None:
    """ann (solution, on time), bob (blank), cid (int-only, late), eve (+2); dee, who hands
    in nothing; autograded with a zero-if-late penalty (nbgrader in this process)."""
    from nbgrader.api import Gradebook

    make_toy_course(root)
    with open(root / "nbgrader_config.py", "a") as f:  # nbgrader's own plugin, not labkit's
        f.write(
            '\nc.AssignLatePenalties.plugin_class = "nbgrader.plugins.LateSubmissionPlugin"'
            '\nc.LateSubmissionPlugin.penalty_method = "zero"\n'
        )
    add_fractions_test(root)
    nbgrader_api(root, "generate_assignment", "toy")
    # what `nbgrader db assignment add` and `db student add` do
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        gb.update_or_create_assignment("toy", duedate=GRADED_DUE)
        gb.update_or_create_student("dee", first_name="Dee", last_name="Dale")
    grade_toy_class(root, stamps=GRADED_STAMPS)


@pytest.fixture
def graded_class(tmp_path: Path, tmp_path_factory) -> Path:
    """The toy course of :func:`build_graded_class`, autograded once per run; each test gets
    its own copy."""
    return built_once(tmp_path / "course", "export-class", tmp_path_factory, build_graded_class)


@pytest.fixture
def released_toy(tmp_path: Path, tmp_path_factory) -> Path:
    """A toy course whose lab nbgrader has released (``labs/toy``, the gradebook), copied
    from one release per run."""

    def build(root: Path) -> None:
        make_toy_course(root)
        nbgrader_api(root, "generate_assignment", "toy")

    return built_once(tmp_path / "released", "released-toy", tmp_path_factory, build)


@pytest.fixture
def connect():
    """connect(namespace) -> a :class:`~labkit.grading.proxy.Channel` to a student's side
    serving ``namespace`` (:func:`labkit.grading.remote.serve`) in a thread: the protocol of
    the judge's student process, with the namespace set up directly by the test."""
    from labkit.grading.proxy import Channel
    from labkit.grading.remote import serve

    opened = []

    def make(namespace: dict, *, timeout: float = 30.0, server=serve) -> Channel:
        to_server, from_server = os.pipe(), os.pipe()
        thread = threading.Thread(
            target=server, args=(to_server[0], from_server[1], namespace), daemon=True
        )
        thread.start()
        opened.append((thread, to_server, from_server))
        return Channel(from_server[0], to_server[1], timeout=timeout)

    yield make
    for thread, to_server, from_server in opened:
        os.close(to_server[1])  # the server reads the end of its requests and returns
        thread.join(timeout=5)
        for fd in (to_server[0], *from_server):
            os.close(fd)


DUE = "2025-03-02 00:00"
# when each student hands in the solution (3 autograded points): on time; 2 d 1 h late
# (3 started days); 1.5 d late with a 2-day extension; 10 days late; 4 minutes late
HANDED_IN = {
    "ann": "2025-03-01 12:00:00 UTC",
    "cid": "2025-03-04 01:00:00 UTC",
    "eve": "2025-03-03 12:00:00 UTC",
    "fay": "2025-03-12 00:00:00 UTC",
    "gus": "2025-03-02 00:04:00 UTC",
}
EXTENSIONS = {"eve": 2, "dee": 1}  # dee hands in nothing


def build_late_class(root: Path) -> None:
    """The toy lab (3 autograded points, 1 by hand) with the kit's config (labkit's policy),
    a due date and two extensions set through the commands before anything is handed in,
    then every student's solution autograded by nbgrader's own autograde."""
    from nbgrader.api import Gradebook

    from labkit.cli import main

    make_toy_course(root)
    add_fractions_test(root)
    nbgrader_api(root, "generate_assignment", "toy")
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for student in [*HANDED_IN, "dee"]:
            gb.update_or_create_student(student)
    assert main(["course", "due", "toy", DUE, "--root", str(root)]) == 0
    for student, days in EXTENSIONS.items():
        argv = ["course", "extend", student, "toy", "--days", str(days), "--root", str(root)]
        assert main(argv) == 0
    release = nbformat.read(root / "labs/toy/toy.ipynb", as_version=4)
    good = fill_solutions(release, nbformat.read(root / "solutions/toy/toy.ipynb", as_version=4))
    for student, stamp in HANDED_IN.items():
        folder = root / "submitted" / student / "toy"
        folder.mkdir(parents=True)
        nbformat.write(good, folder / "toy.ipynb")
        (folder / "timestamp.txt").write_text(stamp)
    nbgrader_api(root, "autograde", "toy", "*")


@pytest.fixture
def late_class(tmp_path_factory) -> Path:
    """A copy of the course :func:`build_late_class` made (once per run)."""
    built, _ = shared_build(tmp_path_factory, "late-class", build_late_class)
    root = tmp_path_factory.mktemp("late") / "course"
    shutil.copytree(built, root)
    return root
