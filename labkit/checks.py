"""Assertions for the lab notebooks' test cells, with messages a student can act on.

A failed check says what was checked, what was expected and what came::

    check_shape(logits, (2, 6, 64, 64), name="model(x)")
    # AssertionError: model(x): expected shape (2, 6, 64, 64), got (2, 6, 32, 32).

Checks look at values, never at what values say about themselves: a result is first copied
into a plain float64 :class:`numpy.ndarray` (from an exact :class:`torch.Tensor`, NumPy array
or scalar, Python number, or a list or tuple of these), with PyTorch's torch-function and
dispatch modes switched off and no method of the result's own class called, and the copies are
compared by NumPy. A tensor subclass is read as the plain tensor it holds; anything else (a
NumPy subclass, an object with ``__array__`` or ``__float__``) is refused. NaN passes only
where NaN was expected.

:func:`forbid` lets a hidden test make sure an exercise was written, not borrowed: inside
the block, calling labkit's own version of the exercise raises.

:func:`student_side` gives a test the library as the student's code sees it, for the objects
it hands to that code to keep, change or draw from (an optimizer, a network to freeze, a random
generator): in a notebook kernel that is the test's own library; under labkit's referee, where
tests run in a process of their own, it is the library of the student's process, so those
objects live where the student's code acts on them.
"""

from __future__ import annotations

import contextlib
import functools
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "ReferenceUsedError",
    "check_close",
    "check_shape",
    "forbid",
    "student_modules",
    "student_side",
    "switch_off",
]

# Private PyTorch entry points, looked up once: a later rebinding of torch attributes by
# notebook code does not reach them. TensorBase is the C type under torch.Tensor; its methods
# and properties cannot be replaced (it is immutable) and do not run a subclass's overrides.
_TensorBase: Any = getattr(torch._C, "TensorBase", None) or getattr(torch._C, "_TensorBase", None)
_GUARDS: dict[str, Callable[[], contextlib.AbstractContextManager] | None] = {
    # each switches off one way for Python code to answer a tensor operation: torch-function
    # modes and subclasses; dispatch modes and subclasses; the pre-dispatch (export) modes
    "torch._C.DisableTorchFunction": getattr(torch._C, "DisableTorchFunction", None),
    "torch._C._DisableTorchDispatch": getattr(torch._C, "_DisableTorchDispatch", None),
    "torch._C._ExcludeDispatchKeyGuard": None,
}
with contextlib.suppress(AttributeError):
    _PRE_DISPATCH = torch._C.DispatchKeySet(torch._C.DispatchKey.PreDispatch)
    _GUARDS["torch._C._ExcludeDispatchKeyGuard"] = functools.partial(
        torch._C._ExcludeDispatchKeyGuard, _PRE_DISPATCH
    )
_dispatch_keys = getattr(torch._C, "_dispatch_keys", None)
_PYTHON_KEY = getattr(getattr(torch._C, "DispatchKey", None), "Python", None)
# dtypes whose tensors NumPy reads in place (anything else is converted by torch first)
_NUMPY_READS = frozenset(
    {
        torch.bool,
        torch.uint8,
        torch.int8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.float16,
        torch.float32,
        torch.float64,
    }
)
# NumPy's own numeric scalar types; a number's dtype must be one of them, exactly
_NUMPY_SCALARS = frozenset(
    t
    for t in set(np.sctypeDict.values())
    if issubclass(t, (np.bool_, np.integer, np.floating)) and not issubclass(t, np.timedelta64)
)
_TENSOR_ROOT: type = _TensorBase or torch.Tensor
_MAX_DEPTH = 32  # nesting of lists; deeper is refused rather than recursed into


class _Refused(Exception):
    """A value that cannot be read as plain numbers; the message says what it was."""


@contextlib.contextmanager
def _modes_off() -> Iterator[None]:
    """Inside, no torch-function or dispatch mode or subclass answers a tensor operation."""
    missing = [name for name, guard in _GUARDS.items() if guard is None] + [
        "torch._C.TensorBase"
    ] * (_TensorBase is None)
    if missing:  # without them a mode could answer for the tensor: refuse to judge
        raise RuntimeError(
            f"labkit.checks cannot read tensors safely with torch "
            f"{torch.__version__}: it lacks {', '.join(missing)}. Use the torch "
            "version labkit pins, or update labkit."
        )
    with contextlib.ExitStack() as stack:
        for guard in _GUARDS.values():
            stack.enter_context(guard())
        yield


def _plain_tensor(x: torch.Tensor) -> torch.Tensor:
    """The plain tensor holding ``x``'s values (no autograd); call it under :func:`_modes_off`.

    Raises:
        _Refused: when ``x``'s class answers operations itself (``__torch_dispatch__``), so
            that its storage need not hold the values it shows, or it is not dense.
    """
    if _dispatch_keys is None or _PYTHON_KEY is None:  # cannot tell: only plain tensors pass
        if type(x) is not torch.Tensor:
            raise _Refused(
                "a tensor subclass, and this torch cannot tell whether it answers "
                "its own operations; expected a plain torch.Tensor"
            )
    elif _dispatch_keys(x).has(_PYTHON_KEY):
        raise _Refused("a tensor whose class answers its own operations (__torch_dispatch__)")
    tb = _TensorBase
    # .data: a plain tensor on x's storage, made without autograd and without an operator call
    t = tb.data.__get__(x)
    layout = tb.layout.__get__(t)
    if type(t) is not torch.Tensor or layout != torch.strided or tb.is_quantized.__get__(t):
        raise _Refused(f"a {layout} tensor of {tb.dtype.__get__(t)}; expected a dense one")
    return t


def _tensor_values(x: torch.Tensor) -> np.ndarray:
    """A float64 copy of the values in ``x``, read without asking ``x`` or any mode."""
    tb = _TensorBase
    with _modes_off():
        t = _plain_tensor(x)
        dtype = tb.dtype.__get__(t)
        if tb.is_complex(t):
            raise _Refused(f"a tensor of {dtype}; expected real numbers")
        try:
            if tb.device.__get__(t).type != "cpu":
                t = tb.to(t, "cpu")
            if dtype not in _NUMPY_READS:  # bfloat16, float8: NumPy has no such type
                t = tb.to(t, torch.float64)
            t = tb.resolve_neg(t)
            values = np.array(tb.numpy(t), dtype=np.float64, copy=True)
        except Exception as err:  # a meta tensor, a functorch wrapper: no storage to read
            raise _Refused(f"a tensor whose values cannot be read ({err})") from None
        if values.shape != tuple(tb.shape.__get__(t)):  # NumPy read all that torch holds
            raise _Refused("a tensor whose values cannot be read")
    return values


def _values(x: Any, depth: int = 0) -> np.ndarray:
    """A float64 copy of a number, array, tensor or list of them; refuses anything else.

    Only exact types are read by their own means; a subclass of ``int`` or ``float`` gives the
    number it stores (never its ``__float__`` or ``__eq__``), and no other class is asked.
    """
    kind = type(x)
    if kind is float or kind is int or kind is bool:
        try:
            return np.array(float(x))
        except OverflowError:
            raise _Refused("an integer too large for a float64") from None
    if kind in _NUMPY_SCALARS:
        return np.array(x, dtype=np.float64)
    if kind is np.ndarray:
        if x.dtype.type not in _NUMPY_SCALARS:
            raise _Refused(f"an array of {x.dtype}; expected numbers (bool, int or float)")
        return np.array(x, dtype=np.float64, copy=True)
    if issubclass(kind, _TENSOR_ROOT):
        return _tensor_values(x)
    if issubclass(kind, float):  # float.__float__ returns the stored value, not an override
        return np.array(float.__float__(x))
    if issubclass(kind, int):
        return _values(int.__index__(x), depth)
    if kind is list or kind is tuple or kind is torch.Size or kind is range:
        if depth >= _MAX_DEPTH:
            raise _Refused(f"lists nested deeper than {_MAX_DEPTH}")
        if all(type(v) is float or type(v) is int or type(v) is bool for v in x):
            try:  # the common case, a list of plain numbers, read in one go
                return np.array([float(v) for v in x], dtype=np.float64).reshape(len(x))
            except OverflowError:
                raise _Refused("an integer too large for a float64") from None
        items = [_values(v, depth + 1) for v in x]
        if not items:
            return np.zeros((0,))
        if any(v.shape != items[0].shape for v in items):
            raise _Refused(
                f"a ragged {kind.__name__}: its items have shapes "
                f"{sorted({v.shape for v in items})}"
            )
        return np.stack(items)
    if issubclass(kind, np.ndarray):
        raise _Refused(
            f"a {kind.__name__}, a subclass of numpy.ndarray; expected a plain "
            "array (np.asarray(...)) or a tensor"
        )
    raise _Refused(f"a {kind.__name__}; expected a tensor, an array, a number or a list")


def _shown(x: Any) -> str:
    """``repr(x)`` for builtin values; other objects are not asked to describe themselves."""
    if type(x) in (type(None), bool, int, float, str, bytes):
        return repr(x)
    return f"<{type(x).__module__}.{type(x).__qualname__} object>"


def check_shape(got: Any, expected: Sequence[int], *, name: str = "result") -> None:
    """Assert that ``got`` is a tensor or array of shape ``expected``.

    The shape is read from the tensor itself (a subclass's ``shape`` is not asked); a NumPy
    array must be a plain ``numpy.ndarray``.

    Raises:
        AssertionError: naming ``name``, the expected and the actual shape (or type).
    """
    want = tuple(int(s) for s in expected)
    kind, shape = type(got), None
    if kind is np.ndarray:
        shape = tuple(int(s) for s in got.shape)
    elif kind in _NUMPY_SCALARS:
        shape = ()
    elif issubclass(kind, _TENSOR_ROOT):
        try:
            with _modes_off():
                shape = tuple(int(s) for s in _TensorBase.shape.__get__(_plain_tensor(got)))
        except _Refused as why:
            raise AssertionError(
                f"{name}: expected a tensor of shape {want}, got {kind.__name__}: {why}."
            ) from None
    if shape is None:
        raise AssertionError(
            f"{name}: expected a tensor of shape {want}, got {kind.__name__} {_shown(got):.80}."
        )
    if shape != want:
        raise AssertionError(f"{name}: expected shape {want}, got {shape}.")


def _describe(x: np.ndarray) -> str:
    if x.size <= 8:
        return str([round(v, 6) for v in x.ravel().tolist()])
    return f"tensor of shape {x.shape}"


def check_close(
    got: Any, expected: Any, *, name: str = "result", atol: float = 1e-5, rtol: float = 1e-4
) -> None:
    """Assert that ``got`` equals ``expected`` up to a tolerance (NaN only where expected).

    Both are copied to float64 NumPy arrays first (see the module's docstring for what is
    accepted); shapes must match exactly. An element passes when
    ``|got - expected| <= atol + rtol * |expected|``, when both are the same infinity, or
    when both are NaN.

    Raises:
        AssertionError: naming ``name`` with both values (small results) or the shape, the
            largest difference and where it is (large ones); or saying what ``got`` is when it
            cannot be read as numbers.
        TypeError: when ``expected`` cannot be read as numbers.
    """
    try:
        g = _values(got)
    except _Refused as why:
        raise AssertionError(
            f"{name}: expected a number or tensor like {expected!r:.80}, got "
            f"{type(got).__name__} {_shown(got):.80}: {why}."
        ) from None
    try:
        e = _values(expected)
    except _Refused as why:
        raise TypeError(f"check_close({name!r}): expected must be numbers; got {why}.") from None
    if g.shape != e.shape:
        raise AssertionError(f"{name}: expected shape {e.shape}, got {g.shape}.")
    with np.errstate(all="ignore"):  # inf - inf is NaN, never an error, whatever seterr says
        close = np.isclose(g, e, rtol=float(rtol), atol=float(atol), equal_nan=True)
        if bool(close.all()):
            return
        # the worst miss: NaN against a number counts as infinitely far; matches never count
        diff = np.where(close, -1.0, np.nan_to_num(np.abs(g - e), nan=np.inf))
    if e.size == 1:
        raise AssertionError(f"{name}: expected {e.item():.6g}, got {g.item():.6g}.")
    where = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape))
    raise AssertionError(
        f"{name}: {int((~close).sum())} of {e.size} values differ; at index {where} expected "
        f"{float(e[where]):.6g}, got {float(g[where]):.6g}"
        + (f" (expected {_describe(e)}, got {_describe(g)})." if e.size <= 8 else ".")
    )


_MISSING = object()


class ReferenceUsedError(AssertionError):
    """An exercise called the library function it was meant to write."""


def _message(label: str) -> str:
    owner = "labkit's " if label.startswith("labkit.") else ""
    return (
        f"this exercise must be written by you: it called {owner}{label}, which the "
        "test switches off while it checks your code."
    )


def _raiser(label: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ReferenceUsedError(_message(label))

    return refuse


def _refusing_code(label: str) -> types.CodeType:
    # A function's __code__ may only be swapped for one with the same free variables, so
    # the stand-in is compiled closure-free, the message a constant in it.
    source = (
        "def refuse(*args, **kwargs):\n"
        "    from labkit.checks import ReferenceUsedError\n"
        f"    raise ReferenceUsedError({_message(label)!r})\n"
    )
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
    constructed and their ``forward``/``__call__`` refuse to run. Under labkit's referee
    (:func:`student_modules`) they are switched off in the student's process as well, where
    the student's code runs.

    Args:
        *references (Any): functions and classes (the library's versions of an exercise).
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
                        undo.append(
                            lambda r=ref, a=attr, o=old: (
                                delattr(r, a) if o is _MISSING else setattr(r, a, o)
                            )
                        )
            elif isinstance(ref, types.FunctionType):
                code = ref.__code__
                if code.co_freevars:
                    raise TypeError(f"forbid() cannot switch off {label}: it is a closure.")
                ref.__code__ = _refusing_code(label)
                undo.append(lambda f=ref, c=code: setattr(f, "__code__", c))
            else:
                raise TypeError(
                    f"forbid() takes functions and classes; got {label} ({type(ref).__name__})."
                )
        with _forbidden_there(references):
            yield
    finally:
        for step in reversed(undo):
            step()


@contextlib.contextmanager
def _forbidden_there(references: Sequence[Any]) -> Iterator[None]:
    """Under the referee, switch ``references`` off in the student's process too, where the
    student's code runs (each found there by module and qualified name); nothing in a kernel."""
    if _student_modules is None or not references:
        yield
        return
    from labkit.grading.remote import MODULES  # what the student's process may import

    theirs = []
    for ref in references:
        if ref.__module__.split(".")[0] not in MODULES:
            continue  # made by the test itself: nothing of it is in the student's process
        obj = _student_modules(ref.__module__)
        for part in ref.__qualname__.split("."):
            obj = getattr(obj, part)
        theirs.append(obj)
    if not theirs:
        yield
        return
    switch_on = _student_modules("labkit.checks").switch_off(*theirs)
    try:
        yield
    finally:
        switch_on()


def switch_off(*references: Any) -> Callable[[], None]:
    """:func:`forbid` without a block: ``references`` stay switched off until the function
    this returns is called (what the referee asks of the student's process, where a ``with``
    cannot reach).

    Args:
        *references (Any): as for :func:`forbid`.

    Returns:
        The function that switches them on again.
    """
    stack = contextlib.ExitStack()
    stack.enter_context(forbid(*references))
    return stack.close


# Set by the referee while a test runs (``student_modules``); ``None`` in a notebook kernel.
_student_modules: Callable[[str], Any] | None = None


def student_side(module: types.ModuleType) -> Any:
    """``module`` as the student's code sees it.

    A test builds with it the objects it hands to the student's code to keep, change or draw
    from, and reads them back through it: ``student_side(torch).optim.SGD(...)`` for an
    optimizer the student's scheduler steps, ``student_side(torch).Generator()`` for one it
    draws from, ``student_side(torch).manual_seed(0)`` for its global generator. In a notebook
    kernel (plain nbgrader) the student's code runs in the test's process and this is
    ``module`` itself. Under labkit's referee it is the module imported in the student's
    process; what the test reads from objects made with it comes back as plain data.

    Args:
        module (types.ModuleType): a module of torch, torchvision, NumPy, ``math`` or labkit.

    Returns:
        ``module``, or its counterpart in the student's process.
    """
    return module if _student_modules is None else _student_modules(module.__name__)


@contextlib.contextmanager
def student_modules(lookup: Callable[[str], Any]) -> Iterator[None]:
    """Inside the block, :func:`student_side` returns ``lookup(module.__name__)``.

    Args:
        lookup (Callable[[str], Any]): the module of that name in the student's process (the
            referee's :meth:`labkit.grading.proxy.Channel.module`).
    """
    global _student_modules
    previous, _student_modules = _student_modules, lookup
    try:
        yield
    finally:
        _student_modules = previous
