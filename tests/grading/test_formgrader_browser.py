"""Can an instructor grade a written answer by hand in nbgrader's formgrader, in JupyterLab, on
a course ``labkit course init`` made, and do labkit's export and feedback then carry it?

End to end, as an instructor works: ``labkit course init`` makes a course with lab 01 and one
student, who hands in the demo's correct notebook; ``labkit course autograde`` grades it.
JupyterLab is started in the course folder (with nbgrader's lab and server extensions, as
installed with labkit) and driven in headless Chromium: the Nbgrader menu's Formgrader opens
nbgrader's formgrader in a lab panel (an iframe), and from there Manual Grading → the lab →
its notebook → Submission #1, where a score and a comment are typed for the first written
answer (a markdown cell graded by hand) and a score for the second; each is saved by the
formgrader's own REST calls, which the test waits for. Then ``labkit course export`` and
``labkit course feedback`` run, and the test checks that ``grades.csv`` counts the typed
points in ``manual_score`` and the total, that the student's feedback page shows the comment
(its markdown rendered, through labkit's sanitising) and the cell's score, and, with
nbgrader's own gradebook API as an independent oracle, that the gradebook holds exactly what
was typed.

No request leaves the machine: the page may only reach the local server; the formgrader's
MathJax, which a browser would fetch from a CDN, is served as a stub (the formgrader's
keyboard handling needs its object), everything else is refused at once.

Needs Debian's ``chromium`` and the ``playwright`` package; without them the test skips and
says which is missing, except under CI (``LABKIT_CI=1``), where it fails
(``tests/system_packages.py``).
"""

from __future__ import annotations

import csv
import os
import re
from unittest import mock

import nbformat
import pytest

from labkit.cli import main
from labkit.grading.demo import demo_submission
from labkit.grading.export import grade_rows
from tests.grading.conftest import REPO
from tests.grading.test_feedback_browser import CHROMIUM_ARGS
from tests.jupyter_lab import LabServer, jupyter_lab
from tests.system_packages import CHROMIUM

pytestmark = pytest.mark.needs("chromium")

LAB = "lab01_baseline_fcn"
STUDENT = "ada"
#: lab 01's written answers (markdown cells graded by hand): grade_id → the score typed.
SCORES = {"analysis_accuracy_vs_miou": 2.5, "analysis_void": 1.0}
ANSWER = "analysis_accuracy_vs_miou"  # the one that also gets a comment (3 points)
COMMENT = "Right about the background's share; now name the *class imbalance* outright."
COMMENT_TEXT = COMMENT.replace("*", "")  # as the page shows it, the emphasis rendered
# What the formgrader's page asks of MathJax (formgrade.js registers a startup listener);
# served in place of the CDN's script.
MATHJAX_STUB = (
    "window.MathJax = {Hub: {Config() {}, Queue() {}, Startup: {signal: {Interest() {}}}}};"
)
READY = (
    "() => window.formgrader && formgrader.loaded && formgrader.grades.loaded"
    " && formgrader.comments.loaded"
)


def _offline(page, base: str) -> None:
    """Let ``page`` reach ``base`` and ``file:`` URLs only; MathJax from its CDN is a stub."""

    def route(route) -> None:
        url = route.request.url
        if url.startswith((base, "file:")):
            route.continue_()
        elif "mathjax" in url.lower() and url.split("?")[0].endswith(".js"):
            route.fulfill(status=200, content_type="text/javascript", body=MATHJAX_STUB)
        else:
            route.abort()

    page.route("**/*", route)


def _saved(kind: str):
    """A predicate for the formgrader's PUT of a grade or a comment (``kind``)."""
    return lambda r: r.request.method == "PUT" and f"/formgrader/api/{kind}/" in r.url


def _open_formgrader(page) -> None:
    """Nbgrader → Formgrader in JupyterLab's menu bar: the formgrader's panel opens."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    menu = page.locator("#jp-MainMenu").get_by_role("menuitem", name="Nbgrader", exact=True)
    item = page.get_by_role("menuitem", name="Formgrader", exact=True)
    # The menu bar takes clicks as soon as it shows, but a click landing while JupyterLab
    # still lays out its shell can close the menu it opened: open it again until the item
    # shows (a wait on the item, not on time).
    for attempt in range(3):
        menu.click()
        try:
            item.wait_for(state="visible", timeout=15_000)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
    item.click()


def _grade_by_hand(page, lab: LabServer) -> dict[str, dict]:
    """In JupyterLab at ``lab``, open the formgrader, go to the student's submission and type
    the scores of :data:`SCORES` and the comment; returns what the server answered to each
    save (the grade or comment as stored), by ``grade_id`` and ``"comment"``."""
    page.goto(f"{lab.base}/lab?token={lab.token}")
    _open_formgrader(page)
    iframe = page.locator("#formgrader-iframe iframe")
    formgrader = page.frame_locator("#formgrader-iframe iframe")
    frame = iframe.element_handle().content_frame()  # the same frame through its navigations
    frame.wait_for_url(re.compile(r"/formgrader/manage_assignments/?$"))

    # Manual Grading → the lab → its notebook → the one submission (names hidden, as nbgrader
    # shows them at first); each page fills its table from the API, which the clicks wait on.
    formgrader.get_by_role("link", name="Manual Grading", exact=True).click()
    frame.wait_for_url(re.compile(r"/formgrader/gradebook/?$"))
    formgrader.get_by_role("link", name=LAB, exact=True).click()
    frame.wait_for_url(re.compile(rf"/formgrader/gradebook/{LAB}/?$"))
    formgrader.get_by_role("link", name=LAB, exact=True).click()
    frame.wait_for_url(re.compile(rf"/formgrader/gradebook/{LAB}/{LAB}/?$"))
    formgrader.get_by_role("link", name="Submission #1", exact=True).click()
    frame.wait_for_url(re.compile(r"/formgrader/submissions/[0-9a-f]+/$"))
    # Typing before the page has bound its inputs to the gradebook would save nothing.
    frame.wait_for_function(READY)

    saved = {}
    for grade_id, score in SCORES.items():
        field = formgrader.locator(f"input.score#{grade_id}")
        with page.expect_response(_saved("grade")) as response:
            field.click()
            field.press_sequentially(f"{score:g}")
            field.press("Tab")  # the formgrader saves a field when it loses the focus
        assert response.value.ok, f"saving {grade_id}'s score: HTTP {response.value.status}"
        saved[grade_id] = response.value.json()
    box = formgrader.locator(f"textarea#{ANSWER}-comment")
    with page.expect_response(_saved("comment")) as response:
        box.click()
        box.press_sequentially(COMMENT)
        box.press("Tab")
    assert response.value.ok, f"saving the comment: HTTP {response.value.status}"
    saved["comment"] = response.value.json()
    return saved


@pytest.fixture(scope="module")
def hand_graded(tmp_path_factory) -> dict:
    """The course after the whole cycle, and what each step left: ``course`` (its folder),
    ``saved`` (the formgrader's answers to the saves), ``feedback`` (the page's text as the
    browser shows it) and ``feedback_html`` (its source)."""
    from playwright.sync_api import sync_playwright

    work = tmp_path_factory.mktemp("formgrader")
    course = work / "course"
    students = work / "students.csv"
    students.write_text(f"id,first_name,last_name,email\n{STUDENT},Ada,Lovelace,ada@example.org\n")
    # nbgrader run in this process sets NBGRADER_* variables without putting them back
    with mock.patch.dict(os.environ):
        init = ["course", "init", str(course), "--students", str(students), "--lab", LAB]
        assert main([*init, "--kit", str(REPO)]) == 0
        release = nbformat.read(course / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
        source = nbformat.read(course / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
        handed_in = course / "submitted" / STUDENT / LAB / f"{LAB}.ipynb"
        handed_in.parent.mkdir(parents=True)
        nbformat.write(demo_submission("correct", release, source, root=course), handed_in)
        assert main(["course", "autograde", LAB, "--root", str(course)]) == 0

        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                with jupyter_lab(course, work / "jupyter") as lab:
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    page.set_default_timeout(60_000)  # a loaded 2-core machine is slow
                    _offline(page, lab.base)
                    try:
                        saved = _grade_by_hand(page, lab)
                    except Exception as err:
                        page.screenshot(path=str(work / "formgrader-failure.png"))
                        raise AssertionError(
                            f"hand grading in the formgrader failed ({err}); screenshot in "
                            f"{work / 'formgrader-failure.png'}; JupyterLab's log ends:\n"
                            f"{lab.log_tail()}"
                        ) from err
                # the server is stopped: what follows reads the gradebook as it left it
                assert main(["course", "export", "--root", str(course)]) == 0
                assert main(["course", "feedback", LAB, "--root", str(course)]) == 0
                page_path = course / "feedback" / STUDENT / LAB / f"{LAB}.html"
                reader = browser.new_page()
                _offline(reader, "file:")
                reader.goto(page_path.as_uri(), wait_until="load")
                feedback = reader.inner_text("body")
            finally:
                browser.close()
    return {
        "course": course,
        "saved": saved,
        "feedback": feedback,
        "feedback_html": page_path.read_text(encoding="utf-8"),
    }


def test_the_formgrader_stored_what_was_typed(hand_graded):
    """Did each save come back with the typed score or comment, and does nbgrader's own
    gradebook (the oracle) hold them, nothing left waiting for a grader?"""
    from nbgrader.api import Gradebook

    saved = hand_graded["saved"]
    for grade_id, score in SCORES.items():
        assert (saved[grade_id]["name"], saved[grade_id]["manual_score"]) == (grade_id, score)
    assert (saved["comment"]["name"], saved["comment"]["manual_comment"]) == (ANSWER, COMMENT)
    with Gradebook(f"sqlite:///{hand_graded['course'] / 'gradebook.db'}") as gb:
        grades = {g: gb.find_grade(g, LAB, LAB, STUDENT) for g in SCORES}
        assert {g: grade.manual_score for g, grade in grades.items()} == SCORES
        assert not any(grade.needs_manual_grade for grade in grades.values())
        assert gb.find_comment(ANSWER, LAB, LAB, STUDENT).manual_comment == COMMENT
        submission = gb.find_submission(LAB, STUDENT)
        auto = submission.code_score
    assert auto > 0  # the autograder's points are there too (the demo's correct notebook)


def test_export_counts_the_typed_points(hand_graded):
    """Does ``labkit course export`` put the typed points in ``manual_score`` and the total,
    with nothing left to grade by hand (grades.csv and ``grade_rows`` alike)?"""
    course = hand_graded["course"]
    with open(course / "grades.csv", newline="", encoding="utf-8") as f:
        [row] = [r for r in csv.DictReader(f) if (r["student_id"], r["lab"]) == (STUDENT, LAB)]
    typed = sum(SCORES.values())
    assert float(row["manual_score"]) == typed and float(row["manual_max"]) == 5.0
    assert float(row["total"]) == float(row["auto_score"]) + typed
    assert row["needs_manual_grading"] == "false"
    [graded] = [r for r in grade_rows(course) if (r.student_id, r.lab) == (STUDENT, LAB)]
    assert (graded.manual_score, graded.needs_manual_grading) == (typed, False)


def test_feedback_shows_the_comment_and_the_score(hand_graded):
    """Does the student's feedback page show the typed comment (its markdown rendered, not
    dropped by labkit's sanitising) and the typed score of that answer?"""
    text = hand_graded["feedback"]
    assert COMMENT_TEXT in text
    assert "<em>class imbalance</em>" in hand_graded["feedback_html"]
    assert f"Score: {SCORES[ANSWER]:.1f} / 3.0" in text
    assert f"Score: {SCORES['analysis_void']:.1f} / 2.0" in text
