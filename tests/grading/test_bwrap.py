"""Tests for labkit.grading.bwrap: the bubblewrap command line and the probe."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from labkit.grading.bwrap import bwrap_available, sandbox_command


@pytest.fixture
def host_dir():
    """A fresh folder outside /tmp, which the sandbox replaces with its own."""
    path = Path(tempfile.mkdtemp(prefix="labkit-bwrap-host-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_command_hides_then_binds_back(host_dir):
    """Does the command cover a hidden folder before binding a readable path over it, make it
    read-only after, and cut the network unless asked not to?"""
    course, env, work = host_dir / "course", host_dir / "course" / ".venv", host_dir / "work"
    env.mkdir(parents=True)
    cmd = sandbox_command(["true"], scratch=work, hide=[course], readable=[env])
    assert cmd[0] == "bwrap" and cmd[-2:] == ["--", "true"] and "--unshare-net" in cmd
    tmpfs, bind = cmd.index("--tmpfs", cmd.index("/dev/shm")), cmd.index(str(env))
    assert cmd[tmpfs + 1] == str(course) and cmd[bind - 1] == "--ro-bind" and tmpfs < bind
    assert cmd[cmd.index("--remount-ro") + 1] == str(course)
    assert "--unshare-net" not in sandbox_command(["true"], scratch=host_dir, network=True)
    with pytest.raises(ValueError, match="does not exist"):
        sandbox_command(["true"], scratch=host_dir, readable=[host_dir / "missing"])


def test_bwrap_available_agrees_with_bwrap(tmp_path):
    """Does bwrap_available() say what running bwrap itself says?"""
    if shutil.which("bwrap") is None:
        assert not bwrap_available()
        return
    proc = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                           "--unshare-net", "--unshare-pid", "true"], capture_output=True,
                          check=False)
    assert bwrap_available() == (proc.returncode == 0), proc.stderr
