"""Does lab 01 grade as it should with plain nbgrader?"""

LAB = "lab01_baseline_fcn"

BORROWED_IOU = '''
import labkit.metrics


def iou_per_class(pred, target, num_classes, *, ignore_index=255):
    return labkit.metrics.iou_per_class(pred, target, num_classes, ignore_index=ignore_index)
'''


def test_solution_full_marks_blank_zero_mistakes_lose_points(course):
    """Does the solution score every autograded point, the blank release none, and do two
    off-by-one IoUs (one pixel too many in every union; the last class skipped, which the
    visible example cannot see) and a student calling labkit's own iou_per_class lose
    points?"""
    c = course(LAB)
    scores = c.autograde({
        "solution": c.solution(),
        "blank": c.release,
        "wrong": c.wrong("iou_per_class", "union = (is_pred | is_true).sum().item()",
                         "union = (is_pred | is_true).sum().item() + 1"),
        "last_skipped": c.wrong("iou_per_class", "for c in range(num_classes):",
                                "for c in range(num_classes - 1):"),
        "borrowed": c.with_cell("iou_per_class", BORROWED_IOU),
    })
    c.assert_grades(scores, wrong=("wrong", "last_skipped", "borrowed"))
    for name in ("wrong", "last_skipped", "borrowed"):
        got, full = scores[name].tests["test_iou_per_class"]
        assert got < full, f"{name} kept the points of test_iou_per_class"
    # The other exercises of the borrowing submission are the solution's: pixel accuracy and
    # the network keep their points.
    for test in ("test_pixel_accuracy", "test_fcn_layers", "test_fcn_matches_reference"):
        assert scores["borrowed"].tests[test][0] == scores["borrowed"].tests[test][1], test


def test_source_passes_nbgrader_validate(course):
    """Does `nbgrader validate` pass on the instructor's notebook?"""
    out = course(LAB).validate_source()
    assert "Success! Your notebook passes all the tests." in out, out[-3000:]
