"""Does the student's side (:func:`labkit.grading.remote.serve`) do what the referee asks, as
a kernel would: calls, modules, gradients both ways, objects built there, callbacks, errors?

It runs in a thread here (a process in the judge; tests/grading/conftest.py): the protocol is
the same, and a thread lets each test set up the student's namespace directly.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from labkit.grading.proxy import Proxy
from labkit.grading.remote import RemoteError


class TinyNet(nn.Module):
    """A student's model: a conv and a batch norm."""

    def __init__(self, classes: int):
        super().__init__()
        self.conv = nn.Conv2d(3, classes, 3, padding=1)
        self.bn = nn.BatchNorm2d(classes)

    def forward(self, x):
        return self.bn(self.conv(x))


def test_functions_modules_and_isinstance_work_as_in_a_kernel(connect):
    """Calls return plain tensors; a student's module is a proxy that isinstance() takes for
    an nn.Module, whose layers are the library's classes, and ``eval()`` returns it again."""

    def counts(pred, target, n):
        return torch.stack([(pred == c).sum() for c in range(n)]).double()

    channel = connect({"counts": counts, "TinyNet": TinyNet})
    got = channel.lookup("counts")(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]), 3)
    assert type(got) is torch.Tensor and torch.equal(got, torch.tensor([1.0, 2.0, 0.0]).double())
    net = channel.lookup("TinyNet")(4)
    assert type(net) is Proxy and isinstance(net, nn.Module) and not isinstance(net, nn.Conv2d)
    assert isinstance(net.conv, nn.Conv2d) and net.conv.kernel_size == (3, 3)
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    assert len(layers) == 2
    assert sum(p.numel() for p in net.parameters()) == sum(
        p.numel() for p in TinyNet(4).parameters()
    )
    assert net.eval() is net and net.training is False and len(list(net.children())) == 2


def test_a_models_outputs_match_for_weights_the_referee_chose(connect):
    channel = connect({"TinyNet": TinyNet})
    torch.manual_seed(0)
    reference = TinyNet(5)
    for m in reference.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    mine = channel.lookup("TinyNet")(5)
    mine.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 9, 7)
    with torch.no_grad():
        got, want = mine.eval()(x), reference.eval()(x)
    assert type(got) is torch.Tensor and not got.requires_grad
    torch.testing.assert_close(got, want)


def test_gradients_cross_both_ways(connect):
    """backward() in the referee fills the student's parameters' grads, and a referee tensor
    that went into the student's loss gets the same gradient as torch's own loss gives it."""

    def weighted_ce(logits, target, weight):
        return F.cross_entropy(logits, target, weight=weight, ignore_index=255)

    channel = connect({"TinyNet": TinyNet, "weighted_ce": weighted_ce})
    net = channel.lookup("TinyNet")(3).train()
    out = net(torch.randn(2, 3, 6, 6))
    assert type(out) is torch.Tensor and out.requires_grad
    out.square().mean().backward()
    assert [n for n, p in net.named_parameters() if p.grad is None] == []
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 4, 5, generator=g, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 5), generator=g)
    target[0, 0] = 255
    weight = torch.rand(3, generator=g) + 0.1
    channel.lookup("weighted_ce")(x, target, weight).backward()
    ref = x.detach().clone().requires_grad_(True)
    F.cross_entropy(ref, target, weight=weight, ignore_index=255).backward()
    torch.testing.assert_close(x.grad, ref.grad)


def test_objects_built_on_the_students_side_and_functions_called_back(connect):
    """An optimizer made in the student's process, a schedule the referee defines (called
    back with plain numbers), and the student's LambdaLR stepping it."""

    def as_scheduler(optimizer, schedule, **options):
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: schedule(step, base_lr=1.0, **options)
        )

    channel = connect({"as_scheduler": as_scheduler})
    torch_there = channel.module("torch")
    param = torch_there.nn.Parameter(torch_there.zeros(1))
    optimizer = torch_there.optim.SGD([param], lr=0.1)
    seen = []

    def halve_every(step, *, base_lr, every):
        seen.append(type(step))
        return base_lr * 0.5 ** (step // every)

    scheduler = channel.lookup("as_scheduler")(optimizer, halve_every, every=2)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)
    rates = []
    for _ in range(5):
        rates.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert rates == [[0.1], [0.1], [0.05], [0.05], [0.025]] and set(seen) == {int}
    with pytest.raises(ImportError):
        channel.module("os")


def test_student_errors_arrive_by_type_and_message(connect):
    def picky(x):
        raise ValueError(f"bad x: {x}")

    class Odd(Exception):
        pass

    def odd():
        raise Odd("mine")

    channel = connect({"picky": picky, "odd": odd})
    with pytest.raises(ValueError, match="bad x: 3"):
        channel.lookup("picky")(3)
    with pytest.raises(RemoteError, match="Odd: mine"):
        channel.lookup("odd")()
    with pytest.raises(KeyError):
        channel.lookup("missing")
    assert channel.lookup("picky") is channel.lookup("picky")  # the channel is still good
