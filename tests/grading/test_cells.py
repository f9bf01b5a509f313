"""Tests for labkit.grading.cells: running a cell as the judge's processes do."""

from __future__ import annotations

import io
import traceback

from labkit.grading.cells import Capped, error_output, run_cell


def test_capped_keeps_the_first_characters_and_counts_the_rest():
    """Is a capped stream what an uncapped one holds, cut at the limit, with the cut counted?"""
    whole, capped = io.StringIO(), Capped(limit=10)
    for piece in ["abc", "defgh", "ijklmnop", "", "qrs"]:
        assert capped.write(piece) == whole.write(piece)
    text = whole.getvalue()
    assert capped.text() == text[:10] + f"\n[... {len(text) - 10} more characters of output cut]"
    short = Capped(limit=100)
    short.write(text)
    assert short.text() == text


def test_run_cell_captures_output_and_returns_the_error():
    """Does a cell's print come back as its output, its exception as the error, and its
    names stay in the namespace for the next cell?"""
    namespace: dict = {}
    output, error = run_cell("x = 41\nprint('hello', x + 1)", 3, namespace, 10)
    assert (output, error, namespace["x"]) == ("hello 42\n", None, 41)
    output, error = run_cell("print('before')\n1 / 0", 4, namespace, 10)
    assert output == "before\n" and isinstance(error, ZeroDivisionError)


def test_a_cell_past_its_time_is_stopped():
    """Does a cell that loops forever end with a TimeoutError after its time limit?"""
    output, error = run_cell("while True:\n    pass", 0, {}, 0.2)
    assert isinstance(error, TimeoutError) and "time limit" in str(error)


def test_error_output_is_nbformats_error_with_the_cells_frames_only():
    """Is the error output the exception's own last line (as traceback formats it), with the
    failing cell's line in the traceback and none of the runner's frames?"""
    _, error = run_cell("def f():\n    raise ValueError('bad value')\nf()", 7, {}, 10)
    out = error_output(error)
    assert (out["ename"], out["evalue"]) == ("ValueError", "bad value")
    assert out["traceback"][-1] == traceback.format_exception_only(type(error), error)[-1]
    frames = "".join(out["traceback"])
    assert '<cell 7>", line 3' in frames and "raise ValueError('bad value')" in frames
    assert "cells.py" not in frames
    assert error_output(error, full=False)["traceback"] == ["ValueError: bad value"]
