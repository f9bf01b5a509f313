"""labkit.grading.nbgrader_cli: new gradebooks stamped as nbgrader stamps them, without the
``alembic`` process nbgrader starts for it."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from unittest import mock

import nbgrader.api
import pytest
from nbgrader.dbutil import _temp_alembic_ini

from labkit.grading.course import nbgrader as nbgrader_cli
from labkit.grading.nbgrader_cli import alembic_head, stamp_in_process
from tests.grading.conftest import make_toy_course


def alembic_heads() -> str:
    """The revision as nbgrader's own ``get_alembic_version`` reads it: ``alembic heads``."""
    with _temp_alembic_ini("sqlite:////tmp/gradebook.db") as ini:
        out = subprocess.check_output(["alembic", "-c", ini, "heads"])
    return out.decode().split("\n")[0].split(" ")[0]


def _stamp(db: Path) -> str:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT version_num FROM alembic_version").fetchone()[0]


@pytest.fixture
def with_alembic(monkeypatch):
    """``alembic`` on the PATH (the interpreter's bin/), as nbgrader's commands find it."""
    monkeypatch.setenv(
        "PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    )


def test_alembic_head_is_what_alembic_heads_prints(with_alembic):
    """Is the in-process revision the one the ``alembic heads`` process prints?"""
    assert alembic_head() == alembic_heads()


def test_a_stamped_gradebook_is_made_without_alembic(tmp_path, monkeypatch):
    """With no ``alembic`` to run, does nbgrader's Gradebook still make a new gradebook once
    stamping is in process (and fail when it asks alembic, so the test can tell)?"""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no alembic, no anything
    with (
        mock.patch.object(nbgrader.api, "get_alembic_version", alembic_heads),
        pytest.raises(FileNotFoundError),
    ):
        nbgrader.api.Gradebook(f"sqlite:///{tmp_path / 'plain.db'}")
    monkeypatch.setattr(nbgrader.api, "get_alembic_version", nbgrader.api.get_alembic_version)
    stamp_in_process()
    with nbgrader.api.Gradebook(f"sqlite:///{tmp_path / 'stamped.db'}") as gb:
        gb.add_student("s1")
    assert _stamp(tmp_path / "stamped.db") == alembic_head()


def test_the_command_line_stamps_as_nbgrader_does(tmp_path, with_alembic):
    """Does a gradebook made by labkit's ``nbgrader`` command carry the revision stamped
    through ``alembic heads``, and does nbgrader's ``db upgrade`` leave it as it is?"""
    root = make_toy_course(tmp_path / "course")
    nbgrader_cli("db", "student", "add", "s1", root=root)
    with (
        mock.patch.object(nbgrader.api, "get_alembic_version", alembic_heads),
        nbgrader.api.Gradebook(f"sqlite:///{tmp_path / 'plain.db'}"),
    ):
        pass
    assert _stamp(root / "gradebook.db") == _stamp(tmp_path / "plain.db")
    upgraded = nbgrader_cli("db", "upgrade", root=root)
    assert _stamp(root / "gradebook.db") == alembic_heads(), upgraded.stdout
