"""Data order and augmentation randomness that a killed run can pick up mid-epoch.

Two pieces make the batches of epoch ``e`` a pure function of ``(seed, e)``, independent of
the number of loader workers, of the number of DDP processes' scheduling, and of whether the
run was interrupted:

* :class:`ResumableSampler` draws the order of an epoch the way
  ``torch.utils.data.DistributedSampler`` does (``randperm`` seeded with ``seed + epoch``,
  padded and split across ranks) and can start part-way through it, so a resumed epoch
  skips the samples it had already trained on without loading them.
* :class:`SeededDataset` runs the wrapped dataset's random transforms under a seed made of
  ``(seed, epoch, index)`` and puts the global generators back afterwards, so an image gets
  the same crop and flip whichever worker loads it and whatever ran before.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

__all__ = ["ResumableSampler", "SeededDataset", "sample_seed"]


class ResumableSampler(Sampler[int]):
    """Shuffled (or ordered) indices of one rank's shard, resumable part-way through an epoch.

    With ``pad=True`` the order equals ``DistributedSampler(dataset, num_replicas, rank,
    shuffle, seed, drop_last=False)`` after ``set_epoch(epoch)``: indices are repeated from
    the start so every rank gets ``ceil(length / num_replicas)`` of them, which keeps the
    ranks in step during distributed training. With ``pad=False`` every index appears exactly
    once over all ranks (shards may differ in size by one), which evaluation needs so that
    summed scores equal those of a single process.

    Args:
        length (int): the dataset's length.
        shuffle (bool): draw a new permutation every epoch.
        seed (int): the base seed of the permutations (the same on every rank).
        num_replicas (int): number of processes sharing the data.
        rank (int): this process's rank in ``[0, num_replicas)``.
        pad (bool): pad the order to a multiple of ``num_replicas`` (see above).

    Raises:
        ValueError: on a negative length, ``num_replicas < 1`` or a rank out of range.
    """

    def __init__(
        self,
        length: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        pad: bool = True,
    ) -> None:
        if length < 0:
            raise ValueError(f"expected a dataset length >= 0; got {length}.")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(
                f"expected num_replicas >= 1 and 0 <= rank < num_replicas; got "
                f"num_replicas={num_replicas}, rank={rank}."
            )
        self.length, self.shuffle, self.seed = length, shuffle, seed
        self.num_replicas, self.rank, self.pad = num_replicas, rank, pad
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation is drawn (call before every epoch)."""
        self.epoch = epoch

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` indices of this rank's shard (0 for a whole epoch)."""
        if start < 0:
            raise ValueError(f"expected start >= 0; got {start}.")
        self.start = start

    def shard(self) -> list[int]:
        """This rank's indices for the current epoch, before skipping ``start``."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        if self.pad and order:
            total = math.ceil(self.length / self.num_replicas) * self.num_replicas
            order += (order * math.ceil(total / len(order)))[: total - len(order)]
        return order[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.shard()[self.start :])

    def __len__(self) -> int:
        if self.pad:
            size = math.ceil(self.length / self.num_replicas)
        else:
            size = len(range(self.rank, self.length, self.num_replicas))
        return max(0, size - self.start)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one sample of one epoch, well mixed (``numpy.random.SeedSequence``)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint32)[0])


class SeededDataset(Dataset):
    """Runs a dataset's random transforms under a per-``(seed, epoch, index)`` seed.

    The global generators (torch CPU, Python ``random``, NumPy) are seeded for the duration
    of one ``__getitem__`` and then restored, so loading data neither depends on nor
    disturbs the randomness of training (dropout draws from the same torch generator).

    Args:
        dataset (Any): the dataset with random transforms.
        seed (int): the run's seed.

    Attributes other than ``dataset``, ``seed`` and ``epoch`` (``classes``,
    ``num_classes``, ...) are those of the wrapped dataset.
    """

    def __init__(self, dataset: Any, *, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose seeds are used (call before creating the epoch's iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        s = sample_seed(self.seed, self.epoch, index)
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            # The CPU generator only: torch.manual_seed also queues seeds for every
            # accelerator, which costs more than loading a small image.
            torch.default_generator.manual_seed(s)
            random.seed(s)
            np.random.seed(s)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found normally; guard against recursion while
        # unpickling in a worker, before ``dataset`` exists.
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
