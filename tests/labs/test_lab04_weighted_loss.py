"""Does lab 04 (weighted loss) grade as it should with plain nbgrader?"""

import pytest

from tests.labs.shared_checks import (  # noqa: F401  (collected here)
    test_cut_submissions_ran_every_graded_cell,
    test_source_passes_nbgrader_validate,
)

LAB = "lab04_weighted_loss"

# A student who calls labkit's or PyTorch's own versions of all four exercises: the visible
# tests pass, the hidden ones (which switch those versions off) must not.
BORROWED = {
    "class_frequencies": """
from labkit.data import class_pixel_counts


def class_frequencies(masks_or_dataset, num_classes, *, ignore_index=255):
    if torch.is_tensor(masks_or_dataset) and masks_or_dataset.ndim == 2:
        masks_or_dataset = masks_or_dataset[None]
    counts = class_pixel_counts(masks_or_dataset, num_classes).double()
    return counts / counts.sum()
""",
    "inverse_weights": """
from labkit.losses import class_weights


def inverse_frequency_weights(freq):
    return class_weights(freq, "inverse")
""",
    "median_weights": """
from labkit.losses import class_weights


def median_frequency_weights(freq):
    return class_weights(freq, "median_frequency", normalize=False)
""",
    "weighted_ce": """
def weighted_cross_entropy(logits, target, weight, *, ignore_index=255):
    return F.cross_entropy(logits, target, weight=weight.to(logits), ignore_index=ignore_index)
""",
}


def _borrowed(c):
    nb = c.with_cell("weighted_ce", BORROWED["weighted_ce"])
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in BORROWED:
            cell.source = BORROWED[grade_id]
    return nb


@pytest.fixture(scope="module")
def graded(course):
    """The class graded once: solution, blank, wrong, wrong_ignore, borrowed."""
    c = course(LAB)
    return c, c.autograde(
        {
            "solution": c.solution(),
            "blank": c.release,
            "wrong": c.wrong("weighted_ce", "/ w.sum()", "/ valid.sum()"),
            "wrong_ignore": c.wrong(
                "weighted_ce", "weight.to(log_p)[labels] * valid", "weight.to(log_p)[labels]"
            ),
            "borrowed": _borrowed(c),
        }
    )


def test_solution_full_marks_blank_zero_mistakes_lose_points(graded):
    """Does the solution score every autograded point, the blank release none, and do a
    weighted cross entropy averaged over the pixel count instead of the weight sum, one that
    counts the void pixels, and a student calling labkit's and PyTorch's own versions of the
    four exercises lose points?"""
    c, scores = graded
    c.assert_grades(scores, wrong=("wrong", "wrong_ignore", "borrowed"))
    assert (
        scores["wrong"].tests["test_weighted_ce"][0] < scores["wrong"].tests["test_weighted_ce"][1]
    )
    assert (
        scores["wrong_ignore"].tests["test_weighted_ce"][0]
        < scores["wrong_ignore"].tests["test_weighted_ce"][1]
    )
    assert (
        scores["wrong_ignore"].tests["test_weighted_ce_grad"][0]
        < scores["wrong_ignore"].tests["test_weighted_ce_grad"][1]
    )
    assert scores["borrowed"].auto == 0, (
        f"borrowed code scored in {[k for k, (s, _) in scores['borrowed'].tests.items() if s]}"
    )
