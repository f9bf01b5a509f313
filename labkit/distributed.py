"""Distributed data parallel training, launched with ``torchrun``.

``torchrun --nproc_per_node=N -m labkit train ...`` starts N copies of the command with
``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set.
:func:`init_distributed` joins them into one process group (NCCL when CUDA is present, gloo
on the CPU); each process then trains on its shard of every epoch
(:class:`labkit.sampling.ResumableSampler`), ``DistributedDataParallel`` averages the
gradients so the replicas stay identical, confusion matrices and loss sums are added up
across ranks, and only rank 0 writes files. Without ``torchrun`` everything here is a no-op
and the same code runs as one process.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from labkit.errors import UsageError

__all__ = [
    "DistributedContext",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "context",
    "init_distributed",
    "shutdown",
    "wrap_model",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a distributed run.

    Attributes:
        rank: the global rank, 0 for the process that writes files.
        world_size: number of processes (1 without ``torchrun``).
        local_rank: the rank on this machine, which picks the GPU.
        backend: ``"nccl"``, ``"gloo"`` or ``None`` when not distributed.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """More than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """This process writes checkpoints, logs and results."""
        return self.rank == 0


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def context() -> DistributedContext:
    """The :class:`DistributedContext` of the current process group (single process if none)."""
    if not _initialized():
        return DistributedContext()
    return DistributedContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())),
        backend=str(dist.get_backend()),
    )


def init_distributed(
    *, backend: str | None = None, timeout_s: float = 1800.0
) -> DistributedContext:
    """Join the process group that ``torchrun`` describes in the environment.

    Args:
        backend (str | None): ``"nccl"`` or ``"gloo"``; ``None`` picks NCCL when CUDA is available,
            else gloo.
        timeout_s (float): how long a collective may wait for the slowest rank.

    Returns:
        The context; a single-process one when ``WORLD_SIZE`` is unset or 1.

    Raises:
        ValueError: if ``WORLD_SIZE`` > 1 but ``RANK`` or ``MASTER_ADDR`` is missing.
    """
    if _initialized():
        return context()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise UsageError(
            f"WORLD_SIZE={world_size} but {missing} not set; launch distributed "
            "runs with `torchrun --nproc_per_node=N -m labkit train ...`."
        )
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    ctx = context()
    log.info("rank %d of %d joined (%s)", ctx.rank, ctx.world_size, backend)
    return ctx


def shutdown() -> None:
    """Leave the process group (a no-op when there is none)."""
    if _initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (a no-op in a single process)."""
    if _initialized() and dist.get_world_size() > 1:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place; returns it (unchanged in a single process)."""
    if _initialized() and dist.get_world_size() > 1:
        if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
            summed = tensor.cuda()
            dist.all_reduce(summed)
            tensor.copy_(summed)
        else:
            dist.all_reduce(tensor)
    return tensor


def broadcast_object(obj: object, *, src: int = 0) -> object:
    """Rank ``src``'s ``obj`` on every rank (``obj`` itself in a single process)."""
    if not (_initialized() and dist.get_world_size() > 1):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_model(
    model: nn.Module, device: torch.device, *, find_unused_parameters: bool = False
) -> nn.Module:
    """Wrap ``model`` in ``DistributedDataParallel`` when more than one process takes part.

    Args:
        model (nn.Module): the network, already on ``device``.
        device (torch.device): this rank's device.
        find_unused_parameters (bool): set when some trainable parameters get no gradient in a
            training step (DDP would otherwise wait for them); frozen ones do not count.

    Returns:
        The DDP wrapper, or ``model`` itself in a single process (or if already wrapped).
    """
    if not (_initialized() and dist.get_world_size() > 1):
        return model
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused_parameters
    )
