"""Is the data order DistributedSampler's, resumable mid-epoch, and the augmentation seeded per sample?"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from labkit.sampling import ResumableSampler, SeededDataset, sample_seed


class _Sized(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


@pytest.mark.parametrize("n,replicas", [(10, 1), (10, 3), (7, 2), (2, 4)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_padded_order_equals_distributed_sampler(n, replicas, shuffle):
    """With pad=True, does every rank get exactly DistributedSampler's indices, epoch by epoch?"""
    for rank in range(replicas):
        ours = ResumableSampler(n, shuffle=shuffle, seed=5, num_replicas=replicas, rank=rank)
        ref = DistributedSampler(
            _Sized(n), num_replicas=replicas, rank=rank, shuffle=shuffle, seed=5
        )
        for epoch in (0, 1, 4):
            ours.set_epoch(epoch)
            ref.set_epoch(epoch)
            assert list(ours) == list(ref)
            assert len(ours) == len(ref)


@pytest.mark.parametrize("n,replicas", [(10, 3), (7, 2), (1, 2)])
def test_unpadded_shards_cover_each_index_once(n, replicas):
    """With pad=False (evaluation), do the ranks' shards together hold every index exactly once?"""
    seen = []
    for rank in range(replicas):
        s = ResumableSampler(n, shuffle=False, num_replicas=replicas, rank=rank, pad=False)
        assert len(s) == len(list(s))
        seen += list(s)
    assert sorted(seen) == list(range(n))


def test_set_start_skips_what_was_seen():
    """After set_start(k), does the sampler yield the epoch's order from position k on?"""
    s = ResumableSampler(13, seed=2, num_replicas=2, rank=1)
    s.set_epoch(3)
    full = list(s)
    s.set_start(4)
    assert list(s) == full[4:] and len(s) == len(full) - 4
    s.set_start(0)
    assert list(s) == full
    with pytest.raises(ValueError):
        s.set_start(-1)


def test_bad_rank_is_rejected():
    """Is a rank outside [0, num_replicas) an error?"""
    with pytest.raises(ValueError, match="rank"):
        ResumableSampler(5, num_replicas=2, rank=2)


class _Noisy(Dataset):
    """Draws from torch, numpy and python's generators, like random augmentations do."""

    classes = ("a", "b")

    def __len__(self):
        return 6

    def __getitem__(self, i):
        return torch.tensor([i, torch.rand(()).item(), np.random.rand(), random.random()])


def test_same_epoch_and_index_give_the_same_sample():
    """Is a sample a function of (seed, epoch, index) alone, whatever was drawn before?"""
    ds = SeededDataset(_Noisy(), seed=7)
    ds.set_epoch(2)
    a = ds[3]
    torch.rand(100), np.random.rand(5), random.random()
    assert torch.equal(ds[3], a)
    ds.set_epoch(3)
    assert not torch.equal(ds[3], a)
    assert not torch.equal(SeededDataset(_Noisy(), seed=8)[3], SeededDataset(_Noisy(), seed=7)[3])


def test_loading_does_not_disturb_the_global_generators():
    """Does the global random state after a __getitem__ equal the state before it?"""
    ds = SeededDataset(_Noisy(), seed=0)
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    expected = (torch.rand(2).tolist(), np.random.rand(), random.random())
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    ds[0], ds[4]
    assert (torch.rand(2).tolist(), np.random.rand(), random.random()) == expected


def test_workers_do_not_change_the_batches():
    """Do 0 and 2 loader workers produce the same batches (augmentation seeded per sample)?"""

    def batches(workers):
        ds = SeededDataset(_Noisy(), seed=3)
        ds.set_epoch(1)
        sampler = ResumableSampler(len(ds), seed=3)
        sampler.set_epoch(1)
        loader = DataLoader(ds, batch_size=2, sampler=sampler, num_workers=workers)
        return [b for b in loader]

    for a, b in zip(batches(0), batches(2)):
        assert torch.equal(a, b)


def test_attributes_pass_through_and_seeds_differ():
    """Does the wrapper expose the dataset's attributes, and do neighbouring samples get distinct seeds?"""
    ds = SeededDataset(_Noisy(), seed=0)
    assert ds.classes == ("a", "b") and len(ds) == 6
    seeds = {sample_seed(0, e, i) for e in range(5) for i in range(50)}
    assert len(seeds) == 250
