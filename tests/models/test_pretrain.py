"""Tests for labkit.models.pretrain: the Shapes-pretrained ResNet-18 and its cache."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
import torchvision

import labkit.models.pretrain as pretrain
from labkit.config import load_preset
from labkit.data.shapes import draw_shapes_image
from labkit.models.pretrain import (
    LABELS,
    PretrainCacheError,
    PretrainOptions,
    accuracy,
    ensure_shapes_pretrained,
    load_shapes_pretrained,
    pretraining_set,
    shapes_pretrained_path,
)
from labkit.models.resnet_transfer import resnet18_transfer

# Seconds, not minutes: 32-px images, a few optimizer steps.
TINY = PretrainOptions(num_images=48, held_out=0, size=32, crop=32, epochs=1, batch_size=16)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty hub cache in tmp_path (TORCH_HOME and torch.hub's directory), so no test
    writes the user's cache; and the tiny options as the default ones."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # monkeypatch restores the old value
    torch.hub.set_dir(str(tmp_path / "hub"))
    monkeypatch.setattr(pretrain, "DEFAULT_OPTIONS", TINY)
    monkeypatch.delenv("LABKIT_BUDGET", raising=False)
    return tmp_path / "hub" / "checkpoints"


@pytest.fixture
def trainings(monkeypatch):
    """Count the calls of pretrain_resnet18 (the expensive part)."""
    calls = []
    real = pretrain.pretrain_resnet18

    def counted(*args, **kw):
        calls.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(pretrain, "pretrain_resnet18", counted)
    return calls


def test_the_file_is_named_by_the_options_in_the_hub_cache(hub):
    """Is the cache file labkit-shapes-resnet18-<hash>.pth in hub/checkpoints, one per options?"""
    path = shapes_pretrained_path(TINY)
    assert path.parent == hub
    assert path.name.startswith("labkit-shapes-resnet18-") and path.suffix == ".pth"
    assert shapes_pretrained_path() == path  # the default options (here: TINY)
    assert shapes_pretrained_path(dataclasses.replace(TINY, seed=1)) != path


def test_the_cache_is_written_once_and_reused(hub, trainings):
    """Does the first call pretrain and write the file, and the second only read it?"""
    first = load_shapes_pretrained()
    path = shapes_pretrained_path()
    assert path.is_file() and len(trainings) == 1
    stamp = os.stat(path).st_mtime_ns
    second = load_shapes_pretrained()
    assert len(trainings) == 1 and os.stat(path).st_mtime_ns == stamp
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert ensure_shapes_pretrained() == path and len(trainings) == 1
    assert not [p for p in hub.iterdir() if p.name.endswith(".tmp")]  # no temporary left


def test_the_smoke_budget_pretrains_its_own_small_file(hub, trainings, monkeypatch):
    """Under LABKIT_BUDGET=smoke, does the default pretraining shrink to SMOKE_OPTIONS and
    write another file, leaving the real weights' file alone?"""
    real = shapes_pretrained_path()
    monkeypatch.setenv("LABKIT_BUDGET", "smoke")
    assert pretrain.default_options() == pretrain.SMOKE_OPTIONS
    assert pretrain.SMOKE_OPTIONS.num_images < pretrain.PretrainOptions().num_images
    load_shapes_pretrained()
    assert [args[0] for args in trainings] == [pretrain.SMOKE_OPTIONS]
    assert shapes_pretrained_path().is_file() and not real.exists()
    assert shapes_pretrained_path() != real


def test_same_options_give_identical_weights(hub, tmp_path):
    """Do two pretrainings with the same options, in two empty caches, write the same tensors,
    and another seed different ones? And is the caller's random state left alone?"""
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    a = load_shapes_pretrained()
    assert torch.equal(torch.rand(3), expected_draw)
    torch.hub.set_dir(str(tmp_path / "other"))
    b = load_shapes_pretrained()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = load_shapes_pretrained(dataclasses.replace(TINY, seed=1))
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])


def test_the_loaded_encoder_is_the_cached_state_dict(hub):
    """Does pretrained_backbone="shapes" put exactly the cached tensors into the encoder
    (ResNet-18's every key but the pretraining head fc), and the fresh model not?"""
    model = resnet18_transfer(num_classes=3, pretrained_backbone="shapes", freeze_encoder=False)
    record = torch.load(shapes_pretrained_path(), weights_only=True)
    cached, ours = record["state_dict"], model.encoder.state_dict()
    reference = torchvision.models.resnet18().state_dict()
    assert cached.keys() == {k for k in reference if not k.startswith("fc.")}
    assert ours.keys() == cached.keys()
    assert all(torch.equal(ours[k], cached[k]) for k in cached)
    fresh = resnet18_transfer(num_classes=3, freeze_encoder=False)
    assert not torch.equal(fresh.encoder.conv1.weight, cached["conv1.weight"])
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3, 32, 32)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),  # a cut-off copy
        lambda p: p.write_bytes(b"not a checkpoint"),
        lambda p: torch.save({"format": 1, "options": {}, "state_dict": {}}, p),  # another's
        lambda p: torch.save(torchvision.models.resnet18().state_dict(), p),  # ImageNet's kind
    ],
    ids=["truncated", "garbage", "other-options", "plain-state-dict"],
)
def test_a_damaged_file_gives_one_clear_error(hub, trainings, damage):
    """Does a truncated, corrupt or foreign cache file raise PretrainCacheError naming the
    file, what was expected and what came, and saying to delete it, instead of retraining?"""
    path = ensure_shapes_pretrained()
    damage(path)
    with pytest.raises(PretrainCacheError) as info:
        resnet18_transfer(num_classes=2, pretrained_backbone="shapes")
    message = str(info.value)
    assert str(path) in message and "expected" in message and "got" in message
    assert "Delete the file" in message and "labkit pretrain" in message
    assert isinstance(info.value, ValueError) and len(trainings) == 1


def test_the_images_come_from_a_stream_no_lab_set_uses():
    """Are the pretraining scenes none of a lab set's training or validation images, and is
    each crop labelled with a family and a pattern?"""
    images, targets = pretraining_set(TINY, start=0, count=8)
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 32, 32)
    assert len(images) == len(targets) >= 8  # about 1.5 crops per scene
    assert targets.dtype == torch.int64 and targets.shape[1] == 2
    assert 0 <= targets[:, 0].min() and targets[:, 0].max() < 10 and targets[:, 1].max() < 8
    drawn = draw_shapes_image(0, stream="pretrain", size=32, num_classes=81)[0]
    for split in ("train", "val"):
        lab = draw_shapes_image(0, stream=split, size=32, num_classes=81)[0]
        assert (drawn != lab).any()


def test_accuracy_counts_family_and_pattern_apart():
    """Does accuracy score the family logits and the pattern logits each on their own?"""
    logits = torch.zeros(2, len(LABELS))
    logits[0, 3] = logits[1, 4] = 1.0  # families 3, 4
    logits[0, 10 + 7] = logits[1, 10 + 7] = 1.0  # pattern 7 twice
    targets = torch.tensor([[3, 7], [5, 0]])
    assert accuracy(logits, targets) == {"family": 0.5, "pattern": 0.5}


def test_pretraining_learns_what_a_random_network_cannot(hub):
    """On crops of held-out scenes of the pretraining task, does the cached encoder with the
    cached pretraining head name the shape family more often than a random ResNet-18 and
    than the best constant guess (the commonest family)? Seconds of pretraining already
    lift it well clear of both (about 21 % against 11 and 12 % here)."""
    options = PretrainOptions(num_images=160, held_out=0, size=48, crop=24, epochs=2)
    options = dataclasses.replace(options, batch_size=16)
    ensure_shapes_pretrained(options)
    record = torch.load(shapes_pretrained_path(options), weights_only=True)
    net = torchvision.models.resnet18(num_classes=len(LABELS))
    head = {f"fc.{k}": v for k, v in record["head"].items()}
    net.load_state_dict({**record["state_dict"], **head})
    torch.manual_seed(0)
    random = torchvision.models.resnet18(num_classes=len(LABELS))
    crops, targets = pretraining_set(options, start=options.num_images, count=300)
    assert len(crops) > 400
    with torch.no_grad():
        ours = accuracy(net.eval()(pretrain._normalize(crops)), targets)["family"]
        theirs = accuracy(random.eval()(pretrain._normalize(crops)), targets)["family"]
    commonest = torch.bincount(targets[:, 0]).max().item() / len(targets)
    assert ours > max(theirs, commonest) + 0.05, (ours, theirs, commonest)


def test_the_lesson06_presets_differ_only_in_the_pretrained_encoder():
    """Do lesson06_scratch_quick and lesson06_pretrained_quick load and differ in nothing but
    model_options.pretrained_backbone (and their names and descriptions)?"""
    scratch = load_preset("lesson06_scratch_quick").to_dict()
    pretrained = load_preset("lesson06_pretrained_quick").to_dict()
    assert scratch["model_options"].pop("pretrained_backbone") is False
    assert pretrained["model_options"].pop("pretrained_backbone") == "shapes"
    for key in ("name", "description"):
        assert scratch.pop(key) != pretrained.pop(key)
    assert scratch == pretrained
    assert scratch["profile"] == "quick" and scratch["cpu_threads"] == 1
    assert scratch["model_options"]["freeze_encoder"] is True  # both freeze it, as lab 06 does
