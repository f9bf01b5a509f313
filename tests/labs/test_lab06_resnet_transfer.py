"""Does lab 06 grade as it should with plain nbgrader?"""

import pytest

from tests.labs.shared_checks import (  # noqa: F401  (collected here)
    test_cut_submissions_ran_every_graded_cell,
    test_source_passes_nbgrader_validate,
)

LAB = "lab06_resnet_transfer"

# A student who builds the model by calling labkit's own transfer model.
BORROWED = """from labkit.models.resnet_transfer import resnet18_transfer

ENCODER_LAYERS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
DECODER_CHANNELS = (512, 256, 128, 64, 32)


def ResNet18Segmenter(num_classes, *, pretrained=False, freeze_encoder=True):
    return resnet18_transfer(num_classes=num_classes, pretrained_backbone=pretrained,
                             freeze_encoder=freeze_encoder)
"""


@pytest.fixture(scope="module")
def graded(course):
    """The class graded once: solution, blank, wrong, borrowed."""
    c = course(LAB)
    return c, c.autograde(
        {
            "solution": c.solution(),
            "blank": c.release,
            "wrong": c.wrong(
                "freeze", "    module.train = types.MethodType(stay_in_eval, module)\n", ""
            ),
            "borrowed": c.with_cell("resnet_segmenter", BORROWED),
        }
    )


def test_solution_full_marks_blank_zero_mistakes_lose_points(graded):
    """Does the solution score every autograded point, the blank release none, and a
    plausible mistake (a `freeze` that switches gradients off and calls `eval()` once, so
    that `model.train()` puts BatchNorm back in training mode and its running statistics
    drift) and a student returning labkit's own `resnet18_transfer` lose points?"""
    c, scores = graded
    c.assert_grades(scores, wrong=("wrong", "borrowed"))
    assert scores["wrong"].tests["test_freeze"][0] < scores["wrong"].tests["test_freeze"][1]
    assert (
        scores["wrong"].tests["test_segmenter_freezing"][0]
        < scores["wrong"].tests["test_segmenter_freezing"][1]
    )
    assert (
        scores["borrowed"].tests["test_segmenter_layout"][0]
        < scores["borrowed"].tests["test_segmenter_layout"][1]
    )
    # The borrowed model only touches the segmenter: the other exercises keep their points.
    assert scores["borrowed"].tests["test_freeze"][0] == scores["borrowed"].tests["test_freeze"][1]
