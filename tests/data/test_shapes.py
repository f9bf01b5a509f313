"""Tests for labkit.data.shapes: the generated Shapes set in Pascal VOC layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision.datasets import VOCSegmentation

from labkit.data.palette import voc_colormap
from labkit.data.shapes import (
    SHAPES_CLASSES,
    class_attributes,
    draw_shapes_image,
    generate_shapes,
    shapes_classes,
)


def _voc(root: Path) -> Path:
    return root / "VOCdevkit" / "VOC2012"


def _ids(root: Path, split: str) -> list[str]:
    return (_voc(root) / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()


def _mask(root: Path, image_id: str) -> np.ndarray:
    return np.array(Image.open(_voc(root) / "SegmentationClass" / f"{image_id}.png"))


def _objects(root: Path) -> dict[str, list[dict]]:
    return json.loads((_voc(root) / "shapes_objects.json").read_text())


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return generate_shapes(
        tmp_path_factory.mktemp("small"),
        num_train=12,
        num_val=5,
        size=64,
        num_classes=7,
        seed=1,
        workers=1,
    )


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """A set large enough for stable class and size statistics (600 images of 64 px)."""
    return generate_shapes(
        tmp_path_factory.mktemp("big"), num_train=600, num_val=0, size=64, seed=0, workers=2
    )


@pytest.fixture(scope="module")
def rigid_and_warped(tmp_path_factory) -> tuple[Path, Path]:
    kw = dict(num_train=250, num_val=0, size=64, seed=4, workers=2)
    return (
        generate_shapes(tmp_path_factory.mktemp("rigid"), deformation=0.0, **kw),
        generate_shapes(tmp_path_factory.mktemp("warped"), deformation=1.0, **kw),
    )


def test_layout_and_formats_match_voc(small):
    """Are the folders, split files, JPEGs and palette PNGs exactly as in Pascal VOC 2012?"""
    voc = _voc(small)
    train, val, trainval = _ids(small, "train"), _ids(small, "val"), _ids(small, "trainval")
    assert len(train) == 12 and len(val) == 5 and trainval == train + val
    assert len(set(trainval)) == 17
    assert {p.stem for p in (voc / "JPEGImages").glob("*.jpg")} == set(trainval)
    assert {p.stem for p in (voc / "SegmentationClass").glob("*.png")} == set(trainval)
    for image_id in trainval:
        with Image.open(voc / "JPEGImages" / f"{image_id}.jpg") as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (64, 64))
        with Image.open(voc / "SegmentationClass" / f"{image_id}.png") as m:
            assert (m.format, m.mode, m.size) == ("PNG", "P", (64, 64))
            palette = np.array(m.getpalette(), np.uint8).reshape(-1, 3)
            np.testing.assert_array_equal(palette, voc_colormap())
            values = set(np.unique(np.array(m)).tolist())
        assert values <= set(range(7)) | {255}
    meta = json.loads((voc / "shapes.json").read_text())
    assert meta["classes"] == list(shapes_classes(7))
    assert meta["arguments"] == dict(
        num_train=12, num_val=5, size=64, num_classes=7, seed=1, deformation=0.5
    )


def test_torchvision_reads_the_set(small):
    """Does torchvision's VOCSegmentation read every split, with masks equal to the PNGs?"""
    for split, n in (("train", 12), ("val", 5), ("trainval", 17)):
        ds = VOCSegmentation(str(small), year="2012", image_set=split)
        assert len(ds) == n
    ds = VOCSegmentation(str(small), year="2012", image_set="val")
    img, target = ds[2]
    assert img.mode == "RGB" and target.mode == "P"
    np.testing.assert_array_equal(np.array(target), _mask(small, _ids(small, "val")[2]))


def test_same_arguments_give_identical_bytes_whatever_the_workers(tmp_path):
    """Same seed -> byte-identical files with 1 or 2 processes; another seed or index -> others?"""
    kw = dict(num_train=36, num_val=4, size=64)  # above the in-process cut-off of 32
    a = generate_shapes(tmp_path / "a", seed=5, workers=1, **kw)
    b = generate_shapes(tmp_path / "b", seed=5, workers=2, **kw)
    c = generate_shapes(tmp_path / "c", seed=6, workers=2, **kw)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 2 * 40 + 5
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    masks = [p.relative_to(a) for p in (_voc(a) / "SegmentationClass").glob("*.png")]
    same = sum((a / rel).read_bytes() == (c / rel).read_bytes() for rel in masks)
    assert same == 0
    images = {
        (a / "VOCdevkit/VOC2012/JPEGImages" / f"{i}.jpg").read_bytes() for i in _ids(a, "trainval")
    }
    assert len(images) == 40, "every image (train and val) should be drawn from its own seed"


def test_falls_back_to_one_process_when_workers_cannot_start(tmp_path, monkeypatch):
    """When worker processes cannot start, is the same set drawn in this process?"""
    import labkit.data.shapes as shapes_module

    kw = dict(num_train=34, num_val=0, size=32, seed=3)
    ref = generate_shapes(tmp_path / "ref", workers=1, **kw)

    class NoPool:
        def __init__(self, *args, **kwargs):
            raise OSError("no /dev/shm in this sandbox")

    monkeypatch.setattr(shapes_module, "ProcessPoolExecutor", NoPool)
    out = generate_shapes(tmp_path / "out", workers=2, **kw)
    for p in (_voc(ref) / "SegmentationClass").glob("*.png"):
        assert p.read_bytes() == (_voc(out) / "SegmentationClass" / p.name).read_bytes()
    assert len(_ids(out, "train")) == 34


def test_void_band_separates_objects_from_background(big):
    """Is there a thin 255 band between background and objects, as in VOC?"""
    touching = straddling = void = total = 0
    for image_id in _ids(big, "train")[:200]:
        m = _mask(big, image_id).astype(np.int64)
        bg, fg, vd = m == 0, (m > 0) & (m < 255), m == 255
        # no background pixel may touch an object pixel directly (4-neighbourhood)
        touching += int(
            (bg[1:] & fg[:-1]).sum()
            + (fg[1:] & bg[:-1]).sum()
            + (bg[:, 1:] & fg[:, :-1]).sum()
            + (fg[:, 1:] & bg[:, :-1]).sum()
        )
        # a 2-px band: most void pixels see both sides within their 5x5 neighbourhood
        pad = np.pad(m, 2, constant_values=-1)
        win = np.stack([pad[dy : dy + 64, dx : dx + 64] for dy in range(5) for dx in range(5)])
        near_bg, near_fg = (win == 0).any(0), ((win > 0) & (win < 255)).any(0)
        straddling += int((vd & near_bg & near_fg).sum())
        void += int(vd.sum())
        total += m.size
    assert touching == 0
    assert void > 0 and straddling / void > 0.6
    assert 0.01 < void / total < 0.12  # 2 px wide: about 9 % at 64 px, 4 % at 128


def test_class_frequencies_are_long_tailed(big):
    """Is background the largest class, and the rarest shape class >= 20x rarer than the top?"""
    counts = np.zeros(256, np.int64)
    for image_id in _ids(big, "train"):
        counts += np.bincount(_mask(big, image_id).ravel(), minlength=256)
    fg = counts[1:21]
    assert (fg > 0).all(), "every shape class should occur"
    assert counts[0] > fg.max()
    assert fg.max() / fg.min() >= 20
    meta = json.loads((_voc(big) / "shapes.json").read_text())
    assert meta["pixel_counts"]["train"] == counts[:21].tolist()
    assert meta["void_pixels"]["train"] == counts[255]


def test_object_sizes_span_six_fold(big):
    """Do visible object sizes, measured from the masks, span at least a 6x range?"""
    objects = _objects(big)
    sizes, scales = [], []
    for image_id in _ids(big, "train"):
        m, objs = _mask(big, image_id), objects[image_id]
        classes = [o["class"] for o in objs]
        for o in objs:
            if classes.count(o["class"]) == 1 and o["occluded"] == 0:
                n = int((m == o["class"]).sum())
                assert n == o["visible"]  # metadata agrees with the mask
                sizes.append(np.sqrt(n))
                scales.append(o["scale"])
    sizes, scales = np.array(sizes), np.array(scales)
    assert len(sizes) > 300
    p5, p95 = np.percentile(sizes, [5, 95])
    assert p95 / p5 >= 6
    s5, s95 = np.percentile(scales, [5, 95])
    assert s95 / s5 >= 6
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    assert np.corrcoef(rank(sizes), rank(scales))[0, 1] > 0.7


def test_objects_are_large_enough_to_learn(big):
    """Are objects big enough for a stride-32 FCN: none tiny, most large, ~30 % foreground?"""
    objects = _objects(big)
    scales = np.array([o["scale"] for objs in objects.values() for o in objs])
    assert scales.min() >= 0.05 * 64  # no 2-px specks at 64 px
    assert np.median(scales) >= 0.25 * 64
    counts = np.zeros(256, np.int64)
    for image_id in _ids(big, "train"):
        counts += np.bincount(_mask(big, image_id).ravel(), minlength=256)
    background = counts[0] / counts[:21].sum()
    assert 0.5 < background < 0.8  # Pascal VOC: about 70 %


def _rect_fill(region: np.ndarray) -> tuple[float, int, int]:
    ys, xs = np.nonzero(region)
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    return region.sum() / (h * w), int(h), int(w)


def test_deformation_changes_shapes_but_not_layout(rigid_and_warped):
    """With deformation=0 are squares upright rectangles, and does deformation=1 warp them?"""
    rigid, warped = rigid_and_warped
    obj_r, obj_w = _objects(rigid), _objects(warped)
    changed = fg_total = 0
    fills = {"rigid": [], "warped": []}
    square = SHAPES_CLASSES.index("square")
    for image_id in _ids(rigid, "train"):
        assert [(o["class"], o["center"], o["scale"]) for o in obj_r[image_id]] == [
            (o["class"], o["center"], o["scale"]) for o in obj_w[image_id]
        ]
        mr, mw = _mask(rigid, image_id), _mask(warped, image_id)
        fg = ((mr > 0) & (mr < 255)) | ((mw > 0) & (mw < 255))
        changed += int((fg & (mr != mw)).sum())
        fg_total += int(fg.sum())
        for name, m, objs in (("rigid", mr, obj_r[image_id]), ("warped", mw, obj_w[image_id])):
            squares = [o for o in objs if o["class"] == square]
            if (
                len(squares) == 1
                and squares[0]["occluded"] == 0
                and not squares[0]["truncated"]
                and squares[0]["visible"] >= 16
            ):
                fills[name].append(_rect_fill(m == square))
    assert changed / fg_total > 0.3
    assert len(fills["rigid"]) >= 5 and len(fills["warped"]) >= 5
    for fill, h, w in fills["rigid"]:  # an axis-aligned square: fills its box exactly
        assert fill == 1.0 and abs(h - w) <= 1
    warped_fill = np.array([f for f, _, _ in fills["warped"]])
    assert (warped_fill < 0.97).mean() > 0.5


def test_colour_alone_does_not_tell_classes_apart(big):
    """Does a colour look-up table (fit on 400 images) label under half the object pixels right?"""
    voc, ids = _voc(big), _ids(big, "train")
    table = np.zeros((16**3, 21), np.int64)

    def pixels(image_id):
        rgb = np.array(Image.open(voc / "JPEGImages" / f"{image_id}.jpg")).reshape(-1, 3) // 16
        y = _mask(big, image_id).ravel()
        keep = (y > 0) & (y < 21)
        return (rgb[keep, 0].astype(np.int64) * 16 + rgb[keep, 1]) * 16 + rgb[keep, 2], y[keep]

    for image_id in ids[:400]:
        key, y = pixels(image_id)
        np.add.at(table, (key, y), 1)
    hits = seen = 0
    for image_id in ids[400:]:
        key, y = pixels(image_id)
        hits += int((table[key].argmax(1) == y).sum())
        seen += len(y)
    assert hits / seen < 0.5


def test_class_names():
    """Are class names unique, stable across num_classes, and 21 by default?"""
    assert len(SHAPES_CLASSES) == 21 and SHAPES_CLASSES[0] == "background"
    assert SHAPES_CLASSES[:3] == ("background", "disc", "square")
    assert shapes_classes(11) == SHAPES_CLASSES[:11]
    names = shapes_classes(255)
    assert len(set(names)) == 255 and names[:21] == SHAPES_CLASSES
    assert shapes_classes(2) == ("background", "disc")


def test_more_classes_than_default(tmp_path):
    """Does a 40-class set write labels beyond 20 with the palette intact?"""
    root = generate_shapes(tmp_path, num_train=30, num_val=0, size=48, num_classes=40, seed=2)
    labels = set()
    for image_id in _ids(root, "train"):
        labels |= set(np.unique(_mask(root, image_id)).tolist())
    assert labels <= set(range(40)) | {255}
    assert max(labels - {255}) > 20


def test_second_call_with_same_arguments_reuses_the_set(tmp_path):
    """Is a complete set with the same arguments left untouched, and redrawn when they differ?"""
    generate_shapes(tmp_path, num_train=3, num_val=1, size=32)
    png = _voc(tmp_path) / "SegmentationClass" / "train_000000.png"
    png.write_bytes(b"sentinel")
    generate_shapes(tmp_path, num_train=3, num_val=1, size=32, workers=1)
    assert png.read_bytes() == b"sentinel"
    generate_shapes(tmp_path, num_train=3, num_val=1, size=32, seed=9)
    assert png.read_bytes() != b"sentinel"


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(num_train=-1), "num_train"),
        (dict(num_val=-3), "num_val"),
        (dict(size=16), "size"),
        (dict(num_classes=1), "num_classes"),
        (dict(num_classes=256), "num_classes"),
        (dict(deformation=1.5), "deformation"),
        (dict(deformation=-0.1), "deformation"),
        (dict(seed=-1), "seed"),
        (dict(workers=0), "workers"),
    ],
)
def test_bad_arguments_raise(tmp_path, kwargs, word):
    """Do out-of-range arguments raise a ValueError naming what was expected and what came?"""
    args = dict(num_train=2, num_val=1, size=32) | kwargs
    with pytest.raises(ValueError, match=rf"expected {word} .*; got "):
        generate_shapes(tmp_path, **args)
    assert not (tmp_path / "VOCdevkit").exists()


def test_bad_num_classes_for_names():
    """Does shapes_classes reject a class count outside [2, 255]?"""
    with pytest.raises(ValueError, match="expected num_classes"):
        shapes_classes(300)


def test_draw_shapes_image_is_the_written_image_and_pretrain_is_another_stream(small):
    """Does draw_shapes_image(i, stream=split) give the mask and objects the set holds for
    <split>_<i>, and the "pretrain" stream images that neither split holds?"""
    args = json.loads((_voc(small) / "shapes.json").read_text())["arguments"]
    kw = {k: args[k] for k in ("size", "num_classes", "seed", "deformation")}
    objects = _objects(small)
    for split in ("train", "val"):
        image, mask, objs = draw_shapes_image(1, stream=split, **kw)
        assert image.shape == (kw["size"], kw["size"], 3) and image.dtype == np.uint8
        assert np.array_equal(mask, _mask(small, f"{split}_000001"))
        assert objs == objects[f"{split}_000001"]
    pretrain = draw_shapes_image(1, stream="pretrain", **kw)[1]
    assert not any(np.array_equal(pretrain, _mask(small, f"{s}_000001")) for s in ("train", "val"))
    with pytest.raises(ValueError, match="stream"):
        draw_shapes_image(0, stream="test", **kw)


def test_class_attributes_follow_the_class_order():
    """Is class k the (family, pattern, style) its name says, family varying fastest?"""
    assert class_attributes(1) == ("disc", "plain", "filled")
    assert class_attributes(12) == ("square", "striped", "filled")
    for k in (1, 12, 45, 81, 120):
        family, pattern, style = class_attributes(k)
        assert shapes_classes(k + 1)[k].split()[-1] == family
    with pytest.raises(ValueError, match="class_id"):
        class_attributes(0)
