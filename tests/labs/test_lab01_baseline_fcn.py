"""Does lab 01 grade as it should with plain nbgrader?"""

import pytest

from tests.labs.shared_checks import (  # noqa: F401  (collected here)
    test_cut_submissions_ran_every_graded_cell,
    test_source_passes_nbgrader_validate,
)

LAB = "lab01_baseline_fcn"

BORROWED_IOU = """
import labkit.metrics


def iou_per_class(pred, target, num_classes, *, ignore_index=255):
    return labkit.metrics.iou_per_class(pred, target, num_classes, ignore_index=ignore_index)
"""
MISTAKES = ("wrong", "last_skipped", "borrowed")


@pytest.fixture(scope="module")
def graded(course):
    """The class graded once: the solution, the blank release, two off-by-one IoUs (one pixel
    too many in every union; the last class skipped, which the visible example cannot see)
    and a student calling labkit's own iou_per_class."""
    c = course(LAB)
    return c, c.autograde(
        {
            "solution": c.solution(),
            "blank": c.release,
            "wrong": c.wrong(
                "iou_per_class",
                "union = (is_pred | is_true).sum().item()",
                "union = (is_pred | is_true).sum().item() + 1",
            ),
            "last_skipped": c.wrong(
                "iou_per_class", "for c in range(num_classes):", "for c in range(num_classes - 1):"
            ),
            "borrowed": c.with_cell("iou_per_class", BORROWED_IOU),
        }
    )


def test_solution_full_marks_blank_zero_mistakes_lose_points(graded):
    """Does the solution score every autograded point, the blank release none, and do the
    two off-by-one IoUs and the borrowed one lose the IoU points, the borrowing submission
    keeping the points of the exercises it did itself?"""
    c, scores = graded
    c.assert_grades(scores, wrong=MISTAKES)
    for name in MISTAKES:
        got, full = scores[name].tests["test_iou_per_class"]
        assert got < full, f"{name} kept the points of test_iou_per_class"
    for test in ("test_pixel_accuracy", "test_fcn_layers", "test_fcn_matches_reference"):
        assert scores["borrowed"].tests[test][0] == scores["borrowed"].tests[test][1], test
