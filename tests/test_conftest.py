"""The suite's scheduling (tests/conftest.py), run as ``make test`` runs it: two workers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from test_durations import table  # noqa: E402

MODULE = """
import os
import pytest


@pytest.fixture(scope="module")
def built():
    with open(os.environ["BUILT_LOG"], "a") as log:
        log.write(os.environ.get("PYTEST_XDIST_WORKER", "none") + "\\n")


@pytest.mark.parametrize("i", range(6))
def test_uses_the_fixture(built, i):
    pass


@pytest.mark.parametrize("i", range(6))
def test_alone(i):
    pass
"""


def test_a_module_fixture_is_built_once_under_two_workers(tmp_path):
    """With the Makefile's ``-n 2 --dist loadgroup``, are all tests of a module fixture sent to
    one worker, so that it is built once? (pytest 9 with xdist 3.8 lost the group suffix,
    and every such fixture was built on both workers.)"""
    # The suite's hooks, in a project of its own.
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F401,F403\n")
    (tmp_path / "test_grouped.py").write_text(MODULE)
    log = tmp_path / "built.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BUILT_LOG": str(log)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "--no-loadscope-reorder",
            "-p",
            "no:cacheprovider",
            "-q",
            "--durations-json",
            str(tmp_path / "durations.json"),
            "-o",
            "addopts=",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "12 passed" in proc.stdout, proc.stdout[-2000:]
    assert log.read_text().split() in (["gw0"], ["gw1"]), log.read_text()
    # The durations file says where each test ran: the grouped ones where the fixture was.
    data = json.loads((tmp_path / "durations.json").read_text())
    spans = data["spans"]
    assert set(spans) == set(data["tests"]) and len(spans) == 12
    assert {w for k, (w, _, _) in spans.items() if "uses_the_fixture" in k} == set(
        log.read_text().split()
    )
    assert all(0 <= start <= stop <= data["wall_seconds"] for _, start, stop in spans.values())
    text = table(data, min_seconds=0.0)
    assert re.search(r"Busy: gw\d [\d.]+ s, gw\d [\d.]+ s of [\d.]+ s each", text), text
