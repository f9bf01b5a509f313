"""Assertions for the lab notebooks' test cells, with messages a student can act on.

A failed check says what was checked, what was expected and what came::

    check_shape(logits, (2, 6, 64, 64), name="model(x)")
    # AssertionError: model(x): expected shape (2, 6, 64, 64), got (2, 6, 32, 32).

:func:`forbid` lets a hidden test make sure an exercise was written, not borrowed: inside
the block, calling labkit's own version of the exercise raises.
"""

from __future__ import annotations

import contextlib
import math
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

__all__ = ["ReferenceUsedError", "check_close", "check_shape", "forbid"]


def _shape(x: Any) -> tuple[int, ...] | None:
    shape = getattr(x, "shape", None)
    return None if shape is None else tuple(int(s) for s in shape)


def check_shape(got: Any, expected: Sequence[int], *, name: str = "result") -> None:
    """Assert that ``got`` is a tensor or array of shape ``expected``.

    Raises:
        AssertionError: naming ``name``, the expected and the actual shape (or type).
    """
    shape, want = _shape(got), tuple(int(s) for s in expected)
    if shape is None:
        raise AssertionError(f"{name}: expected a tensor of shape {want}, got "
                             f"{type(got).__name__} {got!r:.80}.")
    if shape != want:
        raise AssertionError(f"{name}: expected shape {want}, got {shape}.")


def _describe(x: torch.Tensor) -> str:
    if x.numel() <= 8:
        return str([round(v, 6) if isinstance(v, float) else v for v in x.flatten().tolist()])
    return f"tensor of shape {tuple(x.shape)}"


def check_close(got: Any, expected: Any, *, name: str = "result", atol: float = 1e-5,
                rtol: float = 1e-4) -> None:
    """Assert that ``got`` equals ``expected`` up to a tolerance (NaN equals NaN).

    Numbers, sequences, NumPy arrays and tensors are compared as float64 tensors; shapes
    must match exactly.

    Raises:
        AssertionError: naming ``name`` with both values (small results) or the shape, the
            largest difference and where it is (large ones).
    """
    try:
        g = torch.as_tensor(got.detach().cpu() if torch.is_tensor(got) else got,
                            dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise AssertionError(f"{name}: expected a number or tensor like {expected!r:.80}, got "
                             f"{type(got).__name__} {got!r:.80}.") from None
    e = torch.as_tensor(expected.detach().cpu() if torch.is_tensor(expected) else expected,
                        dtype=torch.float64)
    if g.shape != e.shape:
        raise AssertionError(f"{name}: expected shape {tuple(e.shape)}, got {tuple(g.shape)}.")
    close = torch.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
    if bool(close.all()):
        return
    if e.numel() == 1:
        raise AssertionError(f"{name}: expected {e.item():.6g}, got {g.item():.6g}.")
    diff = (g - e).abs().nan_to_num(nan=math.inf)
    where = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
    raise AssertionError(
        f"{name}: {int((~close).sum())} of {e.numel()} values differ; at index {where} expected "
        f"{e[where].item():.6g}, got {g[where].item():.6g}"
        + (f" (expected {_describe(e)}, got {_describe(g)})." if e.numel() <= 8 else "."))


_MISSING = object()


class ReferenceUsedError(AssertionError):
    """An exercise called the library function it was meant to write."""


def _message(label: str) -> str:
    owner = "labkit's " if label.startswith("labkit.") else ""
    return (f"this exercise must be written by you: it called {owner}{label}, which the "
            "test switches off while it checks your code.")


def _raiser(label: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ReferenceUsedError(_message(label))
    return refuse


def _refusing_code(label: str) -> types.CodeType:
    # A function's __code__ may only be swapped for one with the same free variables, so
    # the stand-in is compiled closure-free, the message a constant in it.
    source = ("def refuse(*args, **kwargs):\n"
              "    from labkit.checks import ReferenceUsedError\n"
              f"    raise ReferenceUsedError({_message(label)!r})\n")
    namespace: dict[str, Any] = {}
    exec(compile(source, "<labkit.checks.forbid>", "exec"), namespace)
    return namespace["refuse"].__code__


def _label(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


@contextlib.contextmanager
def forbid(*references: Any) -> Iterator[None]:
    """Inside the block, calling any of ``references`` raises :class:`ReferenceUsedError`.

    Functions are switched off in place (their code object is swapped), so aliases such as
    ``from labkit.metrics import mean_iou as mine`` are caught too; classes cannot be
    constructed and their ``forward``/``__call__`` refuse to run.

    Args:
        *references: functions and classes (the library's versions of an exercise).
    """
    undo: list[Callable[[], None]] = []
    try:
        for ref in references:
            label = _label(ref)
            if isinstance(ref, type):
                for attr in ("__init__", "forward", "__call__"):
                    if attr in vars(ref) or attr == "__init__":
                        old = vars(ref).get(attr, _MISSING)
                        setattr(ref, attr, _raiser(label))
                        undo.append(lambda r=ref, a=attr, o=old: (
                            delattr(r, a) if o is _MISSING else setattr(r, a, o)))
            elif isinstance(ref, types.FunctionType):
                code = ref.__code__
                if code.co_freevars:
                    raise TypeError(f"forbid() cannot switch off {label}: it is a closure.")
                ref.__code__ = _refusing_code(label)
                undo.append(lambda f=ref, c=code: setattr(f, "__code__", c))
            else:
                raise TypeError(f"forbid() takes functions and classes; got {label} "
                                f"({type(ref).__name__}).")
        yield
    finally:
        for step in reversed(undo):
            step()

