"""Grading throughput: ``labkit course autograde`` with 1 and 2 jobs against plain nbgrader.

Usage::

    python benchmarks/grading_throughput.py --json benchmarks/grading_throughput.json
    python benchmarks/grading_throughput.py --lab lab07_deeplab_v3 --students 8
    python benchmarks/grading_throughput.py --smoke      # the toy check CI runs

Method: one course per method, made by ``labkit course init`` from this kit with the same
class (half the students hand in the solution, half the blank release), so every method
grades the same notebooks from a cold start. ``nbgrader autograde LAB`` is nbgrader 0.9's
own command on its own copy (a kernel per notebook, one student after another, no sandbox);
``labkit`` runs :func:`labkit.grading.batch.autograde`: a sandboxed judge per notebook,
``--jobs`` at a time, with the referee (the default: the student's cells up to the last test,
every test decided in the grader's process) or with ``--runner`` (every cell and test in the
sandbox). All four run one after another in one invocation, so the ratios are
side by side on the same machine. The scores must agree between the methods (the run fails
otherwise); the table prints submissions per minute and the ratio to plain nbgrader.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labkit.grading.batch import autograde  # noqa: E402
from labkit.grading.course import lab_scores  # noqa: E402
from labkit.grading.instance import init_course  # noqa: E402
from labkit.grading.submissions import fill_solutions  # noqa: E402

SMOKE_SOURCE = {
    "answer": "def add_one(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n",
    "test": "assert add_one(1) == 2\n### BEGIN HIDDEN TESTS\nassert add_one(-5) == -4\n"
    "### END HIDDEN TESTS\n",
}


def _smoke_kit(folder: Path) -> Path:
    """A kit with one two-cell lab ``smoke`` (seconds to grade)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    meta = {"grade": False, "locked": False, "schema_version": 3, "solution": False, "task": False}
    answer = nbformat.v4.new_code_cell(SMOKE_SOURCE["answer"])
    answer.metadata["nbgrader"] = dict(meta, grade_id="add_one", solution=True)
    test = nbformat.v4.new_code_cell(SMOKE_SOURCE["test"])
    test.metadata["nbgrader"] = dict(
        meta, grade_id="test_add_one", grade=True, locked=True, points=1
    )
    nb.cells = [answer, test]
    (folder / "solutions" / "smoke").mkdir(parents=True)
    nbformat.write(nb, folder / "solutions" / "smoke" / "smoke.ipynb")
    (folder / "nbgrader_config.py").write_text((ROOT / "nbgrader_config.py").read_text())
    return folder


def make_course(dest: Path, kit: Path, lab: str, students: int) -> Path:
    """A course of ``students``: even ones hand in the solution, odd ones the release."""
    table = dest.parent / f"{dest.name}-students.csv"
    table.write_text("id\n" + "".join(f"s{i:03d}\n" for i in range(students)))
    root = init_course(dest, kit=kit, students_csv=table, labs=[lab])
    release = nbformat.read(root / "labs" / lab / f"{lab}.ipynb", as_version=4)
    solved = fill_solutions(
        release, nbformat.read(root / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    )
    for i in range(students):
        folder = root / "submitted" / f"s{i:03d}" / lab
        folder.mkdir(parents=True)
        nbformat.write(solved if i % 2 == 0 else release, folder / f"{lab}.ipynb")
    return root


def _scores(root: Path, lab: str) -> dict[str, float]:
    return {s: round(v.auto, 3) for s, v in lab_scores(root, lab).items()}


def run(lab: str, students: int, kit: Path, work: Path, *, copies: bool = False) -> list[dict]:
    """Time the four methods on identical courses; returns one row per method.

    ``copies``: make the first course only and give the other methods copies of it, made
    before any grading (the smoke run: a course init costs more than grading its toy lab).
    """
    rows, reference, first = [], None, None
    methods = [  # name, jobs, referee
        ("nbgrader autograde (plain)", None, None),
        ("labkit autograde --jobs 1", 1, True),
        ("labkit autograde --jobs 2", 2, True),
        ("labkit autograde --jobs 2 --runner", 2, False),
    ]
    if copies:
        first = make_course(work / "course-first", kit, lab, students)
    for name, jobs, referee in methods:
        dest = work / f"course-{jobs or 'nbgrader'}{'' if referee in (None, True) else '-runner'}"
        root = shutil.copytree(first, dest) if copies else make_course(dest, kit, lab, students)
        started = time.perf_counter()
        if jobs is None:
            subprocess.run(
                [sys.executable, "-m", "nbgrader", "autograde", lab, "--force"],
                cwd=root,
                check=True,
                capture_output=True,
                env=dict(os.environ, OMP_NUM_THREADS="1"),
            )
        else:
            outcomes = autograde(root, lab, jobs=jobs, referee=referee, progress=False)
            if failed := [o for o in outcomes if o.status != "graded"]:
                raise SystemExit(f"{name}: {failed[0].student} failed: {failed[0].reason}")
        seconds = time.perf_counter() - started
        scores = _scores(root, lab)
        if reference is not None and scores != reference:
            raise SystemExit(
                f"{name} gave other scores than plain nbgrader: {scores} vs {reference}"
            )
        reference = scores if reference is None else reference
        rows.append(
            {
                "method": name,
                "submissions": students,
                "seconds": round(seconds, 1),
                "per_minute": round(students / seconds * 60, 2),
            }
        )
    for row in rows:
        row["ratio_to_nbgrader"] = round(row["per_minute"] / rows[0]["per_minute"], 2)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", default="lab01_baseline_fcn", help="the lab to grade")
    parser.add_argument("--students", type=int, default=8, help="class size (default 8)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a two-cell toy lab, 2 students (a solution and a blank)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="labkit-throughput-") as tmp:
        work = Path(tmp)
        kit, lab, students = (
            (_smoke_kit(work / "kit"), "smoke", 2)
            if args.smoke
            else (ROOT, args.lab, args.students)
        )
        rows = run(lab, students, kit, work, copies=args.smoke)
    print(
        f"grading throughput, {lab}, {students} submissions (half solutions, half blank); "
        f"{os.cpu_count()} cores, {platform.python_version()}\n"
    )
    print("| method | submissions | seconds | submissions / min | vs plain nbgrader |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['method']} | {r['submissions']} | {r['seconds']:.1f} | "
            f"{r['per_minute']:.2f} | {r['ratio_to_nbgrader']:.2f}× |"
        )
    if args.json:
        args.json.write_text(json.dumps({"lab": lab, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
