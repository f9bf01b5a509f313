"""Does a missing system package skip a test on a developer's machine and fail it under CI?"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import system_packages

MISSING = "a package this machine lacks: apt-get install it"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def missing(monkeypatch):
    monkeypatch.setitem(system_packages.CHECKS, "absent", lambda: MISSING)


def test_missing_package_skips_outside_ci(missing, monkeypatch):
    monkeypatch.delenv("LABKIT_CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install it"):
        system_packages.require("absent")


def test_missing_package_fails_under_ci(missing, monkeypatch):
    monkeypatch.setenv("LABKIT_CI", "1")
    with pytest.raises(
        pytest.fail.Exception, match="apt-get install it.*fails instead of skipping"
    ):
        system_packages.require("absent")


def test_present_package_passes(monkeypatch):
    monkeypatch.setitem(system_packages.CHECKS, "present", lambda: None)
    monkeypatch.setenv("LABKIT_CI", "1")
    system_packages.require("present")


def test_unknown_package_is_refused():
    with pytest.raises(ValueError, match="expected one of"):
        system_packages.require("no-such-package")


@pytest.mark.parametrize("ci, outcome", [("0", "skipped"), ("1", "error")])
def test_needs_mark_acts_before_fixtures(tmp_path, ci, outcome):
    """Through pytest itself: the mark skips (or errors, which is red) before any fixture runs."""
    marker = tmp_path / "fixture-ran"
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(f"""
        import pytest
        from tests import system_packages
        from tests.conftest import pytest_runtest_setup  # the hook under test

        system_packages.CHECKS["absent"] = lambda: "{MISSING}"

        @pytest.fixture(scope="module")
        def costly():
            open({str(marker)!r}, "w").close()
    """)
    )
    (tmp_path / "test_it.py").write_text(
        textwrap.dedent("""
        import pytest

        @pytest.mark.needs("absent")
        def test_it(costly):
            pass
    """)
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rsf",
            "--rootdir",
            str(tmp_path),
            "-c",
            "/dev/null",
            "--import-mode=importlib",
            "-W",
            "ignore::pytest.PytestUnknownMarkWarning",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "LABKIT_CI": ci},
    )
    assert f"1 {outcome}" in proc.stdout, proc.stdout + proc.stderr
    assert "apt-get install it" in proc.stdout
    assert not marker.exists(), "the test's fixture was set up before the mark was checked"


def test_install_script_rejects_an_unknown_package():
    """Does scripts/system-packages.sh refuse a package it does not know, naming the ones it does?"""
    proc = subprocess.run(
        [str(REPO / "scripts" / "system-packages.sh"), "bubblewrap", "nosuch"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "unknown package 'nosuch'" in proc.stderr and "bubblewrap or chromium" in proc.stderr


def test_make_demo_installs_the_sandbox_first():
    """Does `make demo` install bubblewrap before it grades (a fresh machine runs it first)?"""
    proc = subprocess.run(
        ["make", "-n", "demo", "VENV=/nonexistent/venv"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = proc.stdout.splitlines()
    install = next(i for i, line in enumerate(lines) if "system-packages.sh bubblewrap" in line)
    grade = next(i for i, line in enumerate(lines) if "course demo" in line)
    assert install < grade, proc.stdout
