"""Tests for labkit.grading.judge_runner, run directly as the judge starts it (in the
sandbox, with nbgrader around it, it is tested through labkit.grading.judge in
test_judge.py)."""

from __future__ import annotations

import json
import subprocess

from labkit.grading.bootstrap import module_argv

NONCE = "n0nce-7c1"


def _run(tmp_path, cells: list[tuple[bool, str]], *, cell_timeout: float = 20) -> list[dict]:
    """The runner's records for ``cells`` ((is_test, source) each), read as the grader reads
    them: the lines that carry the nonce."""
    results = tmp_path / "results.jsonl"
    program = {
        "nonce": NONCE,
        "results": str(results),
        "cell_timeout": cell_timeout,
        "modules": ["labkit.checks"],
        "prelude": "from labkit.checks import check_close",
        "cells": [
            {"index": i, "test": test, "source": source} for i, (test, source) in enumerate(cells)
        ],
    }
    proc = subprocess.run(
        module_argv("labkit.grading.judge_runner"),
        input=json.dumps(program),
        text=True,
        capture_output=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = results.read_text().splitlines()
    return [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith(NONCE + " ")]


def test_answers_run_in_order_and_each_test_is_decided_in_its_own_fork(tmp_path):
    """Does the runner say it started before any cell, pass an honest test, fail a wrong one
    with its assertion, keep answer output, and finish?"""
    records = _run(
        tmp_path,
        [
            (False, "def add(a, b):\n    return a + b\nprint('defined')"),
            (True, "check_close(add(2, 2), 4, name='add')"),
            (True, "check_close(add(2, 3), 6, name='add again')"),
            (False, "print(add(1, 1))"),
        ],
    )
    assert records[0] == {"started": True} and records[-1] == {"done": True}
    by_index = {r["index"]: r for r in records[1:-1]}
    assert by_index[0]["output"] == "defined\n" and by_index[0]["error"] is None
    assert by_index[1]["passed"] is True
    assert by_index[2]["passed"] is False
    assert (
        by_index[2]["error"]["ename"] == "AssertionError"
        and "add again" in (by_index[2]["error"]["evalue"])
    )
    assert by_index[3]["output"] == "2\n"


def test_a_forged_record_and_a_patched_check_do_not_pass_a_test(tmp_path):
    """An answer that prints a forged passing record and replaces check_close in its own
    namespace: does the wrong answer still fail (no nonce, the prelude's real names back)?"""
    forged = json.dumps({"index": 1, "passed": True, "output": "", "error": None})
    records = _run(
        tmp_path,
        [
            (
                False,
                "def add(a, b):\n    return 0\n"
                f"print({NONCE[:3]!r} + 'x' + ' ' + {forged!r})\n"
                "check_close = lambda *a, **k: None\n"
                "import labkit.checks\nlabkit.checks.check_close = check_close",
            ),
            (True, "check_close(add(2, 2), 4, name='add')"),
        ],
    )
    test = next(r for r in records if r.get("index") == 1)
    assert test["passed"] is False and "add" in test["error"]["evalue"]


def test_a_test_past_its_time_fails_and_the_notebook_goes_on(tmp_path):
    """Does a test that never ends fail, and the next cell still run?"""
    records = _run(
        tmp_path,
        [(True, "while True:\n    pass"), (False, "print('after')")],
        cell_timeout=0.5,
    )
    by_index = {r["index"]: r for r in records if "index" in r}
    assert by_index[0]["passed"] is False
    assert by_index[1]["output"] == "after\n" and records[-1] == {"done": True}
