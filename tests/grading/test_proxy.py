"""Does the referee's side see the student's objects as it should: values of exact types,
autograd state as snapshots, classes it can check, and nothing a lying student's side sends
taken for more than data? (The student's side serves from a thread: tests/grading/conftest.py.)
"""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from labkit.grading.wire import MAGIC, read_frame, write_frame


def test_parameters_student_classes_and_generators(connect):
    """A parameter arrives as a snapshot with its ``.grad``; ``isinstance`` against a class of
    the student's asks the student's process; a generator the referee passes is copied there
    once, so passing it again goes on with its draws."""

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor([2.0, 3.0]))

        def forward(self, x):
            return x * self.scale

    def draw(generator):
        return torch.rand(2, generator=generator)

    channel = connect({"Head": Head, "draw": draw, "Other": nn.Linear})
    StudentHead = channel.lookup("Head")
    head = StudentHead()
    assert isinstance(head, StudentHead) and not isinstance(head, channel.lookup("Other"))
    assert not isinstance(torch.zeros(1), StudentHead)
    before = head.scale
    assert type(before) is nn.Parameter and before.grad is None
    torch.testing.assert_close(before.detach(), torch.tensor([2.0, 3.0]))
    head(torch.ones(2)).sum().backward()
    torch.testing.assert_close(head.scale.grad, torch.ones(2))  # read after the backward
    g = torch.Generator().manual_seed(5)
    mine = torch.Generator().manual_seed(5)
    first, second = channel.lookup("draw")(g), channel.lookup("draw")(g)
    torch.testing.assert_close(first, torch.rand(2, generator=mine))
    torch.testing.assert_close(second, torch.rand(2, generator=mine))


def test_a_liar_gets_no_further_than_its_data(connect):
    """A student's side that answers anything: a Tensor subclass claiming to equal everything
    arrives as its plain values, garbage frames and silence break the channel (the test
    fails), and nothing it sends is a verdict."""

    class Liar(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            if func in (torch.allclose, torch.equal):
                return True
            return super().__torch_function__(func, types, args, kwargs or {})

    channel = connect({"f": lambda x: torch.zeros(3).as_subclass(Liar)})
    got = channel.lookup("f")(1)
    assert type(got) is torch.Tensor and not torch.allclose(got, torch.ones(3))

    def garbage(fd_in, fd_out, namespace):
        read_frame(fd_in)
        os.write(fd_out, MAGIC + b"\x00" * 12 + b"not a frame")

    channel = connect({}, server=garbage)
    with pytest.raises(TimeoutError, match="did not answer"):
        channel.lookup("anything")
    with pytest.raises(TimeoutError):  # broken for good: no later request can pass
        channel.lookup("anything")

    def silent(fd_in, fd_out, namespace):
        read_frame(fd_in)

    channel = connect({}, server=silent, timeout=0.5)
    with pytest.raises(TimeoutError):
        channel.lookup("x")

    def verdict(fd_in, fd_out, namespace):
        read_frame(fd_in)
        write_frame(fd_out, {"passed": True, "ok": None, "verdict": "pass"})

    assert connect({}, server=verdict).lookup("x") is None  # data: the referee decides
