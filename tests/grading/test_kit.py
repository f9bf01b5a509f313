"""Tests for labkit.grading.kit: is the kit found where it is named, and only there?"""

from pathlib import Path

import pytest

from labkit.grading import CourseError
from labkit.grading.kit import locate_kit

REPO = Path(__file__).resolve().parents[2]


def test_the_kit_comes_from_kit_then_labkit_kit_then_the_checkout(
    toy_course, tmp_path_factory, monkeypatch
):
    """Is the kit the one named, else $LABKIT_KIT's, else this checkout (labkit runs from it);
    and does a folder that is no kit fail naming where it came from and what to pass?"""
    other = tmp_path_factory.mktemp("not-a-kit")
    monkeypatch.delenv("LABKIT_KIT", raising=False)
    assert locate_kit().resolve() == REPO  # the editable checkout these tests run from
    monkeypatch.setenv("LABKIT_KIT", str(toy_course))
    assert locate_kit() == toy_course
    assert locate_kit(REPO) == REPO
    monkeypatch.setenv("LABKIT_KIT", str(other))
    with pytest.raises(CourseError, match=r"\(from \$LABKIT_KIT\) is not a lab kit.*--kit PATH"):
        locate_kit()
    with pytest.raises(CourseError, match=r"\(from --kit\) is not a lab kit"):
        locate_kit(other)
