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


def _after(cmd: list[str], option: str, path) -> int:
    """Where ``option path`` comes in ``cmd`` (an ``IndexError`` if it does not)."""
    return next(i for i in range(len(cmd) - 1) if cmd[i : i + 2] == [option, str(path)])


def test_command_is_an_allow_list(host_dir):
    """Is the root a read-only tmpfs holding the system and the readable paths, with a
    hidden folder inside a bound tree covered before what is bound back over it, one outside
    every bind left alone, scratch a sized tmpfs holding the writable file, and the network
    cut unless asked not to?"""
    course, env, work = host_dir / "course", host_dir / "course" / ".venv", host_dir / "work"
    env.mkdir(parents=True)
    work.mkdir()
    (work / "results").touch()
    cmd = sandbox_command(
        ["true"],
        scratch=work,
        hide=[course, "/elsewhere", host_dir / "no"],
        readable=[host_dir, env],
        writable=[work / "results"],
        tmpfs_mb=8,
    )
    assert cmd[0] == "bwrap" and cmd[-2:] == ["--", "true"] and "--unshare-net" in cmd
    assert ["--ro-bind", "/", "/"] not in [cmd[i : i + 3] for i in range(len(cmd))]
    mounts = [i for i, arg in enumerate(cmd) if arg in ("--bind", "--ro-bind", "--tmpfs", "--dir")]
    assert _after(cmd, "--ro-bind", "/usr") < max(mounts) < _after(cmd, "--remount-ro", "/")
    assert (
        _after(cmd, "--ro-bind", host_dir)
        < _after(cmd, "--tmpfs", course)
        < _after(cmd, "--ro-bind", env)
        < _after(cmd, "--remount-ro", course)
    )
    assert cmd[_after(cmd, "--tmpfs", work) - 2 :][:2] == ["--size", str(8 * 2**20)]
    assert _after(cmd, "--tmpfs", work) < _after(cmd, "--bind", work / "results")
    assert "/elsewhere" not in cmd and str(host_dir / "no") not in cmd
    assert "--unshare-net" not in sandbox_command(["true"], scratch=host_dir, network=True)
    assert _after(sandbox_command(["true"], scratch=work), "--bind", work)  # no size: the host's
    with pytest.raises(ValueError, match="does not exist"):
        sandbox_command(["true"], scratch=host_dir, readable=[host_dir / "missing"])
    with pytest.raises(ValueError, match="not a regular file"):
        sandbox_command(["true"], scratch=host_dir, writable=[work])


def test_bwrap_available_agrees_with_bwrap(tmp_path):
    """Does bwrap_available() say what running bwrap itself says?"""
    if shutil.which("bwrap") is None:
        assert not bwrap_available()
        return
    proc = subprocess.run(
        [
            "bwrap",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--unshare-net",
            "--unshare-pid",
            "true",
        ],
        capture_output=True,
        check=False,
    )
    assert bwrap_available() == (proc.returncode == 0), proc.stderr
