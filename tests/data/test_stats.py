"""Tests for labkit.data.stats: per-class pixel counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labkit.data.stats import class_pixel_counts


def _random_masks(n: int, num_classes: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = []
    for k in range(n):
        m = rng.integers(0, num_classes, (7 + k, 11 - k))
        m[rng.random(m.shape) < 0.2] = 255
        masks.append(m)
    return masks


def _numpy_counts(masks: list[np.ndarray], num_classes: int) -> np.ndarray:
    """The obvious oracle: for each class, the number of pixels equal to it."""
    return np.array([sum(int((m == c).sum()) for m in masks) for c in range(num_classes)])


def test_counts_match_numpy_on_pairs() -> None:
    """On (image, mask) pairs with ignored pixels, do counts equal a numpy count per class?"""
    masks = _random_masks(5, 6)
    dataset = [(torch.rand(3, *m.shape), torch.from_numpy(m).long()) for m in masks]
    counts = class_pixel_counts(dataset, 6)
    assert counts.dtype == torch.int64 and counts.shape == (6,)
    assert counts.tolist() == _numpy_counts(masks, 6).tolist()
    assert int(counts.sum()) == sum(int((m != 255).sum()) for m in masks)  # 255 not counted


def test_bare_masks_numpy_and_absent_classes() -> None:
    """Do bare numpy/uint8 masks work, and do classes that never occur count 0?"""
    masks = [m.astype(np.uint8) for m in _random_masks(3, 4, seed=1)]
    counts = class_pixel_counts(masks, 9)
    assert counts.tolist() == _numpy_counts(masks, 9).tolist()
    assert counts[4:].eq(0).all() and counts[:4].gt(0).all()


def test_max_items() -> None:
    """Does max_items count only the first items?"""
    masks = _random_masks(6, 3, seed=2)
    assert (
        class_pixel_counts(masks, 3, max_items=2).tolist() == _numpy_counts(masks[:2], 3).tolist()
    )
    assert class_pixel_counts(masks, 3, max_items=0).tolist() == [0, 0, 0]
    assert class_pixel_counts(masks, 3, max_items=99).tolist() == _numpy_counts(masks, 3).tolist()


@pytest.mark.parametrize("bad", [3, 254, -1, 256])
def test_label_out_of_range_is_named(bad: int) -> None:
    """Is a label outside [0, C) and not 255 a ValueError naming the label and the item?"""
    masks = _random_masks(3, 3, seed=3)
    masks[2][0, 0] = bad
    with pytest.raises(ValueError, match=rf"item 2 has label\(s\) \[{bad}\]"):
        class_pixel_counts(masks, 3)


@pytest.mark.parametrize("num_classes", [0, 256, 2.0])
def test_bad_num_classes(num_classes) -> None:
    """Is a num_classes that leaves no room for the ignore label 255 rejected?"""
    with pytest.raises(ValueError, match="num_classes"):
        class_pixel_counts([np.zeros((2, 2), np.int64)], num_classes)


def test_float_mask_rejected() -> None:
    """Is a float mask (an image passed by mistake) a ValueError naming the dtype?"""
    with pytest.raises(ValueError, match="float32"):
        class_pixel_counts([(torch.zeros(2, 2), torch.zeros(2, 2))], 3)


def test_counts_accept_read_only_pil_arrays_without_warning():
    """Does a mask given as np.asarray(PIL image) (read-only) count without a warning?"""
    import warnings

    from PIL import Image

    mask = np.asarray(Image.fromarray(np.array([[0, 1], [255, 1]], dtype=np.uint8)))
    assert not mask.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        counts = class_pixel_counts([(None, mask)], 2)
    assert counts.tolist() == [1, 2]
