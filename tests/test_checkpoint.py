"""Do checkpoints survive a crash mid-write and bring back every random generator?"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from labkit import checkpoint
from labkit.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_weights,
    rng_state,
    save_atomic,
    set_rng_state,
    unwrap,
)


def test_round_trip_keeps_tensors_and_plain_values(tmp_path):
    """Does a saved dict of tensors and plain values load back equal (with weights_only)?"""
    obj = {"w": torch.randn(3, 4), "epoch": 3, "rows": [{"miou": 0.5}], "name": "x"}
    save_atomic(obj, tmp_path / "sub" / "last.pt")
    back = load_checkpoint(tmp_path / "sub" / "last.pt")
    assert torch.equal(back["w"], obj["w"])
    assert {k: v for k, v in back.items() if k != "w"} == {k: v for k, v in obj.items() if k != "w"}


def test_a_crash_while_writing_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    """If the process dies half-way through torch.save, is the previous file intact and no temp left?"""
    path = tmp_path / "last.pt"
    save_atomic({"epoch": 1}, path)

    def dying_save(obj, fh):
        fh.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt  # what a kill looks like from inside

    monkeypatch.setattr(checkpoint.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"epoch": 2}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_the_rename_stays_in_one_folder(tmp_path, monkeypatch):
    """Is the temporary file in the target's folder (os.replace is atomic only within one file system)?"""
    calls = []
    real = os.replace
    monkeypatch.setattr(checkpoint.os, "replace", lambda a, b: (calls.append((a, b)), real(a, b)))
    save_atomic({"a": 1}, tmp_path / "best.pt")
    ((src, dst),) = calls
    assert os.path.dirname(src) == os.path.dirname(dst) == str(tmp_path)


def test_saved_file_has_normal_permissions(tmp_path):
    """Does the checkpoint get the umask's permissions, not mkstemp's private 0600?"""
    path = save_atomic({"a": 1}, tmp_path / "x.pt")
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~mask)


def _draws():
    return (random.random(), float(np.random.rand()), np.random.randn(), torch.rand(3).tolist())


def test_rng_state_restores_every_generator(tmp_path):
    """After a save/load round trip, do python, numpy and torch draw the same numbers again?"""
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    state = rng_state()
    save_atomic({"rng": state}, tmp_path / "r.pt")
    expected = _draws()
    _draws()  # move everything on
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    assert _draws() == expected


def test_unreadable_or_missing_checkpoints_are_explained(tmp_path):
    """Do a missing file, a damaged file and a non-dict file each raise CheckpointError?"""
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="list"):
        load_checkpoint(tmp_path / "list.pt")


def test_load_weights_checks_the_model(tmp_path):
    """Are weights loaded into a matching model, and a mismatch reported as CheckpointError?"""
    src, dst = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1)
    save_atomic({"model": src.state_dict()}, tmp_path / "m.pt")
    load_weights(dst, tmp_path / "m.pt")
    assert torch.equal(src.weight, dst.weight)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_weights(nn.Conv2d(3, 5, 1), tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="no 'model'"):
        load_weights(dst, {"epoch": 1})


def test_unwrap_finds_the_inner_module():
    """Does unwrap see through a torch.compile-style wrapper (_orig_mod)?"""
    inner = nn.Linear(2, 2)
    wrapper = nn.Module()
    wrapper._orig_mod = inner
    assert unwrap(wrapper) is inner
    assert unwrap(inner) is inner
