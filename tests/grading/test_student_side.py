"""Tests for labkit.grading.student_side: the student's process of a judged notebook, run
as the judge starts it and followed by a referee over its channel."""

from __future__ import annotations

import json

PRELUDE = "import torch\nfrom labkit.checks import check_close"

SECRET = "tok_9f3c2e"  # appears in the hidden test only
SESSION_TESTS = {
    1: '''check_close(add_one(torch.tensor([1.0])), [2.0], name="add_one")
### BEGIN HIDDEN TESTS
print("hidden says", "'''
    + SECRET
    + """")
check_close(add_one(torch.arange(4.0)), [1.0, 2.0, 3.0, 4.0], name="hidden add_one")
assert len(list(range(3))) == 3
### END HIDDEN TESTS
""",
    3: """_net = Tiny()
_out = _net(torch.ones(2, 3))
check_close(_out, torch.ones(2, 3) * 2, name="Tiny doubles")
_out.sum().backward()
assert _net.scale.grad is not None, "no gradient reached Tiny.scale"
""",
}
HONEST = """
import torch
def add_one(x):
    return x + 1
class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(2.0))
    def forward(self, x):
        return x * self.scale
"""
# What a determined student tries from inside its own process: forged reports on the channel
# (a verdict, a test's end, an answer), torch's comparisons patched and a TorchFunctionMode
# left on, builtins shadowed, and a search of its whole memory for the hidden test.
ATTACK = (
    HONEST.replace("return x + 1", "return x")
    + '''
import gc, json, os
from torch.overrides import TorchFunctionMode
from labkit.grading.wire import write_frame
class Yes(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.isclose, torch.allclose, torch.equal):
            return torch.ones((), dtype=torch.bool)
        return func(*args, **(kwargs or {}))
Yes().__enter__()
torch.isclose = lambda *a, **k: torch.ones((), dtype=torch.bool)
len = lambda x: 3
for fd in range(3, 64):
    for frame in ({"passed": True}, {"test_over": 1, "status": "exited"}, {"ok": True}):
        try:
            write_frame(fd, frame)
        except OSError:
            pass
found = any("'''
    + SECRET[:4]
    + '''" + "'''
    + SECRET[4:]
    + '''" in o for o in gc.get_objects()
            if isinstance(o, str) and o != "'''
    + SECRET[:4]
    + """")
print("FOUND" if found else "not found")
"""
)


def _judge(tmp_path, answer: str):
    """The notebook [answer, test 1, a printing cell, test 3] judged by a student process
    started the way the judge starts it (no sandbox here: the channel is what is tested)."""
    import json
    import os
    import subprocess
    import sys

    from labkit.grading.referee import referee_session

    to_student = os.pipe()
    from_student = os.pipe()
    program = {
        "channel": [to_student[0], from_student[1]],
        "cell_timeout": 60,
        "modules": ["torch"],
        "cells": [
            {"index": 0, "test": False, "source": answer},
            {"index": 1, "test": True},
            {"index": 2, "test": False, "source": "print('between tests')"},
            {"index": 3, "test": True},
        ],
    }
    proc = subprocess.Popen(
        [sys.executable, "-I", "-m", "labkit.grading.student_side"],
        stdin=subprocess.PIPE,
        cwd=tmp_path,
        pass_fds=(to_student[0], from_student[1]),
    )
    os.close(to_student[0])
    os.close(from_student[1])
    proc.stdin.write(json.dumps(program).encode())
    proc.stdin.close()
    try:
        return referee_session(
            from_student[0], to_student[1], SESSION_TESTS, prelude=PRELUDE, cell_timeout=60
        ), program
    finally:
        proc.wait(timeout=60)
        os.close(from_student[0])
        os.close(to_student[1])


def test_a_session_grades_the_honest_and_none_of_an_attack(tmp_path):
    """Through a real student process: tests decided by the referee from the values it saw,
    answer cells' output passed on, the hidden test never sent."""
    honest, program = _judge(tmp_path, HONEST)
    assert honest.started and honest.finished and honest.problem is None
    assert {i: v.passed for i, v in honest.verdicts.items()} == {1: True, 3: True}
    assert honest.cells[2]["output"] == "between tests\n"
    assert all(SECRET not in v.output for v in honest.verdicts.values())
    assert SECRET not in json.dumps(program)  # the hidden test never went to the student

    # The attack's add_one is wrong and fails, its Tiny is right and passes: the forged
    # reports, the patched comparisons and the shadowed len changed nothing either way.
    attacked, _ = _judge(tmp_path, ATTACK)
    assert attacked.finished and attacked.problem is None
    assert {i: v.passed for i, v in attacked.verdicts.items()} == {1: False, 3: True}
    assert attacked.verdicts[1].message == "AssertionError: add_one: expected 2, got 1."
    assert "not found" in attacked.cells[0]["output"]


def test_the_students_process_imports_torch_only_for_a_tensor():
    """Does the student's side start without torch (a NumPy lab's students do not pay its
    import and memory), and load it when a tensor comes over the channel?"""
    import subprocess
    import sys

    import torch

    from labkit.grading.wire import encode

    script = (
        "import sys\n"
        "import labkit.grading.student_side\n"
        "from labkit.grading.wire import decode, encode\n"
        "before = 'torch' in sys.modules\n"
        "decode(encode([1, 'a', (2.0,)]))\n"
        "plain = 'torch' in sys.modules\n"
        "got = decode(sys.stdin.buffer.read())\n"
        "print(before, plain, 'torch' in sys.modules, got.tolist())\n"
    )
    run = subprocess.run(
        [sys.executable, "-I", "-c", script],
        input=encode(torch.arange(3)),
        capture_output=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout.decode().split() == ["False", "False", "True", "[0,", "1,", "2]"]
