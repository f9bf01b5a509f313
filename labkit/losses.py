"""Class weighting and segmentation losses.

Every loss takes logits ``[N, C, H, W]`` and an int64 mask ``[N, H, W]`` in which
``ignore_index`` (255, VOC's void label) marks pixels that contribute nothing: no loss and no
gradient. Cross-entropy is PyTorch's own ``F.cross_entropy``, with the inputs checked first so
that a wrong shape gets a readable message instead of a CUDA assert. Each loss is a function
and a thin ``nn.Module`` that holds its options; :func:`build_loss` picks one by name for
configs.

References:
    Median-frequency balancing: Eigen & Fergus, https://arxiv.org/abs/1411.4734.
    ENet's log weighting: Paszke et al., https://arxiv.org/abs/1606.02147.
    Soft dice: Milletari et al. (V-Net), https://arxiv.org/abs/1606.04797.
    Focal loss: Lin et al., https://arxiv.org/abs/1708.02002.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LAB_REFERENCES",
    "CLASS_WEIGHT_METHODS",
    "LOSSES",
    "LOSS_OPTIONS",
    "DiceLoss",
    "FocalLoss",
    "SegmentationCrossEntropy",
    "SumOfLosses",
    "build_loss",
    "class_weights",
    "dice_loss",
    "focal_loss",
    "weighted_cross_entropy",
]

CLASS_WEIGHT_METHODS = ("inverse", "median_frequency", "sqrt_inverse", "log")
#: Each loss :func:`build_loss` makes, and the options it takes (besides weight, ignore_index).
LOSS_OPTIONS: dict[str, tuple[str, ...]] = {
    "ce": ("reduction",),
    "dice": ("smooth",),
    "focal": ("gamma", "reduction"),
    "ce+dice": ("smooth", "dice_factor"),
}
LOSSES = tuple(LOSS_OPTIONS)
_REDUCTIONS = ("mean", "sum", "none")
_ENET_C = 1.02


# --- Class weights ---------------------------------------------------------------------------


def class_weights(
    counts: Tensor,
    method: str = "inverse",
    *,
    ignore_zero: bool = True,
    normalize: bool = True,
) -> Tensor:
    """Per-class loss weights from per-class pixel counts, to counter class imbalance.

    With ``freq = counts / counts.sum()``:

    * ``"inverse"``: ``1 / freq``.
    * ``"median_frequency"``: ``median(freq) / freq`` (Eigen & Fergus), the median taken over
      the classes that get a weight (an even number of classes averages the middle two).
      Eigen & Fergus divide each class's pixels by the pixels of the images that contain it;
      from total counts alone the denominator is all pixels, the usual simplification.
    * ``"sqrt_inverse"``: ``1 / sqrt(freq)``, a tempered inverse: a class 30 times rarer gets
      about 5.5 times the weight, not 30. Full inverse weights make the loss prefer the rare
      classes so strongly that the common ones lose more IoU than the rare ones gain; the
      square root keeps most of the rare classes' gain (see ``benchmarks/ABLATIONS.md``).
    * ``"log"``: ``1 / ln(1.02 + freq)`` (ENet), which caps any weight at ``1 / ln 1.02 ~ 50``.

    After ``normalize``, ``"inverse"`` and ``"median_frequency"`` are the same weights: the
    median is one constant factor, which the normalization divides out.

    A class with zero pixels gets weight 0 when ``ignore_zero`` is true: nothing can be learned
    from it, and its inverse frequency would be infinite and turn the loss into inf/NaN.

    Args:
        counts (Tensor[C]): pixels of each class (any real dtype; ignored pixels not counted).
        method (str): one of ``"inverse"``, ``"median_frequency"``, ``"sqrt_inverse"``,
            ``"log"``.
        ignore_zero (bool): give zero-count classes weight 0 and leave them out of the median
            and the normalization. If false they are treated like any other class, which works
            for ``"log"`` and raises ``ValueError`` for the two methods that would divide by 0.
        normalize (bool): rescale so that the mean weight over the weighted classes (those with
            a nonzero count, or all classes when ``ignore_zero`` is false) is 1, which keeps the
            loss on the same scale as the unweighted one.

    Returns:
        Tensor[C] float32: the weights, on the device of ``counts``.

    Raises:
        ValueError: on an unknown method, ``counts`` that is not 1-D, negative counts, all-zero
            counts, or zero counts with ``ignore_zero=False`` for the methods that divide by
            the frequency.
    """
    if method not in CLASS_WEIGHT_METHODS:
        raise ValueError(
            f"unknown class-weight method {method!r}; expected one of {list(CLASS_WEIGHT_METHODS)}"
        )
    counts = torch.as_tensor(counts)
    if counts.ndim != 1:
        raise ValueError(
            f"expected counts of shape [C] (one count per class); got {list(counts.shape)}"
        )
    if counts.is_complex() or counts.dtype == torch.bool:
        raise ValueError(f"expected real-valued counts; got dtype {counts.dtype}")
    counts = counts.to(torch.float64)  # float64: counts of whole datasets exceed float32's 2**24
    if (counts < 0).any() or not torch.isfinite(counts).all():
        raise ValueError(f"expected finite counts >= 0; got {counts.tolist()}")
    total = counts.sum()
    if total == 0:
        raise ValueError("expected at least one nonzero count; got all zeros (empty dataset?)")

    freq = counts / total
    used = counts > 0 if ignore_zero else torch.ones_like(counts, dtype=torch.bool)
    if not ignore_zero and method != "log" and (counts == 0).any():
        zero = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(
            f"classes {zero} have zero count, so their {method} weight is infinite; "
            "pass ignore_zero=True to give them weight 0, or use method='log'"
        )

    weights = torch.zeros_like(freq)
    weights[used] = _weigh(freq[used], method)
    if normalize:
        weights = weights / weights[used].mean()
    return weights.to(torch.float32)


def _weigh(freq: Tensor, method: str) -> Tensor:
    """The weights of the classes that get one, from their frequencies (see class_weights)."""
    if method == "inverse":
        return 1.0 / freq
    if method == "median_frequency":
        return torch.quantile(freq, 0.5) / freq
    if method == "sqrt_inverse":
        return freq.rsqrt()
    return 1.0 / torch.log(_ENET_C + freq)  # log


# --- Functional losses -----------------------------------------------------------------------


def weighted_cross_entropy(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    *,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> Tensor:
    """Pixel-wise (optionally class-weighted) cross-entropy: ``F.cross_entropy`` after checks.

    With ``reduction="mean"`` and a weight this is PyTorch's weighted mean,
    ``sum_i w[y_i] * loss_i / sum_i w[y_i]`` over the non-ignored pixels. If every pixel is
    ignored the mean is NaN, as in PyTorch.

    Args:
        logits (Tensor[N, C, H, W] float): unnormalized class scores.
        target (Tensor[N, H, W] int64): class indices in ``[0, C)`` or ``ignore_index``.
        weight (Tensor[C] | None): per-class weights, e.g. from :func:`class_weights`; moved to
            the device and dtype of ``logits``.
        ignore_index (int): label of pixels that get no loss and no gradient.
        reduction (str): ``"mean"``, ``"sum"`` or ``"none"`` (then ``Tensor[N, H, W]``, 0 at
            ignored pixels).

    Returns:
        Tensor: the loss, a scalar unless ``reduction="none"``.
    """
    _check_inputs(logits, target, ignore_index, reduction)
    weight = _check_class_vector("weight", weight, logits)
    return F.cross_entropy(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )


def focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    gamma: float = 2.0,
    alpha: Tensor | None = None,
    ignore_index: int = 255,
    reduction: str = "mean",
) -> Tensor:
    """Multiclass focal loss ``-alpha[y] * (1 - p_y) ** gamma * log p_y`` (Lin et al.).

    ``p_y`` is the softmax probability of the true class. The factor ``(1 - p_y) ** gamma``
    shrinks the loss of pixels that are already right, so training concentrates on the hard
    ones. ``"mean"`` divides by ``sum alpha[y]`` over non-ignored pixels (the pixel count when
    ``alpha`` is None), the same weighted mean as :func:`weighted_cross_entropy`; so with
    ``gamma=0`` the focal loss is exactly the (weighted) cross-entropy.

    Args:
        logits (Tensor[N, C, H, W] float): unnormalized class scores.
        target (Tensor[N, H, W] int64): class indices in ``[0, C)`` or ``ignore_index``.
        gamma (float): focusing exponent, >= 0; 0 gives cross-entropy.
        alpha (Tensor[C] | None): per-class weights; None weighs all classes 1.
        ignore_index (int): label of pixels that get no loss and no gradient.
        reduction (str): ``"mean"``, ``"sum"`` or ``"none"`` (then ``Tensor[N, H, W]``, 0 at
            ignored pixels).

    Returns:
        Tensor: the loss, a scalar unless ``reduction="none"``.
    """
    _check_inputs(logits, target, ignore_index, reduction)
    alpha = _check_class_vector("alpha", alpha, logits)
    if gamma < 0:
        raise ValueError(f"expected gamma >= 0; got {gamma}")
    valid = target != ignore_index  # (N, H, W)
    safe_target = torch.where(valid, target, 0)
    log_p = F.log_softmax(logits, dim=1).gather(1, safe_target.unsqueeze(1)).squeeze(1)
    # 1 - p computed as -expm1(log p) keeps precision near p = 1; the clamp keeps the gradient
    # of (1 - p) ** gamma finite for 0 < gamma < 1 when p rounds to exactly 1.
    one_minus_p = (-torch.expm1(log_p)).clamp_min(torch.finfo(log_p.dtype).tiny)
    per_pixel = -(one_minus_p**gamma) * log_p
    w = alpha[safe_target] if alpha is not None else torch.ones_like(per_pixel)
    # where, not multiply: ignored pixels must contribute 0 even if their logits are inf/NaN.
    w = torch.where(valid, w, 0.0)
    per_pixel = torch.where(valid, per_pixel * w, 0.0)
    if reduction == "none":
        return per_pixel
    if reduction == "sum":
        return per_pixel.sum()
    return per_pixel.sum() / w.sum()


def dice_loss(
    logits: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    ignore_index: int = 255,
    smooth: float = 1.0,
) -> Tensor:
    """Multiclass soft dice loss on softmax probabilities (Milletari et al.).

    For each class ``c``, over all non-ignored pixels of the batch,
    ``dice_c = (2 * sum(p_c * g_c) + smooth) / (sum(p_c) + sum(g_c) + smooth)`` with ``p_c``
    the softmax probability and ``g_c`` the one-hot target; the loss is
    ``1 - mean_c dice_c`` (a weighted mean when ``weight`` is given). A class absent from both
    target and prediction scores ``smooth / smooth = 1``, so it adds no loss; a perfect
    prediction scores 0.

    Args:
        logits (Tensor[N, C, H, W] float): unnormalized class scores.
        target (Tensor[N, H, W] int64): class indices in ``[0, C)`` or ``ignore_index``.
        weight (Tensor[C] | None): weights of the per-class dice terms in the mean (a class
            with weight 0 is left out); None weighs all classes equally.
        ignore_index (int): label of pixels that take no part in any sum.
        smooth (float): added to numerator and denominator; > 0 keeps empty classes finite.

    Returns:
        Tensor: the scalar loss, in ``[0, 1]``.
    """
    _check_inputs(logits, target, ignore_index, "mean")
    weight = _check_class_vector("weight", weight, logits)
    if smooth <= 0:
        raise ValueError(f"expected smooth > 0 (it keeps empty classes finite); got {smooth}")
    num_classes = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)  # (N, 1, H, W)
    probs = torch.where(valid, F.softmax(logits, dim=1), 0.0)  # (N, C, H, W)
    one_hot = F.one_hot(torch.where(valid.squeeze(1), target, 0), num_classes)  # (N, H, W, C)
    one_hot = one_hot.permute(0, 3, 1, 2).to(probs.dtype) * valid  # (N, C, H, W)
    dims = (0, 2, 3)
    intersection = (probs * one_hot).sum(dims)  # (C,)
    cardinality = probs.sum(dims) + one_hot.sum(dims)  # (C,)
    dice = (2.0 * intersection + smooth) / (cardinality + smooth)
    if weight is None:
        return 1.0 - dice.mean()
    return 1.0 - (dice * weight).sum() / weight.sum()


# --- Modules ---------------------------------------------------------------------------------


class SegmentationCrossEntropy(nn.Module):
    """Module form of :func:`weighted_cross_entropy`; the weight moves with ``.to(device)``.

    Args:
        weight (Tensor[C] | None): per-class weights, e.g. from :func:`class_weights`.
        ignore_index (int): label of pixels that get no loss.
        reduction (str): ``"mean"``, ``"sum"`` or ``"none"``.
    """

    weight: Tensor | None

    def __init__(
        self, *, weight: Tensor | None = None, ignore_index: int = 255, reduction: str = "mean"
    ) -> None:
        super().__init__()
        self.register_buffer("weight", _as_float_vector("weight", weight), persistent=False)
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return weighted_cross_entropy(
            logits, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction
        )


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss`.

    Args:
        gamma (float): focusing exponent, >= 0; 0 gives cross-entropy.
        alpha (Tensor[C] | None): per-class weights.
        ignore_index (int): label of pixels that get no loss.
        reduction (str): ``"mean"``, ``"sum"`` or ``"none"``.
    """

    alpha: Tensor | None

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        alpha: Tensor | None = None,
        ignore_index: int = 255,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"expected gamma >= 0; got {gamma}")
        self.gamma = gamma
        self.register_buffer("alpha", _as_float_vector("alpha", alpha), persistent=False)
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return focal_loss(
            logits,
            target,
            gamma=self.gamma,
            alpha=self.alpha,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


class DiceLoss(nn.Module):
    """Module form of :func:`dice_loss`.

    Args:
        weight (Tensor[C] | None): weights of the per-class dice terms.
        ignore_index (int): label of pixels that take no part.
        smooth (float): smoothing term, > 0.
    """

    weight: Tensor | None

    def __init__(
        self, *, weight: Tensor | None = None, ignore_index: int = 255, smooth: float = 1.0
    ) -> None:
        super().__init__()
        if smooth <= 0:
            raise ValueError(f"expected smooth > 0 (it keeps empty classes finite); got {smooth}")
        self.register_buffer("weight", _as_float_vector("weight", weight), persistent=False)
        self.ignore_index = ignore_index
        self.smooth = smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return dice_loss(
            logits, target, weight=self.weight, ignore_index=self.ignore_index, smooth=self.smooth
        )


class SumOfLosses(nn.Module):
    """A weighted sum of losses, ``sum_k factor_k * loss_k(logits, target)``.

    Args:
        losses (dict[str, nn.Module]): the terms, by name.
        factors (dict[str, float] | None): the factor of each term; missing names get 1.
    """

    def __init__(
        self, losses: dict[str, nn.Module], *, factors: dict[str, float] | None = None
    ) -> None:
        super().__init__()
        self.losses = nn.ModuleDict(losses)
        self.factors = {name: float((factors or {}).get(name, 1.0)) for name in losses}

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        terms = [self.factors[k] * loss(logits, target) for k, loss in self.losses.items()]
        return torch.stack(terms).sum()


def build_loss(
    name: str, *, weight: Tensor | None = None, ignore_index: int = 255, **kw: Any
) -> nn.Module:
    """Build a named segmentation loss, so that a config can say ``loss: ce+dice``.

    ========= ============================================ ==================================
    name      module                                       options (``**kw``)
    ========= ============================================ ==================================
    ce        :class:`SegmentationCrossEntropy`            ``reduction``
    dice      :class:`DiceLoss` (``weight`` per class)     ``smooth``
    focal     :class:`FocalLoss` (``weight`` as alpha)     ``gamma``, ``reduction``
    ce+dice   cross-entropy + ``dice_factor`` x dice       ``smooth``, ``dice_factor=1.0``
    ========= ============================================ ==================================

    In ``"ce+dice"`` the class weights go to the cross-entropy term only: dice already averages
    over classes, so rare classes count as much as common ones there.

    Args:
        name (str): one of ``"ce"``, ``"dice"``, ``"focal"``, ``"ce+dice"``.
        weight (Tensor[C] | None): per-class weights, e.g. from :func:`class_weights`.
        ignore_index (int): label of pixels that get no loss.
        **kw (Any): options of the named loss, see the table.

    Returns:
        nn.Module: called as ``loss(logits, target)``.

    Raises:
        ValueError: on an unknown name or an option that loss does not take.
    """
    options = LOSS_OPTIONS
    if name not in options:
        raise ValueError(f"unknown loss {name!r}; expected one of {list(LOSSES)}")
    unknown = sorted(set(kw) - set(options[name]))
    if unknown:
        raise ValueError(
            f"loss {name!r} takes options {list(options[name])} (plus weight, ignore_index); "
            f"got unexpected {unknown}"
        )
    if name == "ce":
        return SegmentationCrossEntropy(weight=weight, ignore_index=ignore_index, **kw)
    if name == "dice":
        return DiceLoss(weight=weight, ignore_index=ignore_index, **kw)
    if name == "focal":
        return FocalLoss(alpha=weight, ignore_index=ignore_index, **kw)
    dice_factor = kw.pop("dice_factor", 1.0)
    return SumOfLosses(
        {
            "ce": SegmentationCrossEntropy(weight=weight, ignore_index=ignore_index),
            "dice": DiceLoss(ignore_index=ignore_index, **kw),
        },
        factors={"dice": dice_factor},
    )


# --- Private helpers -------------------------------------------------------------------------


def _check_inputs(logits: Tensor, target: Tensor, ignore_index: int, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"expected reduction in {list(_REDUCTIONS)}; got {reduction!r}")
    if logits.ndim != 4 or not logits.is_floating_point():
        raise ValueError(
            f"expected logits of shape [N, C, H, W] with a float dtype; got "
            f"{list(logits.shape)} {logits.dtype}"
        )
    if target.ndim != 3 or target.dtype != torch.int64:
        hint = " (call .long() on the mask)" if target.ndim == 3 else ""
        raise ValueError(
            f"expected target of shape [N, H, W] with dtype torch.int64; got "
            f"{list(target.shape)} {target.dtype}{hint}"
        )
    n, c, h, w = logits.shape
    if target.shape != (n, h, w):
        raise ValueError(
            f"expected target of shape [N, H, W] = {[n, h, w]} to match logits "
            f"{list(logits.shape)}; got {list(target.shape)} (resize the mask or the logits)"
        )
    # Checked here because an out-of-range label is a device-side assert on CUDA.
    bad = ((target < 0) | (target >= c)) & (target != ignore_index)
    if bad.any():
        values = torch.unique(target[bad])[:10].tolist()
        raise ValueError(
            f"expected target labels in [0, {c}) or ignore_index={ignore_index}; got {values} "
            f"(does num_classes match the dataset, and is void mapped to {ignore_index}?)"
        )


def _as_float_vector(what: str, vec: Tensor | None) -> Tensor | None:
    if vec is None:
        return None
    vec = torch.as_tensor(vec)
    if vec.ndim != 1:
        raise ValueError(f"expected {what} of shape [C]; got {list(vec.shape)}")
    return vec if vec.is_floating_point() else vec.float()


def _check_class_vector(what: str, vec: Tensor | None, logits: Tensor) -> Tensor | None:
    vec = _as_float_vector(what, vec)
    if vec is None:
        return None
    if vec.shape[0] != logits.shape[1]:
        raise ValueError(
            f"expected {what} of shape [C] = [{logits.shape[1]}] (one per logits channel); "
            f"got {list(vec.shape)}"
        )
    return vec.to(device=logits.device, dtype=logits.dtype)


#: The reference implementations a lab has students write themselves. The lab's hidden tests
#: switch them off through this list (``forbid(*LAB_REFERENCES)``), so renaming or adding a
#: helper here changes what they forbid, in one place.
LAB_REFERENCES = (class_weights, weighted_cross_entropy, focal_loss)
