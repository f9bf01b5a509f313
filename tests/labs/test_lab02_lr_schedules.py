"""Does lab 02 grade as it should with plain nbgrader?"""

import pytest

from tests.labs.shared_checks import (  # noqa: F401  (collected here)
    test_cut_submissions_ran_every_graded_cell,
    test_source_passes_nbgrader_validate,
)

LAB = "lab02_lr_schedules"


@pytest.fixture(scope="module")
def graded(course):
    """The class graded once: solution, blank, wrong, borrowed."""
    c = course(LAB)
    return c, c.autograde(
        {
            "solution": c.solution(),
            "blank": c.release,
            "wrong": c.wrong(
                "cosine_lr",
                "return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * t / total_steps)) / 2",
                "return base_lr",
            ),
            "borrowed": c.with_cell(
                "cosine_lr",
                "from labkit.schedules import cosine_lr as reference\n\n\n"
                "def cosine_lr(step, *, base_lr, total_steps, min_lr=0.0):\n"
                "    return reference(step, base_lr=base_lr, total_steps=total_steps, "
                "min_lr=min_lr)\n",
            ),
        }
    )


def test_solution_full_marks_blank_zero_mistakes_lose_points(graded):
    """Does the solution score every autograded point, the blank release none, and a
    plausible mistake (a cosine schedule that never decays) and a student calling labkit's
    own ``labkit.schedules.cosine_lr`` lose the cosine points?"""
    c, scores = graded
    c.assert_grades(scores, wrong=("wrong", "borrowed"))
    for name in ("wrong", "borrowed"):
        got, most = scores[name].tests["test_cosine_lr"]
        assert got < most, f"{name} kept the points of test_cosine_lr"
    # the other exercises of those submissions are right and keep their points
    assert (
        scores["borrowed"].tests["test_poly_lr"][0] == scores["borrowed"].tests["test_poly_lr"][1]
    )
