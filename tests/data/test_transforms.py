"""Tests for labkit.data.transforms: paired image/mask augmentation."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import tv_tensors

from labkit.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transforms, train_transforms

# 27 well-separated, never-black colours: class c is drawn as COLOURS[c]; 26 stands for void.
COLOURS = torch.tensor(list(itertools.product((60, 150, 240), repeat=3)), dtype=torch.float32)
VOID_COLOUR = 26


def _coded_pair(
    h: int = 48, w: int = 64, block: int = 8, void: bool = True, seed: int = 0
) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """An image whose colour at each pixel says the mask's class there (blocks of classes)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, 21, (h // block + 1, w // block + 1), generator=g)
    mask = coarse.repeat_interleave(block, 0).repeat_interleave(block, 1)[:h, :w].clone()
    if void:
        mask[h // 3 : h // 3 + block, :] = 255
    index = torch.where(mask == 255, VOID_COLOUR, mask)
    image = COLOURS[index].permute(2, 0, 1).to(torch.uint8)  # (3, H, W)
    return tv_tensors.Image(image), tv_tensors.Mask(mask.to(torch.uint8))


def _decode_classes(image: torch.Tensor) -> torch.Tensor:
    """Class whose colour is nearest each pixel of a [3, H, W] image in [0, 1]."""
    # On a product grid the nearest colour is the nearest level in each channel.
    digits = ((image * 255 - 60) / 90).round().clamp(0, 2).long()  # (3, H, W) in {0, 1, 2}
    nearest = digits[0] * 9 + digits[1] * 3 + digits[2]
    return torch.where(nearest == VOID_COLOUR, 255, nearest)


def _interior(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Pixels whose (2r+1)^2 neighbourhood in the mask holds one label (not 255)."""
    m = mask[None, None].float()
    k = 2 * radius + 1
    hi = F.max_pool2d(m, k, 1, radius)
    lo = -F.max_pool2d(-m, k, 1, radius)
    inner = torch.zeros_like(mask, dtype=torch.bool)
    inner[radius:-radius, radius:-radius] = True  # the border has no full neighbourhood
    return (hi == lo)[0, 0] & inner & (mask != 255)


CONFIGS = {
    "scale-crop": dict(crop_size=32),
    "scale-crop-rect": dict(crop_size=(40, 24), scale=(0.5, 2.0)),
    "flip": dict(crop_size=32, hflip=1.0),
    "rotate": dict(crop_size=32, rotate=30.0),
    "blur": dict(crop_size=32, blur=1.0),
    "all": dict(crop_size=(36, 28), hflip=0.5, rotate=20.0, blur=0.5),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_image_and_mask_stay_aligned(name: str) -> None:
    """After each transform, does the class read back from the image equal the mask away from edges?"""
    options = CONFIGS[name]
    t = train_transforms(**options, normalize=False)
    size = options["crop_size"]
    size = (size, size) if isinstance(size, int) else size
    # Each interpolating step may blur a class edge by about a pixel: allow one pixel for
    # scale (bilinear image, nearest mask), two when rotation or blur smooths again.
    radius = 2 if options.get("rotate") or options.get("blur") else 1
    checked = 0
    for seed in range(20):
        image, mask = _coded_pair(seed=seed, block=12)
        labels = set(mask.unique().tolist())
        out_image, out_mask = t(image, mask)
        assert type(out_image) is torch.Tensor and type(out_mask) is torch.Tensor
        assert out_image.shape == (3, *size) and out_image.dtype == torch.float32
        assert out_mask.shape == size and out_mask.dtype == torch.int64
        assert 0.0 <= out_image.min() and out_image.max() <= 1.0
        assert set(out_mask.unique().tolist()) <= labels | {255}  # nearest: no new labels
        inner = _interior(out_mask, radius)
        assert torch.equal(_decode_classes(out_image)[inner], out_mask[inner])
        checked += int(inner.sum())
    assert checked > 500  # the check looked at many pixels


def test_padding_is_255_in_mask_and_0_in_image() -> None:
    """When the scaled image is smaller than the crop, is the pad 255 in the mask and 0 in the image?"""
    t = train_transforms(crop_size=40, scale=(0.4, 0.4), hflip=0.0, normalize=False)
    image, mask = _coded_pair(h=30, w=50, void=False)  # no void: every 255 is padding
    out_image, out_mask = t(image, mask)
    pad = (out_image == 0).all(0)  # the source image has no black pixel
    assert pad.any()
    assert torch.equal(out_mask == 255, pad)
    # The short side 30 -> 0.4 * 40 = 16; torchvision truncates the long side 50 * 16 / 30.
    assert int((~pad).sum()) == 16 * 26


def test_rotation_fills_corners_with_255() -> None:
    """Does rotation fill the uncovered corners with 255 in the mask and 0 in the image?"""
    t = train_transforms(crop_size=32, scale=(1.0, 1.0), hflip=0.0, rotate=45.0, normalize=False)
    image, mask = _coded_pair(h=32, w=32, void=False)
    filled = 0
    for _ in range(8):
        out_image, out_mask = t(image, mask)
        void = out_mask == 255
        assert (out_image[:, void] < 60 / 255).all()  # corners are (mostly) the black fill
        filled += int(void.sum())
    assert filled > 0


def test_flip_and_normalize_exactly() -> None:
    """With crop = image size and scale 1, is hflip=1 an exact flip and normalisation (x - mean) / std?"""
    image, mask = _coded_pair(h=32, w=32)
    out_image, out_mask = train_transforms(crop_size=32, scale=(1.0, 1.0), hflip=1.0)(image, mask)
    expected = image.flip(-1).float() / 255
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    torch.testing.assert_close(out_image, (expected - mean) / std)
    assert torch.equal(out_mask, mask.flip(-1).long())


def test_blur_touches_the_image_only() -> None:
    """Does blur change the image but leave the mask exactly as it was?"""
    image, mask = _coded_pair(h=32, w=32)
    t = train_transforms(crop_size=32, scale=(1.0, 1.0), hflip=0.0, blur=1.0, normalize=False)
    out_image, out_mask = t(image, mask)
    assert torch.equal(out_mask, mask.long())
    assert not torch.equal(out_image, image.float() / 255)
    assert (out_image - image.float() / 255).abs().max() < 0.5


def test_accepts_pil_and_plain_tensors() -> None:
    """Do PIL pairs (torchvision's readers) and plain tensors give the same result as tv_tensors?"""
    image, mask = _coded_pair(h=30, w=40)
    t = eval_transforms(size=24)
    ref = t(image, mask)
    pil = t(
        Image.fromarray(image.permute(1, 2, 0).numpy()), Image.fromarray(mask.numpy(), mode="L")
    )
    plain = t(image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor))
    for got in (pil, plain):
        assert torch.equal(got[1], ref[1])
        torch.testing.assert_close(got[0], ref[0], atol=0.05, rtol=0)  # PIL resizes on its own


@pytest.mark.parametrize("size,shape", [(None, (30, 40)), (24, (24, 32)), ((20, 10), (20, 10))])
def test_eval_transforms(size, shape) -> None:
    """Does eval_transforms keep, short-side-resize or exactly resize, with masks nearest?"""
    image, mask = _coded_pair(h=30, w=40)
    out_image, out_mask = eval_transforms(size=size, normalize=False)(image, mask)
    assert out_image.shape == (3, *shape) and out_mask.shape == shape
    assert out_mask.dtype == torch.int64
    if size is None:
        torch.testing.assert_close(out_image, image.float() / 255)
        assert torch.equal(out_mask, mask.long())
    ref = F.interpolate(mask[None, None].float(), size=shape, mode="nearest")[0, 0].long()
    assert torch.equal(out_mask, ref)


@pytest.mark.parametrize(
    "options",
    [
        dict(crop_size=0),
        dict(crop_size=(3, 4, 5)),
        dict(crop_size=8, scale=(2.0, 1.0)),
        dict(crop_size=8, hflip=1.5),
        dict(crop_size=8, blur=-0.1),
        dict(crop_size=8, rotate=-5.0),
    ],
)
def test_bad_options(options) -> None:
    """Are out-of-range options a ValueError?"""
    with pytest.raises(ValueError):
        train_transforms(**options)


def test_mismatched_pair() -> None:
    """Is a mask whose size differs from the image's rejected with both shapes named?"""
    with pytest.raises(ValueError, match=r"\[3, 10, 10\]"):
        eval_transforms()(torch.zeros(3, 10, 10, dtype=torch.uint8), torch.zeros(9, 10))


def test_scale_range_reaches_both_ends() -> None:
    """Does the scale step draw short sides across [low, high] x crop_size?"""
    torch.manual_seed(0)
    t = train_transforms(crop_size=20, scale=(0.5, 2.0), hflip=0.0, normalize=False)
    image, mask = _coded_pair(h=40, w=40, void=False)
    padded = [int((t(image, mask)[1] == 255).sum()) for _ in range(60)]
    # A scaled image under 20 px is padded; one over 20 px never is.
    assert max(padded) > 0 and min(padded) == 0
    assert max(padded) <= 20 * 20 - 10 * 10  # the smallest scale is 0.5 -> 10 x 10
