"""Tests for labkit.data.ade20k: the ADEChallengeData2016 reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms.functional import pil_to_tensor

from labkit.data import DatasetNotFoundError
from labkit.data.ade20k import ADE20K, ADE20K_CLASSES

NAMES = {
    "training": ["ADE_train_00000002", "ADE_train_00000001", "ADE_train_00000003"],
    "validation": ["ADE_val_00000001"],
}


def _write_ade(root: Path, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a tiny ADEChallengeData2016 tree: RGB JPEGs and grey PNGs with labels 0..150."""
    rng = np.random.default_rng(seed)
    labels = {}
    base = root / "ADEChallengeData2016"
    for split, names in NAMES.items():
        (base / "images" / split).mkdir(parents=True)
        (base / "annotations" / split).mkdir(parents=True)
        for k, name in enumerate(names):
            h, w = 20 + 7 * k, 31 - 3 * k
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
                base / "images" / split / f"{name}.jpg"
            )
            label = rng.integers(0, 151, (h, w), dtype=np.uint8)
            label[0, :3] = (0, 1, 150)  # the extremes are always present
            Image.fromarray(label, mode="L").save(base / "annotations" / split / f"{name}.png")
            labels[name] = label
    return labels


def test_reads_images_and_reduces_zero_label(tmp_path: Path) -> None:
    """Are images the JPEG pixels and masks the PNG labels with 0 -> 255 and k -> k - 1?"""
    labels = _write_ade(tmp_path)
    ds = ADE20K(tmp_path, split="training")
    assert ds.ids == sorted(NAMES["training"])
    for i, name in enumerate(ds.ids):
        image, mask = ds[i]
        with Image.open(tmp_path / "ADEChallengeData2016/images/training" / f"{name}.jpg") as ref:
            assert torch.equal(image, pil_to_tensor(ref.convert("RGB")).float() / 255)
        raw = labels[name].astype(np.int64)
        expected = np.where(raw == 0, 255, raw - 1)  # mmsegmentation's reduce_zero_label
        assert mask.dtype == torch.int64 and torch.equal(mask, torch.from_numpy(expected))
        assert mask.max() == 255 and mask[mask != 255].max() == 149 and mask.min() == 0


def test_validation_split_and_transforms(tmp_path: Path) -> None:
    """Does the validation split hand transforms an Image uint8 and a Mask with reduced labels?"""
    labels = _write_ade(tmp_path)
    ds = ADE20K(tmp_path, split="validation", transforms=lambda img, m: (img, m))
    image, mask = ds[0]
    assert type(image) is tv_tensors.Image and image.dtype == torch.uint8
    assert type(mask) is tv_tensors.Mask
    raw = labels["ADE_val_00000001"].astype(np.int64)
    assert torch.equal(mask.long(), torch.from_numpy(np.where(raw == 0, 255, raw - 1)))


def test_class_names() -> None:
    """Are there 150 distinct SceneParse150 names in the standard order?"""
    assert len(ADE20K_CLASSES) == 150 == ADE20K.num_classes
    assert len(set(ADE20K_CLASSES)) == 150
    # objectInfo150.csv: index 1 wall, 2 building, 3 sky, 4 floor, 5 tree, 13 person,
    # 21 car, 150 flag (ids there start at 1).
    assert ADE20K_CLASSES[:5] == ("wall", "building", "sky", "floor", "tree")
    assert ADE20K_CLASSES[12] == "person" and ADE20K_CLASSES[20] == "car"
    assert ADE20K_CLASSES[-1] == "flag"
    assert all(name == name.strip() for name in ADE20K_CLASSES)


def test_bad_split(tmp_path: Path) -> None:
    """Is an unknown split a ValueError listing the valid ones?"""
    with pytest.raises(ValueError, match="validation"):
        ADE20K(tmp_path, split="val")


def test_missing_tree(tmp_path: Path) -> None:
    """Does a root without ADEChallengeData2016 raise naming the path, layout and remedy?"""
    with pytest.raises(DatasetNotFoundError) as err:
        ADE20K(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "ADEChallengeData2016" / "images" / "training") in msg
    assert "annotations" in msg and "LABKIT_DATA" in msg


def test_image_without_annotation(tmp_path: Path) -> None:
    """Does an image whose annotation PNG is missing raise naming that file?"""
    _write_ade(tmp_path)
    (tmp_path / "ADEChallengeData2016/annotations/training/ADE_train_00000003.png").unlink()
    with pytest.raises(DatasetNotFoundError, match="ADE_train_00000003.png"):
        ADE20K(tmp_path, split="training")
