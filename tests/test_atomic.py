"""labkit.atomic: a writer killed at any instant leaves the old file or the new one."""

import os
import stat
import subprocess
import sys

import pytest

from labkit.atomic import replace_atomically, write_atomic


def test_a_write_replaces_the_file_with_normal_rights(tmp_path):
    """Is the new content there, in a folder made for it, with the rights the umask gives
    (not mkstemp's 0600), and no temporary file left beside it?"""
    path = write_atomic(tmp_path / "new" / "grades.csv", "a,b\n1,2\n")
    assert path.read_text() == "a,b\n1,2\n"
    old = os.umask(0o022)
    os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~old
    write_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in path.parent.iterdir()) == ["grades.csv"]


def test_a_write_that_fails_keeps_the_old_file_and_leaves_nothing(tmp_path):
    path = write_atomic(tmp_path / "report.md", "old")

    def half_then_fail(fh):
        fh.write(b"new, half of it")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_atomically(path, half_then_fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_a_writer_killed_mid_write_leaves_the_old_file(tmp_path):
    """SIGKILL while half the new content is written (no cleanup can run): is the old file
    there, whole?"""
    path = write_atomic(tmp_path / "last.pt", "the old checkpoint")
    code = (
        "import os, signal, sys\n"
        "from labkit.atomic import replace_atomically\n"
        "def half(fh):\n"
        "    fh.write(b'half of the new'); fh.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "replace_atomically(sys.argv[1], half)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], timeout=60)
    assert proc.returncode == -9
    assert path.read_text() == "the old checkpoint"
