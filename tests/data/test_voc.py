"""Tests for labkit.data.voc: the Pascal VOC reader against torchvision's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.transforms.functional import pil_to_tensor

from labkit.data import DatasetNotFoundError
from labkit.data.palette import VOC_CLASSES, voc_colormap
from labkit.data.transforms import train_transforms
from labkit.data.voc import VOCSegmentation

SIZES = {
    "2007_000001": (37, 50),
    "2007_000002": (48, 64),
    "2007_000003": (30, 30),
    "2008_000004": (41, 29),
    "2008_000005": (25, 33),
}
SPLITS = {
    "train": ["2007_000001", "2007_000002", "2008_000004"],
    "val": ["2007_000003", "2008_000005"],
}


def _write_voc(root: Path, *, seed: int = 0) -> Path:
    """Write a tiny VOC 2012 tree in the real formats: RGB/grey JPEGs and palette PNGs."""
    rng = np.random.default_rng(seed)
    base = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    palette = voc_colormap().reshape(-1).tolist()
    for k, (name, (h, w)) in enumerate(SIZES.items()):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img = Image.fromarray(pixels)
        if k == 3:
            img = img.convert("L")  # VOC has a few grey JPEGs; readers must give RGB
        img.save(base / "JPEGImages" / f"{name}.jpg", quality=90)
        labels = rng.integers(0, 21, (h, w), dtype=np.uint8)
        labels[:2] = 255  # void border, as VOC draws around objects
        labels[:, -1] = 255
        mask = Image.fromarray(labels, mode="P")
        mask.putpalette(palette)
        mask.save(base / "SegmentationClass" / f"{name}.png")
    for split, ids in {**SPLITS, "trainval": SPLITS["train"] + SPLITS["val"]}.items():
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return base


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    _write_voc(tmp_path)
    return tmp_path


@pytest.mark.parametrize("split", ["train", "val", "trainval"])
def test_matches_torchvision_pixel_for_pixel(voc_root: Path, split: str) -> None:
    """Does every image and mask equal what torchvision's VOCSegmentation reads from the same files?"""
    ours = VOCSegmentation(voc_root, split=split)
    theirs = torchvision.datasets.VOCSegmentation(str(voc_root), year="2012", image_set=split)
    assert len(ours) == len(theirs) > 0
    for i in range(len(ours)):
        image, mask = ours[i]
        ref_image, ref_mask = theirs[i]
        assert image.dtype == torch.float32 and mask.dtype == torch.int64
        assert image.is_contiguous() and mask.is_contiguous()
        assert image.shape == (3, ref_image.height, ref_image.width)
        assert torch.equal(image, pil_to_tensor(ref_image).float() / 255)
        assert torch.equal(mask, torch.from_numpy(np.array(ref_mask)).long())
        assert 255 in mask.unique().tolist()


def test_attributes(voc_root: Path) -> None:
    """Are ids, classes, num_classes and len those of the split file and VOC?"""
    ds = VOCSegmentation(voc_root, split="val")
    assert ds.ids == SPLITS["val"]
    assert len(ds) == 2
    assert ds.classes == VOC_CLASSES and ds.num_classes == 21


def test_root_from_environment(voc_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Is $LABKIT_DATA used when no root is given?"""
    monkeypatch.setenv("LABKIT_DATA", str(voc_root))
    assert VOCSegmentation(split="train").ids == SPLITS["train"]


def test_trainaug_reads_sbd_labels(voc_root: Path) -> None:
    """Does split='trainaug' read the grey SegmentationClassAug PNGs and trainaug.txt?"""
    base = voc_root / "VOCdevkit" / "VOC2012"
    with pytest.raises(DatasetNotFoundError, match="SegmentationClassAug"):
        VOCSegmentation(voc_root, split="trainaug")
    (base / "SegmentationClassAug").mkdir()
    rng = np.random.default_rng(1)
    expected = {}
    for name, (h, w) in SIZES.items():
        labels = rng.integers(0, 21, (h, w), dtype=np.uint8)
        labels[0, 0] = 255
        Image.fromarray(labels, mode="L").save(base / "SegmentationClassAug" / f"{name}.png")
        expected[name] = labels
    names = list(SIZES)
    (base / "ImageSets" / "Segmentation" / "trainaug.txt").write_text("\n".join(names))
    ds = VOCSegmentation(voc_root, split="trainaug")
    assert ds.ids == names
    for i, name in enumerate(names):
        image, mask = ds[i]
        assert torch.equal(mask, torch.from_numpy(expected[name].astype(np.int64)))
        with Image.open(base / "JPEGImages" / f"{name}.jpg") as ref:
            assert torch.equal(image, pil_to_tensor(ref.convert("RGB")).float() / 255)


def test_transforms_get_tv_tensors(voc_root: Path) -> None:
    """Are transforms called with (Image uint8, Mask) holding the raw pixels, and is their result returned?"""
    plain = VOCSegmentation(voc_root, split="train")
    seen = []

    def record(image, mask):
        seen.append((image, mask))
        return "result"

    ds = VOCSegmentation(voc_root, split="train", transforms=record)
    assert ds[1] == "result"
    image, mask = seen[0]
    assert type(image) is tv_tensors.Image and image.dtype == torch.uint8
    assert type(mask) is tv_tensors.Mask and mask.shape == image.shape[-2:]
    ref_image, ref_mask = plain[1]
    assert torch.equal(image.float() / 255, ref_image)
    assert torch.equal(mask.long(), ref_mask)


def test_dataloader_with_train_transforms(voc_root: Path) -> None:
    """Does a DataLoader over the reader with train_transforms give [N, 3, h, w] float and [N, h, w] int64?"""
    ds = VOCSegmentation(voc_root, split="train", transforms=train_transforms(crop_size=24))
    images, masks = next(iter(DataLoader(ds, batch_size=3)))
    assert images.shape == (3, 3, 24, 24) and images.dtype == torch.float32
    assert masks.shape == (3, 24, 24) and masks.dtype == torch.int64
    assert set(masks.unique().tolist()) <= set(range(21)) | {255}


def test_classes_from_shapes_json(voc_root: Path) -> None:
    """Are class names taken from shapes.json when the tree has one, and a bad one rejected?"""
    base = voc_root / "VOCdevkit" / "VOC2012"
    (base / "shapes.json").write_text(json.dumps({"classes": ["background", "circle", "square"]}))
    ds = VOCSegmentation(voc_root, split="train")
    assert ds.classes == ("background", "circle", "square") and ds.num_classes == 3
    (base / "shapes.json").write_text(json.dumps({"names": ["a"]}))
    with pytest.raises(DatasetNotFoundError, match="shapes.json"):
        VOCSegmentation(voc_root, split="train")


def test_error_without_any_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without root and $LABKIT_DATA, does the error say to set LABKIT_DATA or generate Shapes?"""
    monkeypatch.delenv("LABKIT_DATA", raising=False)
    with pytest.raises(DatasetNotFoundError, match="LABKIT_DATA") as err:
        VOCSegmentation()
    assert "labkit data shapes" in str(err.value)


def test_error_names_missing_tree(tmp_path: Path) -> None:
    """Does a root without VOCdevkit raise naming the path, the layout and what to do?"""
    with pytest.raises(DatasetNotFoundError) as err:
        VOCSegmentation(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "VOCdevkit" / "VOC2012") in msg
    assert "JPEGImages" in msg and "LABKIT_DATA" in msg and "labkit data shapes" in msg


def test_error_unknown_split(voc_root: Path) -> None:
    """Does a split without its .txt file raise naming the file and the splits present?"""
    with pytest.raises(DatasetNotFoundError, match="test.txt") as err:
        VOCSegmentation(voc_root, split="test")
    assert "trainval" in str(err.value)


@pytest.mark.parametrize("folder,suffix", [("JPEGImages", ".jpg"), ("SegmentationClass", ".png")])
def test_error_listed_id_without_file(voc_root: Path, folder: str, suffix: str) -> None:
    """Does a listed id whose image or mask is missing raise naming that file?"""
    (voc_root / "VOCdevkit" / "VOC2012" / folder / f"2007_000002{suffix}").unlink()
    with pytest.raises(DatasetNotFoundError, match=f"2007_000002\\{suffix}"):
        VOCSegmentation(voc_root, split="train")
    assert len(VOCSegmentation(voc_root, split="val")) == 2  # other splits are unaffected


def test_error_mask_size_or_mode(voc_root: Path) -> None:
    """Are a mask of the wrong size and an RGB (colour-coded) mask reported as malformed?"""
    seg = voc_root / "VOCdevkit" / "VOC2012" / "SegmentationClass"
    Image.fromarray(np.zeros((10, 10), np.uint8), mode="L").save(seg / "2007_000001.png")
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(seg / "2007_000002.png")
    ds = VOCSegmentation(voc_root, split="train")
    with pytest.raises(DatasetNotFoundError, match="10x10"):
        ds[0]
    with pytest.raises(DatasetNotFoundError, match="'RGB'"):
        ds[1]
