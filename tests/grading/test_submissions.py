"""Tests for labkit.grading.submissions: solution and mistaken submissions from a lab."""

import nbformat
import pytest

from labkit.grading import fill_solutions, replace_in_cell


@pytest.fixture
def toy(released_toy):
    """The toy lab's release (nbgrader's, made once per run) and its source."""
    read = lambda p: nbformat.read(p, as_version=4)  # noqa: E731
    return (
        read(released_toy / "labs/toy/toy.ipynb"),
        read(released_toy / "solutions/toy/toy.ipynb"),
    )


def test_fill_solutions_types_the_solution_into_the_release(toy):
    """Does the answer cell get the solution without markers, everything else untouched?"""
    release, source = toy
    filled = fill_solutions(release, source)
    assert "raise NotImplementedError" in release.cells[1].source
    assert filled.cells[1].source == "def add_one(x):\n    return x + 1\n"
    assert filled.cells[2] == release.cells[2]  # the test cell, with nbgrader's checksum
    assert filled.cells[3].source == "Adding one moves right."
    assert release.cells[1].source != filled.cells[1].source  # the input is not changed


def test_fill_solutions_needs_every_answer_cell(toy):
    """Is a release answer cell missing from the source reported by grade_id?"""
    release, source = toy
    source.cells[1].metadata.nbgrader["grade_id"] = "renamed"
    with pytest.raises(ValueError, match="'add_one' of the release is not in the source"):
        fill_solutions(release, source)


def test_replace_in_cell_plants_a_mistake(toy):
    """Does the mistake land in the named cell only, and a no-op or bad id fail loudly?"""
    release, source = toy
    good = fill_solutions(release, source)
    bad = replace_in_cell(good, "add_one", "x + 1", "x + 2")
    assert bad.cells[1].source == "def add_one(x):\n    return x + 2\n"
    assert good.cells[1].source.endswith("x + 1\n")
    with pytest.raises(ValueError, match="does not contain 'x - 1'"):
        replace_in_cell(good, "add_one", "x - 1", "x")
    with pytest.raises(KeyError, match="expected one of"):
        replace_in_cell(good, "nope", "x", "y")
