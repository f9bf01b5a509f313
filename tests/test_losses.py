"""Tests for labkit.losses: hand-worked examples, PyTorch and numpy as oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labkit.losses import (
    CLASS_WEIGHT_METHODS,
    LOSSES,
    DiceLoss,
    FocalLoss,
    SegmentationCrossEntropy,
    SumOfLosses,
    build_loss,
    class_weights,
    dice_loss,
    focal_loss,
    weighted_cross_entropy,
)

# A 1 x 2 x 1 x 2 example worked by hand. Pixel a: logits (0, ln 3), softmax (1/4, 3/4),
# label 1. Pixel b: logits (ln 2, 0), softmax (2/3, 1/3), label 0.
TINY_LOGITS = torch.tensor([[[[0.0, math.log(2.0)]], [[math.log(3.0), 0.0]]]])
TINY_TARGET = torch.tensor([[[1, 0]]])
P_A, P_B = 3 / 4, 2 / 3  # probability of the true class at each pixel


def _random_batch(n=2, c=4, h=5, w=6, ignore_frac=0.25):
    logits = torch.randn(n, c, h, w) * 2
    target = torch.randint(0, c, (n, h, w))
    target[torch.rand(n, h, w) < ignore_frac] = 255
    return logits, target


# --------------------------------------------------------------------------------------------
# class_weights
# --------------------------------------------------------------------------------------------


def _numpy_weights(counts, method, ignore_zero=True, normalize=True):
    """Reference written from the definitions, per class in a loop, in numpy."""
    counts = np.asarray(counts, dtype=np.float64)
    used = [i for i in range(len(counts)) if counts[i] > 0 or not ignore_zero]
    w = np.zeros(len(counts))
    med = np.median([counts[i] for i in used])
    for i in used:
        if method == "inverse":
            w[i] = counts.sum() / counts[i]
        elif method == "median_frequency":
            w[i] = med / counts[i]  # the common 1 / total cancels in median(freq) / freq
        elif method == "sqrt_inverse":
            w[i] = np.sqrt(counts.sum() / counts[i])
        else:
            w[i] = 1.0 / np.log(1.02 + counts[i] / counts.sum())
    if normalize:
        w = w / np.mean([w[i] for i in used])
    return w


@pytest.mark.parametrize("method", CLASS_WEIGHT_METHODS)
@pytest.mark.parametrize("normalize", [True, False])
def test_class_weights_match_numpy_reference(method, normalize):
    """Does each method equal a numpy reference on counts with zeros and an even class count?"""
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 10**6, size=8)
    counts[[2, 5]] = 0
    got = class_weights(torch.from_numpy(counts), method, normalize=normalize)
    assert got.dtype == torch.float32 and got.shape == (8,)
    want = _numpy_weights(counts, method, ignore_zero=True, normalize=normalize)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    assert got[2] == 0 and got[5] == 0


def test_class_weights_log_keeps_zero_count_classes_when_asked():
    """With ignore_zero=False, does "log" give empty classes the finite weight 1 / ln 1.02?"""
    counts = torch.tensor([0.0, 100.0, 300.0])
    got = class_weights(counts, "log", ignore_zero=False, normalize=False)
    assert got[0] == pytest.approx(1 / math.log(1.02))
    np.testing.assert_allclose(
        class_weights(counts, "log", ignore_zero=False).numpy(),
        _numpy_weights(counts.numpy(), "log", ignore_zero=False),
        rtol=1e-6,
    )


def test_class_weights_by_hand():
    """Do two classes with 1 and 3 pixels get the weights worked out by hand?"""
    counts = torch.tensor([1, 3])
    # freq (1/4, 3/4): inverse (4, 4/3), mean 8/3, normalized (3/2, 1/2).
    assert class_weights(counts, "inverse").tolist() == pytest.approx([1.5, 0.5])
    assert class_weights(counts, "inverse", normalize=False).tolist() == pytest.approx([4, 4 / 3])
    # median of (1/4, 3/4) is 1/2: weights (2, 2/3).
    assert class_weights(counts, "median_frequency", normalize=False).tolist() == pytest.approx(
        [2, 2 / 3]
    )
    logw = [1 / math.log(1.27), 1 / math.log(1.77)]
    assert class_weights(counts, "log", normalize=False).tolist() == pytest.approx(logw)
    mean = sum(logw) / 2
    assert class_weights(counts, "log").tolist() == pytest.approx([x / mean for x in logw])
    # sqrt of the inverse (4, 4/3): (2, 2/sqrt 3)
    assert class_weights(counts, "sqrt_inverse", normalize=False).tolist() == pytest.approx(
        [2, 2 / math.sqrt(3)]
    )
    # normalized, median-frequency weights are the inverse ones (the median is one factor)
    assert class_weights(counts, "median_frequency").tolist() == pytest.approx(
        class_weights(counts, "inverse").tolist()
    )


def test_class_weights_normalized_mean_is_one_over_present_classes():
    """Is the mean weight over the classes with pixels 1 after normalization?"""
    counts = torch.tensor([5, 0, 50, 500, 0])
    for method in CLASS_WEIGHT_METHODS:
        w = class_weights(counts, method)
        assert w[counts > 0].mean().item() == pytest.approx(1.0)


def test_class_weights_errors():
    """Are bad methods, shapes, negative, all-zero and infinite-weight inputs refused clearly?"""
    with pytest.raises(ValueError, match="unknown class-weight method 'sqrt'") as info:
        class_weights(torch.tensor([1, 2]), "sqrt")
    for name in CLASS_WEIGHT_METHODS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match=r"expected counts of shape \[C\].*got \[2, 2\]"):
        class_weights(torch.ones(2, 2))
    with pytest.raises(ValueError, match=r"expected finite counts >= 0; got \[1.0, -2.0\]"):
        class_weights(torch.tensor([1, -2]))
    with pytest.raises(ValueError, match="got all zeros"):
        class_weights(torch.zeros(3))
    with pytest.raises(ValueError, match=r"classes \[1\] have zero count.*ignore_zero=True"):
        class_weights(torch.tensor([4, 0, 1]), "median_frequency", ignore_zero=False)


# --------------------------------------------------------------------------------------------
# Cross-entropy
# --------------------------------------------------------------------------------------------


def test_cross_entropy_by_hand():
    """Does the weighted CE of the tiny example equal the hand-worked weighted mean?"""
    w = torch.tensor([2.0, 1.0])
    want_plain = (-math.log(P_A) - math.log(P_B)) / 2
    want_weighted = (1 * -math.log(P_A) + 2 * -math.log(P_B)) / (1 + 2)
    assert weighted_cross_entropy(TINY_LOGITS, TINY_TARGET).item() == pytest.approx(want_plain)
    got = weighted_cross_entropy(TINY_LOGITS, TINY_TARGET, w).item()
    assert got == pytest.approx(want_weighted)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_torch(reduction):
    """Does weighted CE equal F.cross_entropy, and nn.CrossEntropyLoss, with ignored pixels?"""
    logits, target = _random_batch()
    w = torch.rand(4) + 0.5
    got = weighted_cross_entropy(logits, target, w, reduction=reduction)
    want = F.cross_entropy(logits, target, weight=w, ignore_index=255, reduction=reduction)
    torch.testing.assert_close(got, want)
    module = SegmentationCrossEntropy(weight=w, reduction=reduction)
    torch.testing.assert_close(module(logits, target), want)
    torch_module = torch.nn.CrossEntropyLoss(w, ignore_index=255, reduction=reduction)
    torch.testing.assert_close(module(logits, target), torch_module(logits, target))


@pytest.mark.parametrize(
    "logits,target,weight,pattern",
    [
        (
            torch.zeros(2, 3, 4),
            torch.zeros(2, 3, 4, dtype=torch.long),
            None,
            r"expected logits of shape \[N, C, H, W\] with a float dtype; got \[2, 3, 4\]",
        ),
        (
            torch.zeros(1, 3, 4, 4, dtype=torch.long),
            torch.zeros(1, 4, 4, dtype=torch.long),
            None,
            r"float dtype; got \[1, 3, 4, 4\] torch.int64",
        ),
        (
            torch.zeros(1, 3, 4, 4),
            torch.zeros(1, 4, 4),
            None,
            r"target of shape \[N, H, W\] with dtype torch.int64; got \[1, 4, 4\] torch.float32 "
            r"\(call .long\(\)",
        ),
        (
            torch.zeros(1, 3, 4, 4),
            torch.zeros(1, 1, 4, 4, dtype=torch.long),
            None,
            r"got \[1, 1, 4, 4\] torch.int64",
        ),
        (
            torch.zeros(1, 3, 4, 4),
            torch.zeros(1, 4, 5, dtype=torch.long),
            None,
            r"expected target of shape \[N, H, W\] = \[1, 4, 4\] to match logits \[1, 3, 4, 4\]; "
            r"got \[1, 4, 5\]",
        ),
        (
            torch.zeros(1, 3, 4, 4),
            torch.full((1, 4, 4), 7),
            None,
            r"expected target labels in \[0, 3\) or ignore_index=255; got \[7\]",
        ),
        (torch.zeros(1, 3, 4, 4), torch.full((1, 4, 4), -1), None, r"got \[-1\]"),
        (
            torch.zeros(1, 3, 4, 4),
            torch.zeros(1, 4, 4, dtype=torch.long),
            torch.ones(4),
            r"expected weight of shape \[C\] = \[3\] \(one per logits channel\); got \[4\]",
        ),
        (
            torch.zeros(1, 3, 4, 4),
            torch.zeros(1, 4, 4, dtype=torch.long),
            torch.ones(3, 1),
            r"expected weight of shape \[C\]; got \[3, 1\]",
        ),
    ],
)
def test_cross_entropy_shape_errors(logits, target, weight, pattern):
    """Does a bad shape, dtype, label or weight get a message with what was expected and got?"""
    with pytest.raises(ValueError, match=pattern):
        weighted_cross_entropy(logits, target, weight)


def test_bad_reduction_is_refused():
    """Is an unknown reduction refused with the valid ones?"""
    pattern = r"expected reduction in \['mean', 'sum', 'none'\]; got 'avg'"
    with pytest.raises(ValueError, match=pattern):
        focal_loss(TINY_LOGITS, TINY_TARGET, reduction="avg")


# --------------------------------------------------------------------------------------------
# Focal loss
# --------------------------------------------------------------------------------------------


def test_focal_by_hand():
    """Does the focal loss of the tiny example equal the value worked by hand, with alpha too?"""
    fa = (1 - P_A) ** 2 * -math.log(P_A)
    fb = (1 - P_B) ** 2 * -math.log(P_B)
    assert focal_loss(TINY_LOGITS, TINY_TARGET).item() == pytest.approx((fa + fb) / 2)
    assert focal_loss(TINY_LOGITS, TINY_TARGET, reduction="sum").item() == pytest.approx(fa + fb)
    alpha = torch.tensor([0.25, 0.75])  # pixel a is class 1, pixel b class 0
    got = focal_loss(TINY_LOGITS, TINY_TARGET, alpha=alpha).item()
    assert got == pytest.approx((0.75 * fa + 0.25 * fb) / (0.75 + 0.25))
    got = FocalLoss(gamma=1.0, reduction="none")(TINY_LOGITS, TINY_TARGET)
    torch.testing.assert_close(
        got, torch.tensor([[[(1 - P_A) * -math.log(P_A), (1 - P_B) * -math.log(P_B)]]])
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_focal_with_gamma_zero_is_cross_entropy(reduction, weighted):
    """With gamma=0, does the focal loss equal F.cross_entropy (alpha as the class weight)?"""
    logits, target = _random_batch()
    w = torch.rand(4) + 0.5 if weighted else None
    got = focal_loss(logits, target, gamma=0.0, alpha=w, reduction=reduction)
    want = F.cross_entropy(logits, target, weight=w, ignore_index=255, reduction=reduction)
    torch.testing.assert_close(got, want)


def test_focal_matches_slow_reference():
    """Does the focal loss equal a per-pixel loop over softmax probabilities?"""
    logits, target = _random_batch(n=1, c=3, h=3, w=4)
    alpha, gamma = torch.tensor([0.5, 1.0, 2.0]), 1.5
    probs = torch.softmax(logits.double(), dim=1)
    num = den = 0.0
    for i in range(3):
        for j in range(4):
            y = int(target[0, i, j])
            if y == 255:
                continue
            p = float(probs[0, y, i, j])
            num += float(alpha[y]) * (1 - p) ** gamma * -math.log(p)
            den += float(alpha[y])
    got = focal_loss(logits, target, gamma=gamma, alpha=alpha).item()
    assert got == pytest.approx(num / den, rel=1e-5)


def test_focal_gradient_is_finite_when_confident():
    """Is the focal gradient finite for gamma < 1 when the true-class probability rounds to 1?"""
    logits = torch.tensor([[[[80.0]], [[0.0]]]], requires_grad=True)
    loss = focal_loss(logits, torch.tensor([[[0]]]), gamma=0.5)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


# --------------------------------------------------------------------------------------------
# Dice loss
# --------------------------------------------------------------------------------------------


def test_dice_by_hand():
    """Does the dice loss of the tiny example equal the hand-worked per-class mean?"""
    s = 1.0
    # class 0: intersection 2/3 (pixel b), predicted mass 1/4 + 2/3, one target pixel.
    d0 = (2 * (2 / 3) + s) / ((1 / 4 + 2 / 3) + 1 + s)
    # class 1: intersection 3/4 (pixel a), predicted mass 3/4 + 1/3, one target pixel.
    d1 = (2 * (3 / 4) + s) / ((3 / 4 + 1 / 3) + 1 + s)
    assert dice_loss(TINY_LOGITS, TINY_TARGET).item() == pytest.approx(1 - (d0 + d1) / 2)
    got = DiceLoss(weight=torch.tensor([1.0, 0.0]))(TINY_LOGITS, TINY_TARGET).item()
    assert got == pytest.approx(1 - d0)
    s = 0.5
    d0 = (2 * (2 / 3) + s) / ((1 / 4 + 2 / 3) + 1 + s)
    d1 = (2 * (3 / 4) + s) / ((3 / 4 + 1 / 3) + 1 + s)
    assert dice_loss(TINY_LOGITS, TINY_TARGET, smooth=s).item() == pytest.approx(1 - (d0 + d1) / 2)


def test_dice_of_perfect_prediction_is_zero():
    """Is the dice loss ~0 for a (near) one-hot correct prediction, even with an absent class?"""
    target = torch.randint(0, 3, (2, 6, 6))  # class 3 of 4 never occurs
    logits = 40.0 * F.one_hot(target, 4).permute(0, 3, 1, 2).float()
    target[:, 0, :] = 255
    assert dice_loss(logits, target).item() == pytest.approx(0.0, abs=1e-6)
    wrong = 40.0 * F.one_hot((target.clamp_max(3) + 1) % 4, 4).permute(0, 3, 1, 2).float()
    assert dice_loss(wrong, target).item() > 0.5


def test_dice_ignored_pixels_equal_cropping_them_out():
    """Is dice with an ignored column the same as dice on the image without that column?"""
    logits, target = _random_batch(ignore_frac=0.0)
    target[..., -1] = 255
    got = dice_loss(logits, target)
    want = dice_loss(logits[..., :-1], target[..., :-1])
    torch.testing.assert_close(got, want)


def test_bad_dice_smooth_and_focal_gamma():
    """Are a non-positive smooth and a negative gamma refused?"""
    with pytest.raises(ValueError, match="expected smooth > 0.*got 0"):
        DiceLoss(smooth=0)
    with pytest.raises(ValueError, match="expected gamma >= 0; got -1"):
        FocalLoss(gamma=-1)


# --------------------------------------------------------------------------------------------
# All losses: ignored pixels, gradients, build_loss
# --------------------------------------------------------------------------------------------

ALL_LOSSES = {
    "ce": lambda: SegmentationCrossEntropy(),
    "weighted_ce": lambda: SegmentationCrossEntropy(weight=torch.tensor([1.0, 2.0, 0.5, 3.0])),
    "focal": lambda: FocalLoss(alpha=torch.tensor([1.0, 2.0, 0.5, 3.0])),
    "dice": lambda: DiceLoss(),
    "ce+dice": lambda: build_loss("ce+dice", dice_factor=0.5),
}


def _loss_and_grad(loss_fn, logits, target):
    logits = logits.clone().requires_grad_(True)
    loss = loss_fn(logits, target)
    loss.backward()
    return loss.detach(), logits.grad


@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_ignored_pixels_change_nothing(name):
    """Does changing the logits at 255 pixels leave the loss and every gradient unchanged?"""
    loss_fn = ALL_LOSSES[name]()
    logits, target = _random_batch()
    ignored = (target == 255).unsqueeze(1).expand_as(logits)
    loss1, grad1 = _loss_and_grad(loss_fn, logits, target)
    changed = torch.where(ignored, torch.randn_like(logits) * 100, logits)
    loss2, grad2 = _loss_and_grad(loss_fn, changed, target)
    torch.testing.assert_close(loss1, loss2)
    torch.testing.assert_close(grad1, grad2)
    assert (grad1[ignored] == 0).all()


@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_gradients_flow_to_every_counted_pixel(name):
    """Does every non-ignored pixel get a finite, nonzero gradient?"""
    loss_fn = ALL_LOSSES[name]()
    logits, target = _random_batch()
    loss, grad = _loss_and_grad(loss_fn, logits, target)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert torch.isfinite(grad).all()
    per_pixel = grad.abs().sum(dim=1)
    assert (per_pixel[target != 255] > 0).all()


def test_build_loss_builds_each_named_loss():
    """Does each name build the loss it says, with weight and options passed on?"""
    logits, target = _random_batch()
    w = torch.rand(4) + 0.5
    ce = F.cross_entropy(logits, target, weight=w, ignore_index=255)
    torch.testing.assert_close(build_loss("ce", weight=w)(logits, target), ce)
    torch.testing.assert_close(build_loss("focal", weight=w, gamma=0.0)(logits, target), ce)
    torch.testing.assert_close(
        build_loss("dice", smooth=2.0)(logits, target), dice_loss(logits, target, smooth=2.0)
    )
    combo = build_loss("ce+dice", weight=w, dice_factor=0.3)
    assert isinstance(combo, SumOfLosses)
    torch.testing.assert_close(combo(logits, target), ce + 0.3 * dice_loss(logits, target))
    assert set(LOSSES) == {"ce", "dice", "focal", "ce+dice"}


def test_build_loss_respects_ignore_index():
    """Does a custom ignore_index reach the built loss?"""
    logits, target = _random_batch(ignore_frac=0.0)
    target[0, 0, :] = 0
    want = F.cross_entropy(logits, target, ignore_index=0)
    torch.testing.assert_close(build_loss("ce", ignore_index=0)(logits, target), want)


def test_build_loss_errors():
    """Are an unknown loss name and an option the loss does not take refused clearly?"""
    pattern = r"unknown loss 'lovasz'; expected one of \['ce', 'dice', 'focal', 'ce\+dice'\]"
    with pytest.raises(ValueError, match=pattern):
        build_loss("lovasz")
    pattern = r"loss 'ce' takes options \['reduction'\].*got unexpected \['gamma'\]"
    with pytest.raises(ValueError, match=pattern):
        build_loss("ce", gamma=2.0)
