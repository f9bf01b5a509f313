"""Tests for labkit.grading.launcher: the sandbox's first program (its limits, uid and
clean-up are tested through labkit.grading.sandbox in test_sandbox.py)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from labkit.grading.launcher import descendants


def test_descendants_are_every_process_below_as_psutil_sees_them():
    """Does descendants() find children, grandchildren and a thread's children, the same set
    psutil reports?"""
    tree = (
        "import subprocess, sys, threading, time\n"
        "kids = [subprocess.Popen([sys.executable, '-c', 'import subprocess, sys, time; "
        'subprocess.Popen(["sleep", "30"]); time.sleep(30)\'])]\n'
        "threading.Thread(target=lambda: kids.append(subprocess.Popen(['sleep', '30']))).start()\n"
        "time.sleep(30)\n"
    )
    root = subprocess.Popen([sys.executable, "-c", tree])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            expected = {p.pid for p in psutil.Process(root.pid).children(recursive=True)}
            if len(expected) >= 3:
                break
            time.sleep(0.05)
        assert len(expected) == 3, expected
        assert set(descendants(root.pid)) == expected
    finally:
        for pid in [*descendants(root.pid), root.pid]:
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
        root.wait()
    assert descendants(root.pid) == []  # a process that is gone has none
