"""Does the referee decide each test itself, show only what it should, and keep the hidden
parts of a test in its own process?"""

from __future__ import annotations

import torch

from labkit.grading.referee import Referee, segments

PRELUDE = "import torch\nfrom labkit.checks import check_close"
TEST = """
print("visible checks")
check_close(add_one(torch.tensor([1.0, 2.0])), [2.0, 3.0], name="add_one")
### BEGIN HIDDEN TESTS
_secret = torch.arange(5.0)
print("hidden output", _secret.tolist())
check_close(add_one(_secret), _secret + 1, name="add_one on the hidden input")
assert len([1, 2]) == 2 and sum([1, 2]) == 3
### END HIDDEN TESTS
print("after the hidden part")
"""


def test_segments_cut_at_the_markers_and_keep_line_numbers():
    parts = segments(TEST)
    assert [hidden for _, hidden in parts] == [False, True, False]
    assert "_secret = torch.arange" in parts[1][0] and "_secret" not in parts[0][0] + parts[2][0]
    for code, _ in parts:  # each line where it was
        assert all(line == "" or line in TEST.splitlines() for line in code.splitlines())
    nested = "if True:\n    x = 1\n### BEGIN HIDDEN TESTS\n    y = 2\n### END HIDDEN TESTS\n"
    assert segments(nested) == [(nested, True)]  # cannot be cut: all of it is hidden


def test_an_honest_answer_passes_and_shows_only_the_visible_output(connect):
    channel = connect({"add_one": lambda x: x + 1})
    verdict = Referee(PRELUDE).run(TEST, channel)
    assert verdict.passed and verdict.message is None
    assert "visible checks" in verdict.output and "after the hidden part" in verdict.output
    assert "hidden output" not in verdict.output and "[0.0, 1.0" not in verdict.output


def test_a_wrong_answer_fails_with_one_line(connect):
    channel = connect({"add_one": lambda x: x + 1 if len(x) == 2 else x})
    verdict = Referee(PRELUDE).run(TEST, channel)
    assert not verdict.passed
    assert verdict.message.startswith("AssertionError: add_one on the hidden input")
    assert "\n" not in verdict.message


def test_what_the_student_defines_cannot_stand_in_for_the_referees_names(connect):
    """A notebook that redefines len, sum, check_close and torch changes nothing here: the
    referee's own names win, and the student's answer still has to be right."""
    always = lambda *a, **k: None  # noqa: E731
    channel = connect(
        {
            "add_one": lambda x: x,
            "len": lambda x: 2,
            "sum": lambda x: 3,
            "check_close": always,
            "torch": None,
            "print": always,
        }
    )
    verdict = Referee(PRELUDE).run(TEST, channel)
    assert not verdict.passed and "add_one" in verdict.message
    assert torch.is_tensor(torch.zeros(1))


DRAWS = """
from labkit.checks import student_side
g = {maker}.Generator().manual_seed(5)
draw(g)
draw(g)
want = torch.Generator().manual_seed(5)
torch.rand((), generator=want), torch.rand((), generator=want)
assert torch.equal(g.get_state(), want.get_state()), "the student's draws did not reach g"
"""


def test_student_side_makes_a_tests_objects_where_the_students_code_acts_on_them(connect):
    """A generator the student's code draws from: made with student_side(torch) it lives in
    the student's process and its draws show; made with the referee's own torch, the student's
    code draws from a copy and the test cannot see them (the reason student_side exists)."""

    def draw(g):
        return torch.rand((), generator=g).item()

    there = Referee(PRELUDE).run(DRAWS.format(maker="student_side(torch)"), connect({"draw": draw}))
    assert there.passed, there.message
    here = Referee(PRELUDE).run(DRAWS.format(maker="torch"), connect({"draw": draw}))
    assert not here.passed and "did not reach g" in here.message
