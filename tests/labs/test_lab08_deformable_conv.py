"""Does lab 08 grade as it should with plain nbgrader?"""

import pytest

from tests.labs.shared_checks import (  # noqa: F401  (collected here)
    test_cut_submissions_ran_every_graded_cell,
    test_source_passes_nbgrader_validate,
)

LAB = "lab08_deformable_conv"

BORROWED = """
import torchvision


def deform_conv2d(input, offset, weight, bias=None, *, stride=1, padding=0, dilation=1,
                  mask=None):
    return torchvision.ops.deform_conv2d(input, offset, weight, bias, stride=stride,
                                         padding=padding, dilation=dilation, mask=mask)
"""


@pytest.fixture(scope="module")
def graded(course):
    """The class graded once: solution, blank, wrong, swapped, borrowed."""
    c = course(LAB)
    return c, c.autograde(
        {
            "solution": c.solution(),
            "blank": c.release,
            "wrong": c.wrong(
                "deform_conv2d", "sampled = sampled * mask.unsqueeze(1)", "sampled = sampled"
            ),
            "swapped": c.wrong("deform_conv2d", "dy, dx = offset", "dx, dy = offset"),
            "borrowed": c.with_cell("deform_conv2d", BORROWED),
        }
    )


def test_solution_full_marks_blank_zero_mistakes_lose_points(graded):
    """Does the solution score every autograded point, the blank release none, and do a
    modulation mask that is never applied (v2 computes v1), offsets read as (Δx, Δy) instead
    of (Δy, Δx), and a student calling torchvision's deform_conv2d lose points?"""
    c, scores = graded
    c.assert_grades(scores, wrong=("wrong", "swapped", "borrowed"))
    for student, test in [
        ("wrong", "test_deform_conv2d_mask"),
        ("wrong", "test_deform_conv_module"),
        ("swapped", "test_deform_conv2d_values"),
        ("swapped", "test_deform_conv2d_grads"),
        ("borrowed", "test_deform_conv2d_values"),
        ("borrowed", "test_deform_conv2d_grads"),
        ("borrowed", "test_deform_conv2d_mask"),
    ]:
        got, most = scores[student].tests[test]
        assert got < most, f"{student} kept every point of {test}"
    # the mistakes in deform_conv2d cost nothing in the bilinear sampling exercise
    for student in ("wrong", "swapped", "borrowed"):
        got, most = scores[student].tests["test_bilinear_sample"]
        assert got == most, f"{student} lost points in test_bilinear_sample"
