"""Does lab 05 (U-Net) grade as it should with plain nbgrader?"""

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


def test_solution_full_marks_blank_zero_mistakes_lose_points(course):
    """Does the solution score every autograded point, the blank release none, and an Up that
    drops its skip (zeros concatenated in its place) and a UNet that subclasses labkit's
    UNet lose points?"""
    c = course(LAB)
    scores = c.autograde({
        "solution": c.solution(),
        "blank": c.release,
        "wrong": c.wrong("up", *SKIP_DROPPED),
        "borrowed": c.with_cell("unet", BORROWED_UNET),
    })
    c.assert_grades(scores, wrong=("wrong", "borrowed"))
    for test in ("test_up_skip", "test_unet_matches"):
        got, most = scores["wrong"].tests[test]
        assert got < most, f"the dropped skip kept the points of {test}"
    for test in ("test_unet_shapes", "test_unet_matches"):
        got, most = scores["borrowed"].tests[test]
        assert got < most, f"labkit's own UNet kept the points of {test}"
    # The borrowed UNet leaves the student's blocks alone: those tests keep their points.
    assert scores["borrowed"].tests["test_up_skip"][0] == scores["borrowed"].tests["test_up_skip"][1]


def test_source_passes_nbgrader_validate(course):
    """Does `nbgrader validate` pass on the instructor's notebook?"""
    out = course(LAB).validate_source()
    assert "Success! Your notebook passes all the tests." in out, out[-3000:]
