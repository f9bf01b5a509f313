"""Does lab 05 (U-Net) grade as it should with plain nbgrader?"""

import pytest

from tests.labs.shared_checks import (  # noqa: F401  (collected here)
    test_cut_submissions_ran_every_graded_cell,
    test_source_passes_nbgrader_validate,
)

LAB = "lab05_unet"

# A student whose Up drops the skip but keeps the channel count by concatenating zeros.
SKIP_DROPPED = ("torch.cat([skip, x], dim=1)", "torch.cat([torch.zeros_like(skip), x], dim=1)")

# A student whose UNet cell only subclasses labkit's own U-Net.
BORROWED_UNET = '''
from labkit.models.unet import UNet as LabkitUNet


class UNet(LabkitUNet):
    """labkit's U-Net under the exercise's name."""

    def __init__(self, num_classes, *, depth=4, base_width=32):
        super().__init__(num_classes, depth=depth, base_width=base_width)
'''


@pytest.fixture(scope="module")
def graded(course):
    """The class graded once: solution, blank, wrong, borrowed."""
    c = course(LAB)
    return c, c.autograde(
        {
            "solution": c.solution(),
            "blank": c.release,
            "wrong": c.wrong("up", *SKIP_DROPPED),
            "borrowed": c.with_cell("unet", BORROWED_UNET),
        }
    )


def test_solution_full_marks_blank_zero_mistakes_lose_points(graded):
    """Does the solution score every autograded point, the blank release none, and an Up that
    drops its skip (zeros concatenated in its place) and a UNet that subclasses labkit's
    UNet lose points?"""
    c, scores = graded
    c.assert_grades(scores, wrong=("wrong", "borrowed"))
    for test in ("test_up_skip", "test_unet_matches"):
        got, most = scores["wrong"].tests[test]
        assert got < most, f"the dropped skip kept the points of {test}"
    for test in ("test_unet_shapes", "test_unet_matches"):
        got, most = scores["borrowed"].tests[test]
        assert got < most, f"labkit's own UNet kept the points of {test}"
    # The borrowed UNet leaves the student's blocks alone: those tests keep their points.
    assert (
        scores["borrowed"].tests["test_up_skip"][0] == scores["borrowed"].tests["test_up_skip"][1]
    )
