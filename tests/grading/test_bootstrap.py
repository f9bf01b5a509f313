"""Tests for labkit.grading.bootstrap: a module started on this process's labkit only."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import labkit
from labkit.grading.bootstrap import labkit_home, module_argv


def _shadow(folder: Path) -> Path:
    """A second labkit package in ``folder``, as another checkout would have one."""
    (folder / "labkit").mkdir(parents=True)
    (folder / "labkit" / "__init__.py").write_text("__version__ = 'shadow'\n")
    return folder


def _run(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(_shadow(tmp_path / "pythonpath")))
    return subprocess.run(
        argv, cwd=_shadow(tmp_path / "cwd"), env=env, capture_output=True, text=True, timeout=60
    )


def test_the_module_runs_with_its_arguments_whatever_the_cwd_and_pythonpath(tmp_path):
    """From a folder holding another labkit, with PYTHONPATH at a third, does the module run
    with its arguments (the start checks that it imported this process's labkit)?"""
    data = tmp_path / "in.json"
    data.write_text('{"b": [1, 2], "a": "x"}')
    proc = _run(module_argv("json.tool", "--sort-keys", str(data)), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == json.dumps({"a": "x", "b": [1, 2]}, indent=4, sort_keys=True) + "\n"
    assert Path(labkit_home()) == Path(os.path.realpath(labkit.__file__)).parents[1]


def test_a_labkit_found_elsewhere_is_refused(tmp_path):
    """When the labkit that imports is not the one the grader runs, does the start fail and
    say which two they are, before the module runs?"""
    argv = module_argv("json.tool", str(tmp_path / "never-read.json"))
    where = argv.index(labkit_home())
    argv[where] = str(tmp_path / "empty")  # a folder with no labkit: another one is found
    (tmp_path / "empty").mkdir()
    proc = _run(argv, tmp_path)
    assert proc.returncode != 0
    assert f"the grader runs the labkit in {tmp_path / 'empty'}" in proc.stderr
    assert os.path.realpath(labkit.__file__) in proc.stderr
    assert "never-read" not in proc.stderr
