"""Does lab 07 (DeepLab v3) grade as it should with plain nbgrader?"""

import pytest

from tests.labs.shared_checks import (  # noqa: F401  (collected here)
    test_cut_submissions_ran_every_graded_cell,
    test_source_passes_nbgrader_validate,
)

LAB = "lab07_deeplab_v3"

# labkit's own ASPP standing in for the student's: the visible checks pass (same layout),
# the hidden ones switch it off.
BORROWED_ASPP = (
    "from labkit.models.deeplab import ASPP\nfrom labkit.models.deeplab import ASPPPooling\n"
)


@pytest.fixture(scope="module")
def graded(course):
    """The class graded once: solution, blank, wrong, borrowed."""
    c = course(LAB)
    return c, c.autograde(
        {
            "solution": c.solution(),
            "blank": c.release,
            "wrong": c.wrong(
                "aspp",
                "branches.append(ASPPPooling(in_channels, out_channels))",
                "pass  # image pooling left out",
            ),
            "borrowed": c.with_cell("aspp", BORROWED_ASPP),
        }
    )


def test_solution_full_marks_blank_zero_mistakes_lose_points(graded):
    """Does the solution score every autograded point, the blank release none, and an ASPP
    without its image-pooling branch and an ASPP cell that imports labkit's own ASPP lose
    points?"""
    c, scores = graded
    c.assert_grades(scores, wrong=("wrong", "borrowed"))
    for student in ("wrong", "borrowed"):
        for test in ("test_aspp_layout", "test_aspp_matches_reference", "test_swap_aspp"):
            got, best = scores[student].tests[test]
            assert got < best, f"{student} kept the points of {test}"
        for test in ("test_effective_kernel", "test_receptive_field", "test_dilate_kernel"):
            got, best = scores[student].tests[test]
            assert got == best, f"{student} lost the points of {test}, which it did not touch"
