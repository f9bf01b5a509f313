"""Does lab 03 (augmentation) grade as it should with plain nbgrader?"""

import pytest

from tests.labs.shared_checks import (  # noqa: F401  (collected here)
    test_cut_submissions_ran_every_graded_cell,
    test_source_passes_nbgrader_validate,
)

LAB = "lab03_augmentation"

# A student who hands labkit's whole pipeline in as their own: it aligns the pairs, but it
# is labkit's code (switched off by the hidden tests) and it ignores the generator.
BORROWED = """
from labkit.data.transforms import train_transforms


class PairedCompose:
    def __init__(self, steps):
        self.steps = list(steps)

    def __call__(self, image, mask, *, generator=None):
        for step in self.steps:
            image, mask = step(image, mask, generator)
        return image, mask


def make_train_transform(*, crop_size, scale=(0.5, 2.0), hflip=0.5, max_angle=10.0, blur=0.5,
                         sigma=(0.1, 1.0)):
    pipeline = train_transforms(crop_size=crop_size, scale=scale, hflip=hflip, rotate=max_angle,
                                blur=blur, normalize=False)
    return PairedCompose([lambda image, mask, generator: pipeline(image, mask)])
"""


@pytest.fixture(scope="module")
def graded(course):
    """The class graded once: solution, blank, wrong, borrowed."""
    c = course(LAB)
    return c, c.autograde(
        {
            "solution": c.solution(),
            "blank": c.release,
            "wrong": c.wrong("hflip_pair", "mask.flip(-1)", "mask.flip(-2)"),
            "borrowed": c.with_cell("train_transform", BORROWED),
        }
    )


def test_solution_full_marks_blank_zero_mistakes_lose_points(graded):
    """Does the solution score every autograded point, the blank release none, and a
    plausible mistake (the mask flipped upside down while the image is mirrored) and a
    student calling labkit's own augmentation pipeline lose points?"""
    c, scores = graded
    c.assert_grades(scores, wrong=("wrong", "borrowed"))
    assert scores["wrong"].tests["test_hflip_pair"][0] < scores["wrong"].tests["test_hflip_pair"][1]
    assert scores["borrowed"].tests["test_train_transform"][0] == 0
