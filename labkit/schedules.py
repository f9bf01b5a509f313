"""Learning-rate schedules for segmentation training, built on ``torch.optim.lr_scheduler``.

Two layers, kept apart on purpose:

* :func:`build_scheduler` turns a name from a config (``"poly"``, ``"step"``, ``"cosine"``,
  ``"constant"``) into a real PyTorch scheduler, with an optional linear warmup. The training
  loop calls ``scheduler.step()`` once per iteration, so every length here counts iterations.
* :func:`poly_lr`, :func:`step_lr` and :func:`cosine_lr` are the closed-form formulas. Lab 02
  has students write them; these are the references their tests compare against, and the
  labkit tests check them against PyTorch's schedulers step by step.

:func:`lr_curve` runs a built scheduler on a throwaway optimizer and returns the learning rate
at every step, for plotting.

The poly schedule is the one of DeepLab (Chen et al., 2017, https://arxiv.org/abs/1606.00915);
cosine annealing is SGDR without restarts (Loshchilov & Hutter, https://arxiv.org/abs/1608.03983).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    PolynomialLR,
    SequentialLR,
    StepLR,
)

__all__ = [
    "LAB_REFERENCES",
    "SCHEDULERS",
    "build_scheduler",
    "cosine_lr",
    "lr_curve",
    "poly_lr",
    "step_lr",
]

# name -> the keyword options it accepts (besides total_steps / warmup_steps / start_factor).
SCHEDULERS: dict[str, tuple[str, ...]] = {
    "poly": ("power",),
    "step": ("step_size", "gamma"),
    "cosine": ("min_lr",),
    "constant": (),
}


# --- Closed-form formulas --------------------------------------------------------------------


def poly_lr(
    step: int, *, base_lr: float, total_steps: int, power: float = 0.9, min_lr: float = 0.0
) -> float:
    """Polynomial ("poly") decay, ``min_lr + (base_lr - min_lr) * (1 - step / T) ** power``.

    With ``power=1`` this is a straight line from ``base_lr`` to ``min_lr``; DeepLab uses 0.9.
    Steps past ``total_steps`` stay at ``min_lr``. With ``min_lr=0`` it matches
    ``torch.optim.lr_scheduler.PolynomialLR``.

    Args:
        step (int): iteration index, 0 for the first.
        base_lr (float): learning rate at step 0.
        total_steps (int): ``T``, the step at which the rate reaches ``min_lr``.
        power (float): exponent of the decay.
        min_lr (float): floor the rate decays to.

    Returns:
        float: the learning rate at ``step``.
    """
    _check_positive("total_steps", total_steps)
    frac = min(max(step, 0), total_steps) / total_steps
    return min_lr + (base_lr - min_lr) * (1.0 - frac) ** power


def step_lr(step: int, *, base_lr: float, step_size: int, gamma: float = 0.1) -> float:
    """Step decay, ``base_lr * gamma ** (step // step_size)``, as PyTorch's ``StepLR``.

    Args:
        step (int): iteration index, 0 for the first.
        base_lr (float): learning rate at step 0.
        step_size (int): number of steps between two decays.
        gamma (float): factor applied at each decay.

    Returns:
        float: the learning rate at ``step``.
    """
    _check_positive("step_size", step_size)
    return base_lr * gamma ** (max(step, 0) // step_size)


def cosine_lr(step: int, *, base_lr: float, total_steps: int, min_lr: float = 0.0) -> float:
    """Cosine annealing: ``min_lr + (base_lr - min_lr) * (1 + cos(pi * step / total_steps)) / 2``.

    Half a cosine from ``base_lr`` at step 0 to ``min_lr`` at ``total_steps``, as
    ``torch.optim.lr_scheduler.CosineAnnealingLR`` with ``T_max=total_steps, eta_min=min_lr``
    for ``0 <= step <= total_steps``. Steps past ``total_steps`` stay at ``min_lr`` (PyTorch's
    scheduler would climb back up; a training run never gets there).

    Args:
        step (int): iteration index, 0 for the first.
        base_lr (float): learning rate at step 0.
        total_steps (int): step at which the rate reaches ``min_lr``.
        min_lr (float): floor the rate decays to.

    Returns:
        float: the learning rate at ``step``.
    """
    _check_positive("total_steps", total_steps)
    frac = min(max(step, 0), total_steps) / total_steps
    return min_lr + (base_lr - min_lr) * (1.0 + math.cos(math.pi * frac)) / 2.0


# --- PyTorch schedulers ----------------------------------------------------------------------


def build_scheduler(
    name: str,
    optimizer: Optimizer,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    start_factor: float = 0.1,
    **kw: Any,
) -> LRScheduler:
    """Build a named learning-rate schedule from ``torch.optim.lr_scheduler``.

    Call ``scheduler.step()`` once per training iteration, after ``optimizer.step()``.
    With ``warmup_steps > 0`` the rate first rises linearly from ``start_factor * base_lr`` to
    ``base_lr`` over ``warmup_steps`` steps (``LinearLR``), then ``SequentialLR`` hands over to
    the named schedule, which runs over the remaining ``total_steps - warmup_steps`` steps.

    ========== ====================== ====================================================
    name       PyTorch scheduler      options (``**kw``)
    ========== ====================== ====================================================
    poly       ``PolynomialLR``       ``power=0.9``; reaches 0 at ``total_steps``
    step       ``StepLR``             ``step_size=max(1, (total_steps - warmup_steps) // 3)``,
                                      ``gamma=0.1``
    cosine     ``CosineAnnealingLR``  ``min_lr=0.0`` (its ``eta_min``); reaches it at
                                      ``total_steps``
    constant   ``ConstantLR``         none (factor 1: the rate never changes)
    ========== ====================== ====================================================

    Args:
        name (str): one of ``"poly"``, ``"step"``, ``"cosine"``, ``"constant"``.
        optimizer (Optimizer): the optimizer whose param groups' ``lr`` is scheduled.
        total_steps (int): number of ``scheduler.step()`` calls in the whole run, warmup
            included (usually epochs x iterations per epoch).
        warmup_steps (int): length of the linear warmup; 0 for none.
        start_factor (float): warmup starts at ``start_factor * base_lr``; in (0, 1].
        **kw (Any): options of the named schedule, see the table.

    Returns:
        LRScheduler: the scheduler (a ``SequentialLR`` when there is a warmup).

    Raises:
        ValueError: on an unknown name or option, ``total_steps <= 0``,
            ``warmup_steps`` outside ``[0, total_steps)``, or ``start_factor`` outside (0, 1].
    """
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; expected one of {sorted(SCHEDULERS)}")
    allowed = SCHEDULERS[name]
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise ValueError(
            f"scheduler {name!r} takes options {list(allowed)} (plus total_steps, "
            f"warmup_steps, start_factor); got unexpected {unknown}"
        )
    _check_positive("total_steps", total_steps)
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"expected 0 <= warmup_steps < total_steps={total_steps}; got "
            f"warmup_steps={warmup_steps}. Shorten the warmup or train for more steps."
        )
    if warmup_steps > 0 and not 0.0 < start_factor <= 1.0:
        raise ValueError(f"expected start_factor in (0, 1]; got {start_factor}")

    main_steps = total_steps - warmup_steps
    main = _MAIN_BUILDERS[name](optimizer, main_steps, kw)
    if warmup_steps == 0:
        return main
    warmup = LinearLR(
        optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warmup_steps
    )
    return SequentialLR(optimizer, schedulers=[warmup, main], milestones=[warmup_steps])


def lr_curve(
    name: str,
    *,
    base_lr: float,
    total_steps: int,
    warmup_steps: int = 0,
    **kw: Any,
) -> list[float]:
    """The learning rate at every step of a schedule, from the real PyTorch scheduler.

    Builds the schedule with :func:`build_scheduler` on a throwaway SGD optimizer and steps it
    ``total_steps`` times, the way a training loop would.

    Args:
        name (str): schedule name, as for :func:`build_scheduler`.
        base_lr (float): the optimizer's learning rate.
        total_steps (int): number of steps in the run.
        warmup_steps (int): length of the linear warmup; 0 for none.
        **kw (Any): further options for :func:`build_scheduler` (``start_factor``, ``power``, ...).

    Returns:
        list[float]: ``total_steps`` values; entry ``t`` is the rate used by iteration ``t``
        (so the final value the schedule decays to, reached after the last step, is not in it).
    """
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=base_lr)
    scheduler = build_scheduler(
        name, optimizer, total_steps=total_steps, warmup_steps=warmup_steps, **kw
    )
    lrs: list[float] = []
    for _ in range(total_steps):
        lrs.append(float(optimizer.param_groups[0]["lr"]))
        # The parameter has no gradient, so this step changes nothing; it is here so that
        # PyTorch does not warn about stepping the scheduler before the optimizer.
        optimizer.step()
        scheduler.step()
    return lrs


# --- Private helpers -------------------------------------------------------------------------


def _check_positive(what: str, value: int) -> None:
    if value <= 0:
        raise ValueError(f"expected {what} > 0; got {what}={value}")


def _build_poly(optimizer: Optimizer, steps: int, kw: dict[str, Any]) -> LRScheduler:
    return PolynomialLR(optimizer, total_iters=steps, power=kw.get("power", 0.9))


def _build_step(optimizer: Optimizer, steps: int, kw: dict[str, Any]) -> LRScheduler:
    # A step size of 0 would divide by zero inside StepLR on short runs.
    step_size = kw.get("step_size", max(1, steps // 3))
    _check_positive("step_size", step_size)
    return StepLR(optimizer, step_size=step_size, gamma=kw.get("gamma", 0.1))


def _build_cosine(optimizer: Optimizer, steps: int, kw: dict[str, Any]) -> LRScheduler:
    # min_lr, as cosine_lr and poly_lr name the floor; PyTorch calls it eta_min
    return CosineAnnealingLR(optimizer, T_max=steps, eta_min=kw.get("min_lr", 0.0))


def _build_constant(optimizer: Optimizer, steps: int, kw: dict[str, Any]) -> LRScheduler:
    return ConstantLR(optimizer, factor=1.0, total_iters=steps)


_MAIN_BUILDERS: dict[str, Callable[[Optimizer, int, dict[str, Any]], LRScheduler]] = {
    "poly": _build_poly,
    "step": _build_step,
    "cosine": _build_cosine,
    "constant": _build_constant,
}


#: The reference implementations a lab has students write themselves. The lab's hidden tests
#: switch them off through this list (``forbid(*LAB_REFERENCES)``), so renaming or adding a
#: helper here changes what they forbid, in one place.
LAB_REFERENCES = (poly_lr, step_lr, cosine_lr, build_scheduler, lr_curve)
