"""labkit.tables: the markdown every labkit table is written in."""

import math

import pytest

from labkit.tables import cell, markdown_table, percent


def test_a_table_has_its_header_alignment_and_rows():
    got = markdown_table(["run", "mIoU %"], [["a", 12.5], ["b", ""]], align="lr")
    assert got.splitlines() == ["| run | mIoU % |", "|---|---:|", "| a | 12.5 |", "| b |  |"]
    assert markdown_table(["x", "y"], []).splitlines()[1] == "|---|---|"


def test_a_wrong_alignment_or_row_length_is_refused():
    with pytest.raises(ValueError, match="one 'l' or 'r' per column"):
        markdown_table(["a", "b"], [], align="l")
    with pytest.raises(ValueError, match="one 'l' or 'r' per column"):
        markdown_table(["a"], [], align="c")
    with pytest.raises(ValueError, match="expected 2 cells per row"):
        markdown_table(["a", "b"], [["only one"]])


def test_a_cell_is_one_line_with_pipes_escaped_and_cut():
    assert cell("Traceback:\n  a | b\n") == "Traceback: a \\| b"
    assert cell("x" * 10, limit=4) == "xxxx…"


def test_percent():
    assert percent(0.12345) == "12.3" and percent(0.12345, digits=2, sign=True) == "12.35 %"
    assert percent(None) == percent(math.nan) == "—"
