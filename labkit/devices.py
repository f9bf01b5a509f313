"""Where to train: the GPU with the most free memory, a memory cap, readable OOM errors.

On a shared GPU server several students train at once. ``pick_device("auto")`` looks at the
free memory of every visible GPU (``CUDA_VISIBLE_DEVICES`` still decides which are visible)
and takes the emptiest, :func:`cap_memory` keeps one process from taking a whole card, and
:func:`explain_oom` turns CUDA's out-of-memory traceback into one sentence that names the
batch size and crop that failed and what to lower. AMP and ``channels_last`` pay off only
on CUDA; :func:`resolve_amp` and :func:`resolve_channels_last` turn them off elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

import torch

from labkit.errors import LabkitError, UsageError

__all__ = [
    "GPUOutOfMemoryError",
    "cap_memory",
    "cpu_threads",
    "explain_oom",
    "oom_message",
    "pick_device",
    "resolve_amp",
    "resolve_channels_last",
]

log = logging.getLogger(__name__)

_GIB = 1 << 30


class GPUOutOfMemoryError(LabkitError, RuntimeError):
    """CUDA ran out of memory; the message says with which batch and what to lower."""


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """Turn a device argument into a ``torch.device``.

    Args:
        device (str | torch.device | None): ``None`` or ``"auto"`` takes the visible CUDA GPU with
            the most free memory (CPU when there is none); anything else is passed to
            ``torch.device`` and checked.

    Returns:
        The device, with an explicit index for CUDA (``cuda:2``).

    Raises:
        ValueError: if the string is not a device, or CUDA is asked for and absent.
    """
    if device is None or device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        free = [_free_memory(i) for i in range(torch.cuda.device_count())]
        best = max(range(len(free)), key=lambda i: free[i])
        log.info(
            "device='auto': free GPU memory %s GiB; using cuda:%d",
            [round(f / _GIB, 1) for f in free],
            best,
        )
        return torch.device("cuda", best)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UsageError(
            f"expected a device such as 'auto', 'cpu', 'cuda' or 'cuda:1'; got {device!r}."
        ) from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"device {device!r} asked for CUDA, but torch sees no CUDA GPU on "
                "this machine; use device='auto' or 'cpu'."
            )
        count = torch.cuda.device_count()
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if index >= count:
            raise UsageError(
                f"device {device!r} does not exist: {count} GPU(s) are visible "
                f"(cuda:0 to cuda:{count - 1}); check CUDA_VISIBLE_DEVICES."
            )
        return torch.device("cuda", index)
    return dev


def _free_memory(index: int) -> int:
    try:
        return torch.cuda.mem_get_info(index)[0]
    except RuntimeError:  # a GPU in exclusive mode held by someone else cannot be queried
        return -1


def cap_memory(device: torch.device, *, gib: float | None) -> None:
    """Limit this process's share of a GPU's memory (a no-op for ``gib=None`` or the CPU).

    Uses ``torch.cuda.set_per_process_memory_fraction``: allocations beyond the cap raise an
    out-of-memory error in this process instead of starving the other users of the card.

    Args:
        device (torch.device): the training device.
        gib (float | None): the cap in GiB (2**30 bytes), or ``None`` for no cap.

    Raises:
        ValueError: if ``gib`` is not positive or exceeds the GPU's memory.
    """
    if gib is None:
        return
    if gib <= 0:
        raise UsageError(f"expected a GPU memory cap > 0 GiB; got {gib}.")
    if device.type != "cuda":
        log.info("GPU memory cap of %.1f GiB ignored on %s", gib, device)
        return
    total = torch.cuda.get_device_properties(device).total_memory
    if gib * _GIB > total:
        raise UsageError(
            f"GPU memory cap {gib} GiB exceeds the {total / _GIB:.1f} GiB of "
            f"{device}; ask for less."
        )
    torch.cuda.set_per_process_memory_fraction(gib * _GIB / total, device)
    log.info("capped %s at %.1f GiB of %.1f", device, gib, total / _GIB)


def resolve_amp(amp: bool | None, device: torch.device) -> bool:
    """Mixed precision on or off: ``None`` means on for CUDA; CPU always runs float32."""
    if device.type == "cuda":
        return True if amp is None else bool(amp)
    if amp:
        log.warning("amp=True ignored on %s: mixed precision is used on CUDA only", device)
    return False


def resolve_channels_last(channels_last: bool | None, device: torch.device) -> bool:
    """``channels_last`` memory format on or off: ``None`` means on for CUDA only."""
    if device.type == "cuda":
        return True if channels_last is None else bool(channels_last)
    if channels_last:
        log.info("channels_last ignored on %s (it speeds up CUDA convolutions only)", device)
    return False


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` CPU threads inside the block, then give the previous count back.

    Small networks gain little from more threads, and on a busy machine OpenMP threads wait
    on each other (a 2-thread run on 2 shared cores can be several times slower than a
    1-thread one), so the quick presets ask for 1.

    Args:
        threads (int | None): ``torch.set_num_threads`` value; ``None`` leaves the setting alone.
    """
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise UsageError(f"expected at least 1 CPU thread; got {threads}.")
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def oom_message(
    *, batch_size: int, crop: Sequence[int], device: torch.device | str, phase: str
) -> str:
    """The one-line explanation of an out-of-memory error (see :func:`explain_oom`)."""
    crop_text = "×".join(str(int(s)) for s in crop)
    smaller = max(1, batch_size // 2)
    return (
        f"CUDA ran out of memory while {phase} on {device} with batch size {batch_size} "
        f"and {crop_text} inputs. Lower the batch size (e.g. --batch-size {smaller}) or "
        "the crop (--crop-size), turn on mixed precision (--amp), or move to a GPU with "
        "more free memory (nvidia-smi; --device auto picks the emptiest)."
    )


@contextlib.contextmanager
def explain_oom(
    *, batch_size: int, crop: Sequence[int], device: torch.device | str, phase: str = "training"
) -> Iterator[None]:
    """Re-raise ``torch.cuda.OutOfMemoryError`` as :class:`GPUOutOfMemoryError`.

    Args:
        batch_size (int): images in the batch that failed.
        crop (Sequence[int]): its ``(height, width)``.
        device (torch.device | str): the device it ran on.
        phase (str): what was going on ("training", "evaluating").

    Raises:
        GPUOutOfMemoryError: with the message of :func:`oom_message`.
    """
    try:
        yield
    except torch.cuda.OutOfMemoryError as err:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # give the memory back before the message is read
        raise GPUOutOfMemoryError(
            oom_message(batch_size=batch_size, crop=crop, device=device, phase=phase)
        ) from err
