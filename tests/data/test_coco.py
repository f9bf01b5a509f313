"""Tests for labkit.data.coco: COCO instances to VOC-category masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from torchvision import tv_tensors
from torchvision.transforms.functional import pil_to_tensor

from labkit.data import DatasetNotFoundError
from labkit.data.coco import COCOSegmentation
from labkit.data.palette import VOC_CLASSES

# The category list of torchvision's references/segmentation/coco_utils.py, written out here
# independently of labkit: VOC class i is COCO category CAT_LIST[i].
CAT_LIST = [0, 5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72]
PERSON, BICYCLE, CAR, BIRD, CAT, DOG, SHEEP, TV, UMBRELLA = 1, 2, 3, 16, 17, 18, 20, 72, 28


def _box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's iscrowd format: run lengths over the column-major pixels, zeros first."""
    flat = mask.T.reshape(-1).astype(np.int64)
    edges = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": counts}


def _area(segm, h: int, w: int) -> float:
    if isinstance(segm, dict):
        rle = segm if isinstance(segm["counts"], str) else mask_utils.frPyObjects(segm, h, w)
    else:
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
    return float(mask_utils.area(rle))


def _write_coco(root: Path, split: str) -> Path:
    """Write annotations/instances_<split>.json and <split>/*.jpg for five small images."""
    rng = np.random.default_rng(0)
    images = [  # id, width, height
        (3, 64, 48),
        (1, 40, 30),
        (2, 50, 40),
        (7, 64, 48),
        (5, 64, 48),
    ]
    crowd = np.zeros((48, 64), np.uint8)
    crowd[30:46, 40:62] = 1
    tv = np.zeros((40, 50), np.uint8)
    tv[5:12, 30:44] = 1
    compressed = mask_utils.encode(np.asfortranarray(tv))
    compressed["counts"] = compressed["counts"].decode("ascii")
    anns = [  # image id, category, segmentation, iscrowd
        (3, PERSON, [_box(2, 2, 40, 40)], 0),  # big person
        (3, PERSON, [_box(30, 10, 50, 30)], 0),  # overlaps the first: 255
        (3, DOG, [[20.5, 20, 36, 44, 5, 44]], 0),  # triangle over both persons
        (3, UMBRELLA, [_box(0, 0, 20, 20)], 0),  # not a VOC class: ignored
        (3, CAT, [_box(52, 2, 62, 10), _box(54, 14, 63, 22)], 0),  # one instance, two parts
        (3, CAR, _uncompressed_rle(crowd), 1),  # crowd region as RLE
        (2, BIRD, [_box(3, 3, 12, 12)], 0),  # small: 81 pixels
        (2, TV, compressed, 0),  # compressed RLE: 98 pixels
        (7, UMBRELLA, [_box(0, 0, 60, 40)], 0),  # only a non-VOC class
        (5, SHEEP, [_box(0, 0, 25, 24)], 0),  # 600 pixels each,
        (5, SHEEP, [_box(30, 0, 55, 24)], 0),  # 1200 together
        (5, BICYCLE, [_box(10, 30, 20, 40)], 0),
    ]
    sizes = {i: (h, w) for i, w, h in images}
    data = {
        "images": [
            {"id": i, "width": w, "height": h, "file_name": f"{i:012d}.jpg"} for i, w, h in images
        ],
        "annotations": [
            {
                "id": k + 1,
                "image_id": img,
                "category_id": cat,
                "segmentation": seg,
                "iscrowd": crowd_flag,
                "area": _area(seg, *sizes[img]),
                "bbox": [0, 0, 1, 1],
            }
            for k, (img, cat, seg, crowd_flag) in enumerate(anns)
        ],
        "categories": [
            {"id": c, "name": str(c), "supercategory": ""}
            for c in (PERSON, BICYCLE, CAR, BIRD, CAT, DOG, SHEEP, TV, UMBRELLA)
        ],
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / split).mkdir(parents=True, exist_ok=True)
    ann_file = root / "annotations" / f"instances_{split}.json"
    ann_file.write_text(json.dumps(data))
    for i, w, h in images:
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            root / split / f"{i:012d}.jpg"
        )
    return ann_file


def _reference_mask(coco: COCO, image_id: int) -> np.ndarray:
    """Slow and obvious: for every pixel, list the VOC-category instances that cover it."""
    info = coco.imgs[image_id]
    anns = [
        a
        for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=None))
        if a["category_id"] in CAT_LIST
    ]
    inside = [coco.annToMask(a) for a in anns]
    out = np.zeros((info["height"], info["width"]), np.int64)
    for y in range(info["height"]):
        for x in range(info["width"]):
            covering = [CAT_LIST.index(a["category_id"]) for a, m in zip(anns, inside) if m[y, x]]
            out[y, x] = 0 if not covering else covering[0] if len(covering) == 1 else 255
    return out


@pytest.fixture
def coco_val(tmp_path: Path) -> tuple[Path, COCO]:
    ann_file = _write_coco(tmp_path, "val2017")
    return tmp_path, COCO(str(ann_file))


def test_masks_match_per_pixel_reference(coco_val: tuple[Path, COCO]) -> None:
    """Does every mask equal a per-pixel pycocotools reference (VOC ids, overlaps 255)?"""
    root, coco = coco_val
    ds = COCOSegmentation(root, split="val2017")
    assert ds.ids == [1, 2, 3, 5, 7]  # validation keeps every image, in id order
    for i, image_id in enumerate(ds.ids):
        image, mask = ds[i]
        expected = _reference_mask(coco, image_id)
        assert mask.dtype == torch.int64
        assert torch.equal(mask, torch.from_numpy(expected)), f"image {image_id}"
        with Image.open(root / "val2017" / f"{image_id:012d}.jpg") as ref:
            assert torch.equal(image, pil_to_tensor(ref.convert("RGB")).float() / 255)


def test_mask_content_of_the_busy_image(coco_val: tuple[Path, COCO]) -> None:
    """Does the busy image hold person, dog, cat, car, overlaps as 255 and no umbrella?"""
    root, _ = coco_val
    _, mask = COCOSegmentation(root, split="val2017")[2]  # image id 3
    values = set(mask.unique().tolist())
    voc = {name: VOC_CLASSES.index(name) for name in ("person", "dog", "cat", "car")}
    assert values == {0, 255, *voc.values()}
    assert mask[5, 5] == voc["person"]  # under the umbrella, which does not count
    assert mask[15, 35] == 255  # two persons overlap
    assert mask[5, 56] == voc["cat"] and mask[18, 58] == voc["cat"]  # both parts of one cat
    assert mask[12, 58] == 0  # between the parts
    assert mask[40, 50] == voc["car"]


def test_train_split_drops_images_like_the_reference(tmp_path: Path) -> None:
    """Are train images without > 1000 px of VOC instances dropped, and kept when drop_empty=False?"""
    _write_coco(tmp_path, "train2017")
    # 1: no annotations; 2: 81 + 98 px; 7: only an umbrella; 3 and 5 (600 + 600 + 100 px) stay.
    assert COCOSegmentation(tmp_path, split="train2017").ids == [3, 5]
    assert COCOSegmentation(tmp_path, split="train2017", drop_empty=False).ids == [1, 2, 3, 5, 7]
    _write_coco(tmp_path, "val2017")
    assert COCOSegmentation(tmp_path, split="val2017", drop_empty=True).ids == [3, 5]


def test_transforms_and_attributes(coco_val: tuple[Path, COCO]) -> None:
    """Do transforms get Image uint8 and Mask, and are classes the 21 VOC names?"""
    root, _ = coco_val
    ds = COCOSegmentation(root, transforms=lambda img, m: (img, m))
    image, mask = ds[2]
    assert type(image) is tv_tensors.Image and image.dtype == torch.uint8
    assert type(mask) is tv_tensors.Mask and mask.shape == (48, 64)
    assert ds.classes == VOC_CLASSES and ds.num_classes == 21 and len(ds) == 5


def test_missing_annotation_file(tmp_path: Path) -> None:
    """Does a root without the json raise naming it and the expected layout?"""
    with pytest.raises(DatasetNotFoundError, match="instances_val2017.json") as err:
        COCOSegmentation(tmp_path)
    assert "LABKIT_DATA" in str(err.value)


def test_missing_image_and_bad_json(coco_val: tuple[Path, COCO]) -> None:
    """Are a listed image that is absent and a json that is not COCO reported?"""
    root, _ = coco_val
    (root / "val2017" / f"{5:012d}.jpg").unlink()
    with pytest.raises(DatasetNotFoundError, match="000000000005.jpg"):
        COCOSegmentation(root)
    (root / "annotations" / "instances_val2017.json").write_text('{"images": []}')
    with pytest.raises(DatasetNotFoundError, match="annotations"):
        COCOSegmentation(root)
