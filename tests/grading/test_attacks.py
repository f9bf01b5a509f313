"""The attack suite: hostile submissions graded with honest ones by ``autograde``.

One class (built once per test run, read by every test here) holds an honest student, a
blank release, a partly right one, a bystander and one student per attack in
``attack_lab.ATTACKS``; it is graded by the referee (``referee=True``) with two jobs
(attackers run beside other students' judges), except the infinite loop, graded alone with a
short cell limit so that it does not hold a job for the class's whole limit. Scores come from
nbgrader's own gradebook, not from labkit's report of them.

The attacks of issue 19 (``attack_lab.BEATS``) are real: a second, smaller pass grades them
with the blank release by the runner (``referee=False``), where each one scores more than
the blank release or gets hidden test lines back to the student, encoded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from labkit.grading.batch import Outcome, autograde
from labkit.grading.instance import read_record
from labkit.grading.judge import hidden_lines
from tests.grading.attack_lab import (
    ATTACKS,
    BEATS,
    BYSTANDER_MARK,
    LAB,
    LEAKS,
    MAX_AUTOGRADED,
    REPO,
    blank,
    bystander,
    decoded_leaks,
    gradebook_cells,
    gradebook_scores,
    honest,
    make_course,
    outputs_text,
    partial,
    release,
    source_notebook,
    submission_counts,
    submit,
    write_kit,
)
from tests.grading.conftest import shared_build

pytestmark = pytest.mark.needs("bwrap")

LIMITS = {"jobs": 2, "timeout": 60, "memory_mb": 1500, "progress": False}
REFEREE = {**LIMITS, "referee": True}  # the class: every test decided in the grader's process
RUNNER = {**LIMITS, "referee": False}  # the evidence pass: the sandboxed runner decides them
LOOP = "infinite_loop"  # graded alone: each cell of it stops after LOOP_CELL_SECONDS
LOOP_CELL_SECONDS = 3
HONEST = {"honest": honest, "blank": blank, "partial": partial, "bystander": bystander}
RAN_UNDER_REFEREE = {  # what each attack of issue 19 shows when it ran under the referee
    "runner_code_patch": "rewrote 0 grader functions",
    "frame_walk": "no secret found up the stack",
    "gc_report": "reporters: 0",
    "pipe_forge": "the student's code did not answer",  # the referee read the forged bytes
    "shadow_builtins": "visible mean_of check passed",  # and the hidden one failed
    "memory_leak": "memory dump:",
    "linecache_leak": "mean_of([1, 2, 3]): expected 2.0",  # its output is the fork's, unseen
}
HOST_MARKERS = [Path("/tmp/labkit-attack-marker"), REPO / "labkit-attack-marker"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _grade_class(work: Path) -> dict:
    """Grade the class in ``work``: the bystander alone, the class, then the loop alone."""
    for marker in HOST_MARKERS:
        marker.unlink(missing_ok=True)
    write_kit(work / "kit")
    root = make_course(work / "course", work / "kit", [*HONEST, *ATTACKS])
    nb = release(root)
    submit(root, "bystander", bystander(nb))
    alone = autograde(root, LAB, students=["bystander"], **REFEREE)
    assert alone[0].status == "graded", alone
    cells_alone = gradebook_cells(root, "bystander")
    for student, build in HONEST.items():
        submit(root, student, build(nb))
    for student, build in ATTACKS.items():
        submit(root, student, build(nb, root))
    protected = [
        root / "submitted" / "bystander" / LAB / f"{LAB}.ipynb",
        root / "solutions" / LAB / f"{LAB}.ipynb",
    ]
    before = {str(p): _digest(p) for p in protected}
    outcomes = autograde(
        root, LAB, students=[s for s in [*HONEST, *ATTACKS] if s != LOOP], **REFEREE
    )
    outcomes += autograde(
        root, LAB, students=[LOOP], **{**REFEREE, "jobs": 1}, cell_timeout=LOOP_CELL_SECONDS
    )
    return {
        "cells_alone": cells_alone,
        "before": before,
        "outcomes": [dataclasses.asdict(o) for o in outcomes],
    }


def _grade_by_runner(work: Path) -> dict:
    """Grade the blank release and the attacks that beat the runner, by the runner."""
    students = ["blank", *(a for a, grader in BEATS.items() if grader == "runner")]
    write_kit(work / "kit")
    root = make_course(work / "course", work / "kit", students)
    nb = release(root)
    submit(root, "blank", blank(nb))
    for student in students[1:]:
        submit(root, student, ATTACKS[student](nb, root))
    outcomes = autograde(root, LAB, students=students, **RUNNER)
    return {"outcomes": [dataclasses.asdict(o) for o in outcomes]}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The class graded: (root, bystander's cells graded alone, digests before grading,
    outcomes by student)."""
    work, built = shared_build(tmp_path_factory, "attack-class", _grade_class)
    outcomes = {o["student"]: Outcome(**o) for o in built["outcomes"]}
    before = {Path(p): digest for p, digest in built["before"].items()}
    return work / "course", built["cells_alone"], before, outcomes


@pytest.fixture(scope="module")
def runner_graded(tmp_path_factory):
    """Issue 19's attacks that beat the runner, graded by it: (root, outcomes by student)."""
    work, built = shared_build(tmp_path_factory, "attack-runner", _grade_by_runner)
    return work / "course", {o["student"]: Outcome(**o) for o in built["outcomes"]}


def test_honest_student_scores_full_marks(graded):
    """Does the honest student score every autograded point, and partial ones some?"""
    root, *_ = graded
    scores = gradebook_scores(root)
    assert scores["honest"] == MAX_AUTOGRADED
    assert 0 < scores["partial"] < MAX_AUTOGRADED
    assert scores["blank"] == 0


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attacker_scores_no_more_than_blank(graded, attack):
    """Is each attacker graded (not dropped, not failed) and scored no more than the blank
    release?"""
    root, _, _, outcomes = graded
    scores = gradebook_scores(root)
    assert read_record(root, LAB, attack) is not None, f"{attack} was dropped from the batch"
    assert outcomes[attack].status == "graded", outcomes[attack]
    assert scores.get(attack, 0.0) <= scores["blank"], (attack, outcomes[attack])


def test_bystander_keeps_its_grade(graded):
    """Is the bystander, graded with the attackers beside it, scored as when graded alone?"""
    root, cells_alone, _, _ = graded
    assert gradebook_cells(root, "bystander") == cells_alone
    assert sum(v for k, v in cells_alone.items() if k.startswith("test_")) == MAX_AUTOGRADED


def test_every_student_graded_once(graded):
    """Does the batch finish with one record and one gradebook submission per student?"""
    root, _, _, outcomes = graded
    assert set(outcomes) == {*HONEST, *ATTACKS}
    assert set(submission_counts(root).values()) == {1}


def test_hidden_tests_and_other_work_stay_hidden(graded):
    """Do the gradebook reader and the snooper see neither the hidden tests nor the
    bystander's answer, in their outputs or their feedback-to-be?"""
    root, *_ = graded
    secret = hidden_lines(source_notebook(root))
    assert secret
    for student in ("read_gradebook", "read_others"):
        text = outputs_text(root, student)
        leaked = [line for line in secret if json.dumps(line)[1:-1] in text]
        assert not leaked, (student, leaked)
        assert BYSTANDER_MARK not in text
        assert "solutions found: True" not in text
        assert "BEGIN HIDDEN TESTS" not in text  # no kit, no checkout's solutions


@pytest.mark.parametrize("student", sorted({*HONEST, *ATTACKS}))
def test_no_hidden_line_in_any_output_even_encoded(graded, student):
    """Does no student's autograded notebook hold a hidden test line, quoted or in what the
    leaking attacks printed (base64, zlib), once decoded?"""
    root, *_ = graded
    secret = hidden_lines(source_notebook(root))
    text = outputs_text(root, student)
    decoded = decoded_leaks(text)
    leaked = [line for line in secret if json.dumps(line)[1:-1] in text or line in decoded]
    assert not leaked, (student, leaked)


@pytest.mark.parametrize("attack", sorted(BEATS))
def test_attack_ran_under_the_referee(graded, attack):
    """Did each attack of issue 19 run under the referee and come away with nothing (so
    its score says the referee held, not that the attack broke before it tried)?"""
    root, *_ = graded
    assert RAN_UNDER_REFEREE[attack] in outputs_text(root, attack)
    if attack == "memory_leak":  # its dump decodes: the check above read it
        assert decoded_leaks(outputs_text(root, attack)).strip()


@pytest.mark.parametrize("attack", sorted(BEATS))
def test_attack_beats_the_weaker_grader(runner_graded, attack):
    """Is each attack of issue 19 real: graded by the runner, does it score more than the
    blank release or get hidden test lines back to the student (encoded)?"""
    assert BEATS[attack] == "runner", "every attack here beats the runner"
    root, outcomes = runner_graded
    assert outcomes[attack].status == "graded", outcomes[attack]
    if attack in LEAKS:
        secret = hidden_lines(source_notebook(root))
        text = outputs_text(root, attack)
        assert not [line for line in secret if json.dumps(line)[1:-1] in text]  # quoted: caught
        leaked = [line for line in secret if line in decoded_leaks(text)]
        assert leaked, f"{attack} got no hidden line past the runner"
    else:
        scores = gradebook_scores(root)
        assert scores[attack] > scores["blank"], (attack, outcomes[attack])


def test_nothing_outside_the_scratch_copy_changed(graded):
    """Did writes to the course, the host's /tmp and the repository all fail?"""
    root, _, before, _ = graded
    assert {p: _digest(p) for p in before} == before
    assert not [m for m in HOST_MARKERS if m.exists()]
    assert json.loads((root / "submitted" / "bystander" / LAB / f"{LAB}.ipynb").read_text())


def test_no_network(graded):
    """Is every connection the network attacker tries refused?"""
    root, *_ = graded
    text = outputs_text(root, "network")
    assert "NETWORK-REACHED" not in text and "network refused" in text


def test_output_flood_is_capped(graded):
    """Does 50 MB of printing leave a small autograded notebook?"""
    root, *_ = graded
    path = root / "autograded" / "big_output" / LAB / f"{LAB}.ipynb"
    assert path.stat().st_size < 1_000_000


def test_limits_name_the_reason(graded):
    """Do the loop and the memory bomb end with the limit they hit named, in the grading
    note or in the cell's error?"""
    root, _, _, outcomes = graded
    loop = outcomes[LOOP].reason + outputs_text(root, LOOP)
    assert "wall-clock limit" in loop or "time limit" in loop, loop[-500:]
    bomb = outcomes["memory_bomb"].reason + outputs_text(root, "memory_bomb")
    assert "memory limit" in bomb or "MemoryError" in bomb, bomb[-500:]
