"""labkit.grading.demo: the instructor's cycle on a real lab, checked against nbgrader's gradebook."""

import csv
import dataclasses
import json
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from labkit.grading import CourseError
from labkit.grading.demo import STUDENTS, CourseDemo, DemoRow, course_demo, demo_submission
from tests.grading.conftest import shared_build

REPO = Path(__file__).resolve().parents[2]
LAB = "lab01_baseline_fcn"  # the fastest lab: a few seconds per judged notebook at one batch


_PATHS = ("root", "data", "grades", "canvas", "report")  # the Path fields of a CourseDemo


def _to_json(made: CourseDemo) -> dict:
    """``made`` as JSON, for :func:`shared_build` to keep; :func:`_from_json` reads it back."""
    out = dataclasses.asdict(made)  # the rows become dicts
    out.update(
        {key: str(out[key]) for key in _PATHS},
        feedback=[str(p) for p in made.feedback],
        similarity=[str(p) for p in made.similarity],
    )
    return out


def _from_json(data: dict) -> CourseDemo:
    return CourseDemo(
        **{
            **data,
            **{key: Path(data[key]) for key in _PATHS},
            "rows": tuple(DemoRow(**row) for row in data["rows"]),
            "feedback": tuple(Path(p) for p in data["feedback"]),
            "similarity": tuple(Path(p) for p in data["similarity"]),
        }
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> CourseDemo:
    """The demo on one lab with the default class, made once per test run (the workers that
    get one of these tests read the same course), one notebook at a time (the suite's
    workers fill the cores), its training cells at one batch: ``LABKIT_BUDGET=smoke`` in the
    grader's environment, which the judge passes on. Every graded test cell of a lab comes
    before its training, so the scores are those of the full budget (about a minute)."""

    def build(folder: Path) -> dict:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("LABKIT_BUDGET", "smoke")
            return _to_json(course_demo(folder / "out", labs=[LAB], jobs=1, progress=False))

    return _from_json(shared_build(tmp_path_factory, "course-demo", build)[1])


def _autograded(root: Path) -> dict[str, tuple[float, float]]:
    """Student -> (autograded points, most) of the lab's test cells, read by nbgrader."""
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        out = {}
        for sub in gb.assignment_submissions(LAB):
            tests = [g for nb in sub.notebooks for g in nb.grades if g.cell.cell_type == "code"]
            out[sub.student.id] = (
                sum(g.auto_score or 0.0 for g in tests),
                sum(float(g.max_score) for g in tests),
            )
    return out


def _graded(root: Path, student: str) -> nbformat.NotebookNode:
    return nbformat.read(root / "autograded" / student / LAB / f"{LAB}.ipynb", as_version=4)


def _outputs(root: Path, student: str, grade_id: str) -> str:
    nb = _graded(root, student)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return "".join(o.get("text", "") + o.get("evalue", "") for o in cell.outputs)


def test_scores_order_the_class(demo):
    """Does the gradebook give the correct notebook every autograded point, the blank one
    none, the partly wrong one some but not all, and each cheater no more than blank?"""
    scores = _autograded(demo.root)
    assert set(scores) == set(STUDENTS)
    got, most = scores["correct"]
    assert most > 0 and got == most
    assert scores["blank"][0] == 0
    assert 0 < scores["partial"][0] < most
    for cheater in ("cheat_isclose", "cheat_transformer", "cheat_gradebook"):
        assert scores[cheater][0] <= scores["blank"][0], cheater


def test_the_correct_notebook_ran_to_its_end(demo):
    """Did every cell of the correct notebook run without an error, the training and the
    results table after its tests included (the smoke budget shortens them only)? A cell
    that failed shows its error; a judge stopped early leaves the last cell without output."""
    code = [c for c in _graded(demo.root, "correct").cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors[0]
    assert code[-1].outputs, "the notebook's last cell did not run"


def test_rows_agree_with_the_gradebook(demo):
    """Does every row of the demo say graded, with the gradebook's autograded points?"""
    scores = _autograded(demo.root)
    assert [(r.student, r.status) for r in demo.rows] == [(s, "graded") for s in STUDENTS]
    assert {r.student: (r.auto_score, r.auto_max) for r in demo.rows} == scores
    assert list(demo.lab_seconds) == [LAB] and demo.seconds >= demo.lab_seconds[LAB] > 0


@pytest.mark.needs("bwrap")  # with limits only the course is in plain view, as README says
def test_gradebook_attack_finds_nothing(demo):
    """Does the notebook that looks for the gradebook and the course find none of them
    (its attack ran: it says so for every path it tried)?"""
    printed = _outputs(demo.root, "cheat_gradebook", "pixel_accuracy")
    assert printed.count("attack: no ") == 5, printed
    assert "FOUND" not in printed


def test_files_written(demo):
    """Are grades.csv (a row per student), report.md and a feedback page per graded student
    written, and does no page show a hidden test?"""
    with open(demo.grades, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["lab"] == LAB]
    assert sorted(r["student_id"] for r in rows) == sorted(STUDENTS)
    assert demo.report.is_file() and LAB in demo.report.read_text(encoding="utf-8")
    pages = {demo.root / "feedback" / s / LAB / f"{LAB}.html" for s in STUDENTS}
    assert set(demo.feedback) == pages and all(p.is_file() for p in pages)
    assert demo.feedback_missing == {}
    assert not any("BEGIN HIDDEN TESTS" in p.read_text(encoding="utf-8") for p in pages)
    # Canvas's import: a row per student (after Points Possible), the lab's total as in grades.csv
    with open(demo.canvas, newline="", encoding="utf-8") as f:
        canvas = list(csv.DictReader(f))
    assert canvas[0]["Student"] == "Points Possible"
    totals = {r["student_id"]: float(r["total"]) for r in rows}
    assert {r["SIS User ID"]: float(r[LAB]) for r in canvas[1:]} == totals
    # The similarity report: "correct" and "partial" hand in the same solution but for the
    # first answer, so they are the pair most alike; a blank release is alike with no one.
    assert demo.similarity == (demo.root / "similarity" / f"{LAB}.html",)
    scores = json.loads((demo.root / "similarity" / f"{LAB}.json").read_text(encoding="utf-8"))
    pairs = {frozenset((p["first"], p["second"])): p["score"] for p in scores["pairs"]}
    assert max(pairs, key=pairs.get) == {"correct", "partial"}
    assert all(score == 0 for pair, score in pairs.items() if "blank" in pair)


def test_the_term_late_work_extension_and_hand_grading(demo):
    """Did the term's events reach nbgrader's gradebook and every file from it: partial's
    late hand-in penalised as the kit's policy says (worked out here day by day), correct's
    extension sparing it, and correct's hand-graded answer (score and comment, stored as the
    formgrader stores them) in grades.csv, the Canvas file and the feedback page?"""
    from labkit.grading.demo_term import COMMENT, FIRST_DUE
    from labkit.grading.late import LatePolicy
    from tests.grading.conftest import nbgrader_export
    from tests.grading.test_late import reference_penalty

    with Gradebook(f"sqlite:///{demo.root / 'gradebook.db'}") as gb:
        assert gb.find_assignment(LAB).duedate == FIRST_DUE.replace(tzinfo=None)
        partial, correct = gb.find_submission(LAB, "partial"), gb.find_submission(LAB, "correct")
        assert partial.total_seconds_late == (2 * 24 + 8) * 3600
        assert correct.extension.days == 3 and correct.total_seconds_late == 0
        written = [
            (g.manual_score, g.max_score)
            for nb in correct.notebooks
            for g in nb.grades
            if g.manual_score is not None
        ]
        comments = [c.manual_comment for nb in correct.notebooks for c in nb.comments]
        partial_score, partial_late = partial.score, partial.total_seconds_late
    assert len(written) == 1 and written[0][0] == written[0][1] > 0
    assert comments.count(COMMENT) == 1
    expected = reference_penalty(partial_score, partial_late, LatePolicy())
    assert expected > 0
    with open(nbgrader_export(demo.root), newline="", encoding="utf-8") as f:
        theirs = {r["student_id"]: r for r in csv.DictReader(f) if r["assignment"] == LAB}
    with open(demo.grades, newline="", encoding="utf-8") as f:
        ours = {r["student_id"]: r for r in csv.DictReader(f) if r["lab"] == LAB}
    assert float(theirs["partial"]["late_submission_penalty"]) == pytest.approx(expected)
    assert float(ours["partial"]["late_penalty"]) == pytest.approx(expected)
    assert float(ours["correct"]["late_penalty"]) == 0.0
    for student in ("partial", "correct"):  # nbgrader's score is less the penalty, as ours
        assert float(ours[student]["total"]) == pytest.approx(float(theirs[student]["score"]))
    row = {r.student: r for r in demo.rows}["correct"]
    assert float(ours["correct"]["total"]) == row.auto_score + written[0][1]
    page = (demo.root / "feedback" / "correct" / LAB / f"{LAB}.html").read_text(encoding="utf-8")
    assert COMMENT in page
    assert any(line.startswith(f"partial/{LAB}: 2 d 8 h late, -") for line in demo.term)
    assert any(line.startswith(f"correct/{LAB}: ext. 3 d") for line in demo.term)


def test_table_shows_each_student(demo):
    """Does the summary table hold a row per student with its score out of the lab's most?"""
    scores, table = _autograded(demo.root), demo.table(jobs=2)
    for student in STUDENTS:
        got, most = scores[student]
        assert f"| {student} | {got:g} / {most:g} | {got:g} / {most:g} |" in table


def test_partial_differs_in_the_first_answer_only():
    """Is the partly wrong notebook the correct one with only its first answer cell back to
    the release's text?"""
    release = nbformat.read(REPO / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    source = nbformat.read(REPO / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    good = demo_submission("correct", release, source, root=REPO)
    partial = demo_submission("partial", release, source, root=REPO)
    differ = [
        r.metadata.get("nbgrader", {}).get("grade_id")
        for g, p, r in zip(good.cells, partial.cells, release.cells)
        if g.source != p.source
    ]
    assert differ == ["pixel_accuracy"]
    first = next(
        c
        for c in partial.cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == "pixel_accuracy"
    )
    assert first.source == next(
        c.source
        for c in release.cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == "pixel_accuracy"
    )


def test_refuses_a_folder_it_did_not_make(tmp_path):
    """Is a folder holding something else than an earlier demo left alone, with an error?"""
    (tmp_path / "thesis.tex").write_text("keep me")
    with pytest.raises(CourseError, match="not empty"):
        course_demo(tmp_path, labs=[LAB])
    assert (tmp_path / "thesis.tex").read_text() == "keep me"


def test_unknown_student_or_cheat_lab(tmp_path):
    """Are an unknown student and a cheat lab outside the demo's labs refused before any
    work?"""
    with pytest.raises(CourseError, match="unknown demo student"):
        course_demo(tmp_path / "a", labs=[LAB], students=["correct", "mallory"])
    with pytest.raises(CourseError, match="cheat lab"):
        course_demo(tmp_path / "b", labs=[LAB], cheat_labs=["lab05_unet"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_folder_that_is_no_kit_is_refused_before_any_work(tmp_path, monkeypatch):
    """Is a kit (named, or from $LABKIT_KIT) without solutions refused, naming it, before
    the demo's folder is made?"""
    monkeypatch.setenv("LABKIT_KIT", str(tmp_path))
    with pytest.raises(CourseError, match=r"from \$LABKIT_KIT\) is not a lab kit"):
        course_demo(tmp_path / "a")
    with pytest.raises(CourseError, match=r"from --kit\) is not a lab kit"):
        course_demo(tmp_path / "b", kit=tmp_path)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
