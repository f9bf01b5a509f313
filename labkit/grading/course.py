"""nbgrader's command line and gradebook, from Python.

A course directory is nbgrader's: ``nbgrader_config.py`` at its root (source directory
``solutions``, release directory ``labs``), ``solutions/<lab>/<lab>.ipynb`` the instructor's
notebooks with solutions and hidden tests, ``labs/<lab>/`` the student versions that
``nbgrader generate_assignment`` writes, ``gradebook.db`` nbgrader's database. The repository
itself is such a directory.

Everything here runs the real ``nbgrader`` command, so the labs stay plain nbgrader
assignments that any nbgrader installation can grade.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labkit.errors import LabkitError
from labkit.grading.bootstrap import module_argv

__all__ = [
    "CourseError",
    "LabScore",
    "NbgraderError",
    "available_labs",
    "check_lab",
    "lab_scores",
    "nbgrader",
    "release_labs",
    "stale_labs",
]


class CourseError(LabkitError, ValueError):
    """A course directory or lab name that is not what was expected."""


class NbgraderError(RuntimeError):
    """An nbgrader command failed; the message holds the end of its output."""


def _tool_env(env: dict[str, str] | None = None) -> dict[str, str]:
    # nbgrader runs `jupyter` by name: the interpreter's own bin/ must be first.
    env = dict(os.environ if env is None else env)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def nbgrader(
    *args: str,
    root: str | os.PathLike,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run ``nbgrader <args>`` in the course directory ``root`` (nbgrader's own command line,
    on this process's labkit, a new gradebook stamped in process: :mod:`.nbgrader_cli`).

    Args:
        *args (str): the command line after ``nbgrader``, e.g. ``"autograde", "lab01", "--force"``.
        root (str | os.PathLike): the course directory (holds ``nbgrader_config.py``).
        env (dict[str, str] | None): environment variables for the command (default: this
            process's).
        timeout (float | None): seconds before the command is killed.
        check (bool): raise :class:`NbgraderError` on a non-zero exit.

    Returns:
        The finished process, output captured as text (stdout and stderr together).
    """
    # nbgrader's own command line, stamping a new gradebook without an `alembic` process
    cmd = module_argv("labkit.grading.nbgrader_cli", *args)
    proc = subprocess.run(
        cmd,
        cwd=root,
        env=_tool_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-25:])
        raise NbgraderError(
            f"`nbgrader {' '.join(args)}` in {root} exited with {proc.returncode}:\n{tail}"
        )
    return proc


def available_labs(root: str | os.PathLike = ".") -> list[str]:
    """Names of the labs in ``root/solutions`` (folders holding ``<name>.ipynb``), sorted."""
    src = Path(root) / "solutions"
    return (
        sorted(p.name for p in src.iterdir() if (p / f"{p.name}.ipynb").is_file())
        if src.is_dir()
        else []
    )


def check_lab(root: str | os.PathLike, lab: str) -> None:
    """Raise CourseError, naming the labs there are, unless ``lab`` is in ``root/solutions``."""
    known = available_labs(root)
    if lab not in known:
        raise CourseError(
            f"lab {lab!r} is not in {Path(root) / 'solutions'}; expected one of "
            f"{', '.join(known) or 'none (is --root a course?)'}."
        )


def _check_labs(root: Path, labs: Sequence[str] | None) -> list[str]:
    known = available_labs(root)
    if not (root / "nbgrader_config.py").is_file():
        raise CourseError(
            f"{root} is not a course directory: expected "
            f"{root / 'nbgrader_config.py'}; run this from the kit's or "
            "the course's root, or pass --root."
        )
    unknown = [lab for lab in labs or [] if lab not in known]
    if unknown:
        raise CourseError(
            f"unknown lab(s) {unknown}; expected names from {root / 'solutions'}: {known}."
        )
    return list(labs or known)


def release_labs(root: str | os.PathLike = ".", labs: Sequence[str] | None = None) -> list[Path]:
    """Regenerate ``labs/<lab>/`` from ``solutions/<lab>/`` with ``nbgrader generate_assignment``.

    Args:
        root (str | os.PathLike): the course directory.
        labs (Sequence[str] | None): lab names; all labs in ``solutions/`` when omitted.

    Returns:
        The release notebooks written.
    """
    root = Path(root)
    chosen = _check_labs(root, labs)
    # nbgrader's assignment id is a glob: when "*" names exactly the chosen labs (each folder
    # of solutions/ holding a notebook), one command releases them all, paying its start-up
    # (the interpreter, nbgrader's imports) once, not per lab.
    globbed = {
        p.name
        for p in (root / "solutions").glob("*")
        if not p.name.startswith(".") and any(p.glob("*.ipynb"))
    }
    for lab in ["*"] if len(chosen) > 1 and globbed == set(chosen) else chosen:
        nbgrader("generate_assignment", lab, "--force", root=root)
    return [root / "labs" / lab / f"{lab}.ipynb" for lab in chosen]


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__", ".ipynb_checkpoints"])
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    if filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)[1:] != ([], []):
        return False
    return all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def stale_labs(root: str | os.PathLike = ".", labs: Sequence[str] | None = None) -> list[str]:
    """Labs whose committed ``labs/<lab>/`` differs from a fresh release of ``solutions/<lab>/``.

    The release is made in a temporary copy of the course, so neither ``labs/`` nor the
    gradebook is touched.
    """
    root = Path(root)
    chosen = _check_labs(root, labs)
    with tempfile.TemporaryDirectory(prefix="labkit-release-") as tmp:
        shutil.copy2(root / "nbgrader_config.py", tmp)
        for lab in chosen:
            shutil.copytree(
                root / "solutions" / lab,
                Path(tmp) / "solutions" / lab,
                ignore=shutil.ignore_patterns("runs", "__pycache__", ".ipynb_checkpoints"),
            )
        release_labs(tmp, chosen)
        return [
            lab
            for lab in chosen
            if not (root / "labs" / lab).is_dir()
            or not _same_tree(Path(tmp) / "labs" / lab, root / "labs" / lab)
        ]


@dataclass(frozen=True)
class LabScore:
    """One student's grade on one lab, from the gradebook.

    Attributes:
        auto: points from autograded test cells.
        auto_max: the most those cells give.
        manual_max: points of the manually graded (written-answer) cells.
        tests: per test cell ``grade_id``: (points scored, points possible).
    """

    auto: float
    auto_max: float
    manual_max: float
    tests: dict[str, tuple[float, float]]


def lab_scores(root: str | os.PathLike, lab: str) -> dict[str, LabScore]:
    """Per student, the autograded score of ``lab`` in the course's gradebook."""
    from nbgrader.api import Gradebook

    url = f"sqlite:///{Path(root).resolve() / 'gradebook.db'}"
    scores = {}
    with Gradebook(url) as gb:
        for sub in gb.assignment_submissions(lab):
            tests, manual_max = {}, 0.0
            for nb in sub.notebooks:
                for grade in nb.grades:
                    if grade.cell.cell_type == "code":
                        tests[grade.name] = (float(grade.auto_score or 0.0), float(grade.max_score))
                    else:
                        manual_max += float(grade.max_score)
            scores[sub.student.id] = LabScore(
                sum(s for s, _ in tests.values()),
                sum(m for _, m in tests.values()),
                manual_max,
                tests,
            )
    return scores
