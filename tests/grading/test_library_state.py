"""Tests for labkit.grading.library_state: what student code changes in the libraries is put
back, and named. Each runs in a process of its own: a snapshot and a restore act on every
module loaded, pytest's own included."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import labkit.checks
    from labkit.grading.library_state import restore, snapshot, tampered

    real_isclose, real_close = np.isclose, labkit.checks.check_close
    code, real_json = labkit.checks.check_shape.__code__, sys.modules["json"]
    saved = snapshot()
    report = {"untouched": tampered(saved)}

    # what a student's cell does: rebind, swap a body, replace a module, add a counter
    np.isclose = lambda *a, **k: True
    labkit.checks.check_close = lambda *a, **k: None
    labkit.checks.check_shape.__code__ = (lambda *a, **k: None).__code__
    sys.modules["json"] = type(sys)("json")
    np.student_counter = 1
    report["tampered"] = tampered(saved)
    restore(saved)
    report["isclose"] = np.isclose is real_isclose
    report["check_close"] = labkit.checks.check_close is real_close
    report["code"] = labkit.checks.check_shape.__code__ is code
    report["json"] = sys.modules["json"] is real_json
    report["after"] = tampered(saved)
    print(json.dumps(report))
    """
)


def test_what_student_code_changed_is_named_and_put_back():
    """After a rebound function, a swapped code object and a replaced sys.modules entry:
    does tampered() name a change, restore() put each back, and nothing remain changed?"""
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.splitlines()[-1])
    assert report["untouched"] is None and report["tampered"]
    assert report["isclose"] and report["check_close"] and report["code"] and report["json"]
    assert report["after"] is None
