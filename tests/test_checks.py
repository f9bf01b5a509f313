"""Tests for labkit.checks: the assertions the lab notebooks' test cells use."""

import math

import numpy as np
import pytest
import torch

from labkit import metrics
from labkit.checks import ReferenceUsedError, check_close, check_shape, forbid
from labkit.metrics import ConfusionMatrix
from labkit.metrics import mean_iou as aliased_mean_iou


def test_check_shape_passes_on_the_expected_shape():
    """Does a tensor or array of the expected shape pass silently?"""
    check_shape(torch.zeros(2, 3), (2, 3))
    check_shape(np.zeros((4,)), [4])


def test_check_shape_names_expected_and_got():
    """Does a wrong shape or a non-tensor fail with the name, the expected and the actual?"""
    with pytest.raises(AssertionError, match=r"logits: expected shape \(2, 6\), got \(6, 2\)"):
        check_shape(torch.zeros(6, 2), (2, 6), name="logits")
    with pytest.raises(AssertionError, match=r"expected a tensor of shape \(1,\), got list"):
        check_shape([1], (1,))


@pytest.mark.parametrize("got, expected", [
    (0.5, 0.5), (float("nan"), float("nan")), ([1.0, 2.0], torch.tensor([1.0, 2.0])),
    (torch.tensor([1.0, math.nan]), np.array([1.0, math.nan])),
    (torch.ones(3, 3) + 1e-7, torch.ones(3, 3)),
])
def test_check_close_accepts_equal_values(got, expected):
    """Do equal values pass, NaN equal to NaN and small float error tolerated?"""
    check_close(got, expected)


def test_check_close_reports_the_difference():
    """Does a mismatch say expected and got, for a number, a short vector and a big tensor?"""
    with pytest.raises(AssertionError, match=r"miou: expected 0.25, got 0.5"):
        check_close(0.5, 0.25, name="miou")
    with pytest.raises(AssertionError, match=r"at index \(1,\) expected 3, got 2"):
        check_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 3.0]))
    big = torch.zeros(5, 5)
    big[3, 4] = 1
    with pytest.raises(AssertionError, match=r"1 of 25 values differ; at index \(3, 4\)"):
        check_close(big, torch.zeros(5, 5))
    with pytest.raises(AssertionError, match=r"expected shape \(2,\), got \(3,\)"):
        check_close([1, 2, 3], [1, 2])
    with pytest.raises(AssertionError, match=r"got NoneType None"):
        check_close(None, 1.0)
    with pytest.raises(AssertionError, match="expected 1, got nan"):
        check_close(float("nan"), 1.0)


def test_forbid_catches_the_function_under_any_name_and_restores_it():
    """Is a forbidden function refused through an alias too, and back to normal after?"""
    p, t = torch.randint(0, 3, (2, 5, 5)), torch.randint(0, 3, (2, 5, 5))
    before = aliased_mean_iou(p, t, 3)
    with forbid(metrics.mean_iou):
        with pytest.raises(ReferenceUsedError, match="labkit.metrics.mean_iou"):
            aliased_mean_iou(p, t, 3)
        with pytest.raises(ReferenceUsedError):
            metrics.mean_iou(p, t, 3)
        assert metrics.pixel_accuracy(p, t) == metrics.pixel_accuracy(p, t)  # others still work
    assert aliased_mean_iou(p, t, 3) == before


def test_forbid_refuses_classes_and_their_existing_instances():
    """Can a forbidden class be neither built nor used, and is it whole again after?"""
    existing = torch.nn.Conv2d(1, 1, 1)
    with forbid(ConfusionMatrix, torch.nn.Conv2d):
        with pytest.raises(ReferenceUsedError):
            ConfusionMatrix(3)
        with pytest.raises(ReferenceUsedError, match=r"called torch\.nn\.modules\.conv\.Conv2d"):
            existing(torch.zeros(1, 1, 2, 2))
    assert ConfusionMatrix(3).num_classes == 3
    assert existing(torch.zeros(1, 1, 2, 2)).shape == (1, 1, 2, 2)
    assert "forward" in vars(torch.nn.Conv2d) and "__init__" in vars(torch.nn.Conv2d)


def test_forbid_restores_even_when_the_block_raises():
    """Does an exception inside the block still give every function back?"""
    with pytest.raises(KeyError), forbid(metrics.mean_iou):
        raise KeyError("x")
    assert metrics.mean_iou(torch.zeros(1, 2, 2, dtype=torch.long),
                            torch.zeros(1, 2, 2, dtype=torch.long), 2) == 1.0


def test_forbid_rejects_what_it_cannot_switch_off():
    """Is a non-function (a builtin, a closure) refused with a clear TypeError?"""
    with pytest.raises(TypeError, match="functions and classes"), forbid(len):
        pass

    def outer():
        x = 1
        return lambda: x
    with pytest.raises(TypeError, match="closure"), forbid(outer()):
        pass
