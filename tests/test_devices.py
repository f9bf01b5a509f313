"""Does labkit pick the right device, cap GPU memory and explain out-of-memory errors?

This machine has no GPU: the CUDA queries are replaced by fakes that report what a shared
server with several busy cards would report.
"""

from __future__ import annotations

import logging

import pytest
import torch

from labkit import devices
from labkit.devices import (
    GPUOutOfMemoryError,
    cap_memory,
    explain_oom,
    pick_device,
    resolve_amp,
    resolve_channels_last,
)

GIB = 1 << 30


@pytest.fixture
def fake_gpus(monkeypatch):
    """Pretend CUDA is present with GPUs whose free memory the test sets."""
    state = {"free": [], "total": 16 * GIB, "fraction": []}

    def mem_get_info(index):
        free = state["free"][index]
        if free is None:
            raise RuntimeError("CUDA error: busy or unavailable")
        return free, state["total"]

    class Props:
        total_memory = state["total"]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(state["free"]))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: Props())
    monkeypatch.setattr(
        torch.cuda, "set_per_process_memory_fraction", lambda f, d: state["fraction"].append((f, d))
    )
    return state


def test_auto_is_cpu_without_cuda(monkeypatch):
    """Does device='auto' (and None) fall back to the CPU when torch sees no GPU?"""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    assert pick_device(None) == torch.device("cpu")


def test_auto_picks_the_gpu_with_most_free_memory(fake_gpus):
    """On a shared server, does 'auto' take the visible GPU with the most free memory?"""
    fake_gpus["free"] = [2 * GIB, 9 * GIB, 5 * GIB]
    assert pick_device("auto") == torch.device("cuda", 1)
    fake_gpus["free"] = [7 * GIB, 1 * GIB, 6 * GIB]
    assert pick_device(None) == torch.device("cuda", 0)


def test_auto_skips_a_gpu_that_cannot_be_queried(fake_gpus):
    """Is a GPU whose memory query fails (exclusive mode, held by another user) passed over?"""
    fake_gpus["free"] = [None, 1 * GIB]
    assert pick_device("auto") == torch.device("cuda", 1)


def test_explicit_devices_are_checked(fake_gpus, monkeypatch):
    """Are 'cuda:N' beyond the visible GPUs, and nonsense strings, errors that say what exists?"""
    fake_gpus["free"] = [GIB, GIB]
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    assert pick_device("cuda") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match=r"2 GPU\(s\) are visible"):
        pick_device("cuda:5")
    with pytest.raises(ValueError, match="expected a device"):
        pick_device("banana")


def test_cuda_without_cuda_is_an_error(monkeypatch):
    """Does asking for CUDA on a machine without it fail with advice instead of a CUDA trace?"""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="'cpu'"):
        pick_device("cuda")
    assert pick_device("cpu") == torch.device("cpu")


def test_memory_cap_sets_the_fraction_of_the_card(fake_gpus):
    """Does a cap of 4 GiB on a 16 GiB card set the per-process fraction to 4/16?"""
    fake_gpus["free"] = [GIB]
    cap_memory(torch.device("cuda", 0), gib=4)
    assert fake_gpus["fraction"] == [(4 / 16, torch.device("cuda", 0))]
    with pytest.raises(ValueError, match="exceeds"):
        cap_memory(torch.device("cuda", 0), gib=32)
    with pytest.raises(ValueError, match="> 0"):
        cap_memory(torch.device("cuda", 0), gib=0)


def test_memory_cap_is_a_no_op_on_cpu_or_without_cap(fake_gpus):
    """Does the cap leave the CPU, and gib=None, alone?"""
    cap_memory(torch.device("cpu"), gib=4)
    cap_memory(torch.device("cuda", 0), gib=None)
    assert fake_gpus["fraction"] == []


def test_amp_and_channels_last_default_to_cuda_only(caplog):
    """Are AMP and channels_last on for CUDA by default, and off (with a warning for AMP) on CPU?"""
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert resolve_amp(None, cuda) and resolve_channels_last(None, cuda)
    assert not resolve_amp(False, cuda) and not resolve_channels_last(False, cuda)
    assert not resolve_amp(None, cpu) and not resolve_channels_last(None, cpu)
    with caplog.at_level(logging.WARNING, logger=devices.__name__):
        assert not resolve_amp(True, cpu)
    assert "CUDA only" in caplog.text


def test_out_of_memory_becomes_one_actionable_message():
    """Does a CUDA OOM turn into one line naming the batch size, the crop and what to lower?"""
    with pytest.raises(GPUOutOfMemoryError) as info:
        with explain_oom(batch_size=16, crop=(513, 513), device="cuda:0"):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    message = str(info.value)
    assert "batch size 16" in message and "513×513" in message
    assert "--batch-size 8" in message and "--crop-size" in message and "--amp" in message
    assert "\n" not in message
    assert isinstance(info.value.__cause__, torch.cuda.OutOfMemoryError)


def test_other_errors_pass_through_explain_oom():
    """Are errors other than OOM left untouched by explain_oom?"""
    with pytest.raises(KeyError):
        with explain_oom(batch_size=2, crop=(8, 8), device="cpu"):
            raise KeyError("x")


@pytest.mark.gpu
def test_auto_on_a_real_gpu_machine():
    """On a machine with CUDA, does 'auto' give a CUDA device with an index?"""
    dev = pick_device("auto")
    assert dev.type == "cuda" and dev.index is not None
    free = [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]
    assert free[dev.index] == max(free)


def test_cpu_threads_is_scoped():
    """Does cpu_threads set the thread count inside the block only (and None change nothing)?"""
    from labkit.devices import cpu_threads

    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with cpu_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="at least 1"):
        with cpu_threads(0):
            pass
