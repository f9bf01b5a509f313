"""Tests for labkit.schedules: PyTorch's schedulers are the oracle for the closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from labkit.schedules import (
    SCHEDULERS,
    build_scheduler,
    cosine_lr,
    lr_curve,
    poly_lr,
    step_lr,
)

BASE_LR = 0.01


def _optimizer(lr: float = BASE_LR) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


def _run(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[float]:
    """Rates used by each of ``steps`` iterations, plus the one after the last step."""
    opt = scheduler.optimizer
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    lrs.append(opt.param_groups[0]["lr"])
    return lrs


# Each case: (name, scheduler options, closed form of step t given the post-warmup length n).
CASES = [
    ("poly", {}, lambda t, n: poly_lr(t, base_lr=BASE_LR, total_steps=n)),
    ("poly", {"power": 2.0}, lambda t, n: poly_lr(t, base_lr=BASE_LR, total_steps=n, power=2.0)),
    ("step", {}, lambda t, n: step_lr(t, base_lr=BASE_LR, step_size=max(1, n // 3))),
    (
        "step",
        {"step_size": 4, "gamma": 0.5},
        lambda t, n: step_lr(t, base_lr=BASE_LR, step_size=4, gamma=0.5),
    ),
    ("cosine", {}, lambda t, n: cosine_lr(t, base_lr=BASE_LR, total_steps=n)),
    (
        "cosine",
        {"min_lr": 1e-4},
        lambda t, n: cosine_lr(t, base_lr=BASE_LR, total_steps=n, min_lr=1e-4),
    ),
    ("constant", {}, lambda t, n: BASE_LR),
]


@pytest.mark.parametrize("name,kw,formula", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_scheduler_matches_closed_form_at_every_step(name, kw, formula):
    """Does the built scheduler give the closed-form rate at every step, end point included?"""
    total = 23
    sched = build_scheduler(name, _optimizer(), total_steps=total, **kw)
    got = _run(sched, total)
    want = [formula(t, total) for t in range(total + 1)]
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name,kw,formula", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_warmup_ramps_linearly_then_hands_over(name, kw, formula):
    """Does warmup rise linearly from start_factor*lr to lr, then run the schedule over the rest?"""
    total, warmup, start = 30, 5, 0.2
    sched = build_scheduler(
        name, _optimizer(), total_steps=total, warmup_steps=warmup, start_factor=start, **kw
    )
    got = _run(sched, total)
    ramp = [BASE_LR * (start + (1.0 - start) * t / warmup) for t in range(warmup)]
    after = [formula(t, total - warmup) for t in range(total - warmup + 1)]
    assert got == pytest.approx(ramp + after, rel=1e-9, abs=1e-12)
    assert got[warmup] == pytest.approx(BASE_LR)


def test_warmup_default_start_factor_is_a_tenth():
    """Does a warmup without start_factor begin at 0.1 x the base rate?"""
    curve = lr_curve("cosine", base_lr=1.0, total_steps=10, warmup_steps=4)
    assert curve[:4] == pytest.approx([0.1, 0.325, 0.55, 0.775])


def test_poly_reaches_zero_at_total_steps():
    """Does poly decay to 0 exactly when the run ends, with and without warmup?"""
    for warmup in (0, 7):
        sched = build_scheduler("poly", _optimizer(), total_steps=50, warmup_steps=warmup)
        lrs = _run(sched, 50)
        assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
        assert lrs[-2] > 0.0


def test_scheduler_schedules_every_param_group():
    """Does every param group follow the schedule from its own base rate?"""
    opt = torch.optim.SGD(
        [
            {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1},
            {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.01},
        ]
    )
    sched = build_scheduler("cosine", opt, total_steps=8, warmup_steps=2)
    for _ in range(5):
        opt.step()
        sched.step()
    lrs = [g["lr"] for g in opt.param_groups]
    assert lrs[0] == pytest.approx(cosine_lr(3, base_lr=0.1, total_steps=6))
    assert lrs[1] == pytest.approx(cosine_lr(3, base_lr=0.01, total_steps=6))


def test_lr_curve_is_the_rate_used_by_each_iteration():
    """Does lr_curve return one rate per iteration, equal to the closed form?"""
    curve = lr_curve("poly", base_lr=0.5, total_steps=12, power=1.0)
    assert len(curve) == 12
    assert curve == pytest.approx([0.5 * (1 - t / 12) for t in range(12)])


def test_lr_curve_does_not_warn():
    """Does lr_curve step the optimizer before the scheduler, so PyTorch raises no warning?"""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lr_curve("step", base_lr=0.1, total_steps=6, warmup_steps=2)


def test_closed_forms_by_hand():
    """Do the formulas give the values worked out by hand at a few points?"""
    assert poly_lr(5, base_lr=1.0, total_steps=10, power=1.0) == pytest.approx(0.5)
    assert poly_lr(5, base_lr=1.0, total_steps=10) == pytest.approx(0.5**0.9)
    assert poly_lr(10, base_lr=1.0, total_steps=10, min_lr=0.1) == pytest.approx(0.1)
    assert poly_lr(99, base_lr=1.0, total_steps=10) == 0.0
    assert step_lr(9, base_lr=1.0, step_size=3) == pytest.approx(1e-3)
    assert step_lr(8, base_lr=1.0, step_size=3) == pytest.approx(1e-2)
    assert cosine_lr(5, base_lr=1.0, total_steps=10) == pytest.approx(0.5)
    assert cosine_lr(10, base_lr=1.0, total_steps=10, min_lr=0.2) == pytest.approx(0.2)
    assert cosine_lr(2, base_lr=1.0, total_steps=6) == pytest.approx(0.75)  # (1 + cos 60°) / 2
    assert cosine_lr(4, base_lr=1.0, total_steps=6) == pytest.approx(0.25)  # (1 + cos 120°) / 2
    assert math.isclose(cosine_lr(0, base_lr=0.3, total_steps=4), 0.3)


def test_unknown_name_lists_valid_names():
    """Is an unknown schedule name refused with the list of valid ones?"""
    with pytest.raises(ValueError, match="unknown scheduler 'exp'") as info:
        build_scheduler("exp", _optimizer(), total_steps=10)
    for name in SCHEDULERS:
        assert name in str(info.value)


def test_unknown_option_is_refused():
    """Is an option the schedule does not take refused, naming what it does take?"""
    with pytest.raises(ValueError, match=r"takes options \['power'\].*got unexpected \['gamma'\]"):
        build_scheduler("poly", _optimizer(), total_steps=10, gamma=0.5)


@pytest.mark.parametrize(
    "total,warmup,pattern",
    [
        (0, 0, r"expected total_steps > 0; got total_steps=0"),
        (-3, 0, r"expected total_steps > 0; got total_steps=-3"),
        (10, 10, r"expected 0 <= warmup_steps < total_steps=10; got warmup_steps=10"),
        (10, 12, r"expected 0 <= warmup_steps < total_steps=10; got warmup_steps=12"),
        (10, -1, r"expected 0 <= warmup_steps < total_steps=10; got warmup_steps=-1"),
    ],
)
def test_bad_lengths_say_expected_and_got(total, warmup, pattern):
    """Are impossible total/warmup lengths refused with what was expected and what came?"""
    with pytest.raises(ValueError, match=pattern):
        build_scheduler("cosine", _optimizer(), total_steps=total, warmup_steps=warmup)


def test_bad_start_factor_and_step_size():
    """Are a zero warmup start factor and a zero step size refused?"""
    with pytest.raises(ValueError, match=r"start_factor in \(0, 1\]; got 0"):
        build_scheduler("poly", _optimizer(), total_steps=10, warmup_steps=2, start_factor=0)
    with pytest.raises(ValueError, match="expected step_size > 0; got step_size=0"):
        build_scheduler("step", _optimizer(), total_steps=10, step_size=0)


def test_short_step_run_has_a_usable_default_step_size():
    """Does "step" on a run shorter than 3 steps still build (step size at least 1)?"""
    assert lr_curve("step", base_lr=1.0, total_steps=2) == pytest.approx([1.0, 0.1])
