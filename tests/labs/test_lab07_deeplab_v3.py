"""Does lab 07 (DeepLab v3) grade as it should with plain nbgrader?"""

LAB = "lab07_deeplab_v3"

# labkit's own ASPP standing in for the student's: the visible checks pass (same layout),
# the hidden ones switch it off.
BORROWED_ASPP = (
    "from labkit.models.deeplab import ASPP\n"
    "from labkit.models.deeplab import _ASPPPooling as ASPPPooling\n"
)


def test_solution_full_marks_blank_zero_mistakes_lose_points(course):
    """Does the solution score every autograded point, the blank release none, and an ASPP
    without its image-pooling branch and an ASPP cell that imports labkit's own ASPP lose
    points?"""
    c = course(LAB)
    scores = c.autograde({
        "solution": c.solution(),
        "blank": c.release,
        "wrong": c.wrong("aspp", "branches.append(ASPPPooling(in_channels, out_channels))",
                         "pass  # image pooling left out"),
        "borrowed": c.with_cell("aspp", BORROWED_ASPP),
    })
    c.assert_grades(scores, wrong=("wrong", "borrowed"))
    for student in ("wrong", "borrowed"):
        for test in ("test_aspp_layout", "test_aspp_matches_reference", "test_swap_aspp"):
            got, best = scores[student].tests[test]
            assert got < best, f"{student} kept the points of {test}"
        for test in ("test_effective_kernel", "test_receptive_field", "test_dilate_kernel"):
            got, best = scores[student].tests[test]
            assert got == best, f"{student} lost the points of {test}, which it did not touch"


def test_source_passes_nbgrader_validate(course):
    """Does `nbgrader validate` pass on the instructor's notebook?"""
    out = course(LAB).validate_source()
    assert "Success! Your notebook passes all the tests." in out, out[-3000:]
