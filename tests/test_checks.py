"""Tests for labkit.checks: the assertions the lab notebooks' test cells use.

The attack tests each show a hostile value fooling a naive comparison (the one labkit used
before, or the obvious NumPy or Python one) and then failing :func:`check_close`.
"""

import ast
import importlib
import importlib.util
import inspect
import math
import pkgutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from nbgrader import utils as nbutils
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

import labkit
from labkit import checks, metrics
from labkit.checks import ReferenceUsedError, check_close, check_shape, forbid
from labkit.grading.strip import forbidden_references
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


@pytest.mark.parametrize(
    "got, expected",
    [
        (0.5, 0.5),
        (float("nan"), float("nan")),
        ([1.0, 2.0], torch.tensor([1.0, 2.0])),
        (torch.tensor([1.0, math.nan]), np.array([1.0, math.nan])),
        (torch.ones(3, 3) + 1e-7, torch.ones(3, 3)),
    ],
)
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


def _naive_close(got, expected) -> bool:
    """labkit's check_close before it read values itself: torch compares what it is given."""
    g = torch.as_tensor(got.detach().cpu() if torch.is_tensor(got) else got, dtype=torch.float64)
    e = torch.as_tensor(expected, dtype=torch.float64)
    return g.shape == e.shape and bool(torch.isclose(g, e, equal_nan=True).all())


def _naive_shape(x) -> tuple:
    return tuple(x.shape)


WRONG, RIGHT = torch.tensor([0.5, 0.5]), torch.tensor([0.25, 0.75])


class _AllCloseMode(TorchFunctionMode):
    """A mode a notebook enters and never leaves: every comparison says "all close", and
    every way to read a tensor's values or shape hands back the expected ones."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.isclose, torch.eq, torch.Tensor.eq, torch.Tensor.__eq__):
            shapes = (torch.as_tensor(a).shape for a in args[:2])
            return torch.ones(torch.broadcast_shapes(*shapes), dtype=torch.bool)
        if func in (torch.allclose, torch.equal):
            return True
        if func is torch.Tensor.numpy:
            return RIGHT.numpy().astype(np.float32)
        if func is torch.Tensor.tolist:
            return RIGHT.tolist()
        return func(*args, **kwargs)


def test_an_active_torch_function_mode_is_not_asked():
    """Is a TorchFunctionMode left active (one that answers isclose, numpy, tolist) ignored?"""
    mode = _AllCloseMode()
    mode.__enter__()  # as a notebook would leave it: entered, never exited
    try:
        assert _naive_close(WRONG, RIGHT)  # the attack works on a naive check
        assert torch.allclose(WRONG, RIGHT) and WRONG.numpy().tolist() == [0.25, 0.75]
        with pytest.raises(AssertionError, match=r"2 of 2 values differ.*expected 0.25, got 0.5"):
            check_close(WRONG, RIGHT)
        with pytest.raises(AssertionError, match="expected 0.25, got 0.5"):
            check_close(WRONG[0], 0.25)
        check_close(RIGHT, [0.25, 0.75])  # and right values still pass
    finally:
        mode.__exit__(None, None, None)


class _AllTrueDispatch(TorchDispatchMode):
    """The same attack one level down: every reduction to a truth value answers True, and
    every copy into another dtype or device comes back holding 0.25 and 0.75."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket in (torch.ops.aten.all, torch.ops.aten.any, torch.ops.aten.equal):
            return True if isinstance(out, bool) else torch.ones_like(out)
        if func.overloadpacket is torch.ops.aten._to_copy and out.shape == RIGHT.shape:
            return RIGHT.to(out.dtype)
        return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_an_active_dispatch_mode_is_not_asked(dtype):
    """Is a TorchDispatchMode left active (answering all() and dtype copies) ignored?"""
    wrong = WRONG.to(dtype)
    mode = _AllTrueDispatch()
    mode.__enter__()
    try:
        assert _naive_close(wrong, RIGHT)
        with pytest.raises(AssertionError, match="expected 0.25, got 0.5"):
            check_close(wrong, RIGHT)
        check_close(RIGHT.to(dtype), [0.25, 0.75])
    finally:
        mode.__exit__(None, None, None)


class _Flatterer(torch.Tensor):
    """A tensor subclass that answers isclose with True and lies about its shape."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.isclose:
            return torch.ones(args[1].shape, dtype=torch.bool)
        return super().__torch_function__(func, types, args, kwargs or {})


class _Stretched(torch.Tensor):
    """A tensor subclass whose shape, data and class are not what it holds."""

    shape = property(lambda self: torch.Size([2, 6, 64, 64]))
    data = property(lambda self: torch.zeros(2, 6, 64, 64))
    __class__ = property(lambda self: torch.Tensor)


def test_a_tensor_subclass_is_read_as_the_plain_tensor_it_holds():
    """Does a subclass that answers isclose (or .shape, .data) itself get its real values
    and shape checked, while an honest subclass such as nn.Parameter still passes?"""
    liar = WRONG.double().as_subclass(_Flatterer)  # float64: as_tensor keeps the subclass
    assert _naive_close(liar, RIGHT)
    with pytest.raises(AssertionError, match="expected 0.25, got 0.5"):
        check_close(liar, RIGHT)
    tall = WRONG.clone().as_subclass(_Stretched)
    assert _naive_shape(tall) == (2, 6, 64, 64)
    assert _naive_close(tall.data, torch.zeros(tall.shape)) and isinstance(tall, torch.Tensor)
    with pytest.raises(AssertionError, match=r"expected shape \(2, 6, 64, 64\), got \(2,\)"):
        check_shape(tall, (2, 6, 64, 64))
    with pytest.raises(AssertionError, match=r"expected shape \(2, 6, 64, 64\), got \(2,\)"):
        check_close(tall, torch.zeros(2, 6, 64, 64))
    check_close(RIGHT.clone().as_subclass(_Flatterer), RIGHT)
    param = torch.nn.Parameter(torch.ones(6, 4, 3, 3))
    check_shape(param, (6, 4, 3, 3))
    check_close(param * 2, torch.full((6, 4, 3, 3), 2.0))
    check_close(param, param.detach().clone())


class _Mask(torch.Tensor):
    """A wrapper subclass: its storage is empty and every operation sees ``shown``."""

    __torch_function__ = torch._C._disabled_torch_function_impl

    @staticmethod
    def __new__(cls, shown):
        out = torch.Tensor._make_wrapper_subclass(cls, shown.shape, dtype=shown.dtype)
        out.shown = shown
        return out

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        def unwrap(a):
            return a.shown if isinstance(a, _Mask) else a

        return func(*tree_map(unwrap, args), **tree_map(unwrap, kwargs or {}))


def test_a_tensor_that_answers_its_own_operations_is_refused():
    """Is a __torch_dispatch__ subclass (whose values are whatever it says) refused?"""
    masked = _Mask(RIGHT.clone())
    assert _naive_close(masked, RIGHT)
    with pytest.raises(AssertionError, match=r"_Mask.*answers its own operations"):
        check_close(masked, RIGHT)
    with pytest.raises(AssertionError, match=r"got _Mask: .*answers its own operations"):
        check_shape(masked, (2,))


class _Agreeable(np.ndarray):
    """A NumPy subclass whose ufuncs and array functions all say True."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return True

    def __array_function__(self, func, types, args, kwargs):
        return True


class _ArrayLike:
    """An object that says it is an array (or a number) holding the expected values."""

    def __array__(self, dtype=None, copy=None):
        return RIGHT.numpy().astype(dtype or np.float32)

    def __float__(self):
        return 0.25

    def __index__(self):
        return 0


@pytest.mark.parametrize(
    "liar, naive",
    [
        (WRONG.numpy().view(_Agreeable), lambda g: np.allclose(g, RIGHT.numpy())),
        (_ArrayLike(), lambda g: np.allclose(g, RIGHT.numpy())),
    ],
)
def test_objects_that_claim_to_be_arrays_are_refused(liar, naive):
    """Are a NumPy subclass and an object with __array__ / __float__ refused, with a message
    that names their type?"""
    assert naive(liar)
    with pytest.raises(AssertionError, match=f"got {type(liar).__name__} "):
        check_close(liar, RIGHT)
    with pytest.raises(AssertionError, match=f"got {type(liar).__name__} "):
        check_shape(liar, (2,))


class _Float(float):
    def __eq__(self, other):
        return True

    __hash__ = float.__hash__

    def __float__(self):
        return 0.25

    def __sub__(self, other):
        return 0.0

    def __abs__(self):
        return 0.0


class _Int(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__

    def __float__(self):
        return 824.0

    def __index__(self):
        return 824


@pytest.mark.parametrize(
    "liar, expected, message",
    [
        (_Float(0.5), 0.25, "expected 0.25, got 0.5"),
        (_Int(7), 824, "expected 824, got 7"),
        ([_Float(0.5), 0.75], [0.25, 0.75], "expected 0.25, got 0.5"),
    ],
)
def test_number_subclasses_give_the_number_they_store(liar, expected, message):
    """Is a float or int subclass read as its stored value, not its __eq__ or __float__?"""
    first = liar[0] if isinstance(liar, list) else liar
    assert first == expected or first == expected[0]  # __eq__ says yes
    assert abs(first - 0.25) == 0 or float(first) == expected  # and so does arithmetic
    with pytest.raises(AssertionError, match=message):
        check_close(liar, expected)
    check_close(_Float(0.25), 0.25)
    check_close(_Int(824), 824)


def test_nan_passes_only_where_nan_was_expected():
    """Does NaN fail against a number (as a `not diff > tol` comparison would not) and pass
    only where NaN is expected; are infinities equal to themselves only?"""
    got, want = torch.tensor([math.nan, 2 / 3]), torch.tensor([1 / 3, 2 / 3])
    assert not bool(((got - want).abs() > 1e-5).any())  # the naive check lets NaN through
    with pytest.raises(AssertionError, match=r"at index \(0,\) expected 0.333333, got nan"):
        check_close(got, want)
    check_close([1 / 3, 2 / 3, 0.0, math.nan], [1 / 3, 2 / 3, 0.0, float("nan")])
    with pytest.raises(AssertionError, match=r"at index \(3,\) expected 1, got nan"):
        check_close(np.array([math.nan, 0, 0, math.nan]), [math.nan, 0, 0, 1.0])
    with pytest.raises(AssertionError, match=r"at index \(1,\) expected nan, got 2"):
        check_close([math.nan, 2.0], [math.nan, math.nan])  # NaN expected, a number came
    check_close([math.inf, -math.inf], torch.tensor([math.inf, -math.inf]))
    for got, want in [(math.inf, -math.inf), (1e308, math.inf), (math.inf, math.nan)]:
        with pytest.raises(AssertionError):
            check_close(got, want)
    before = np.seterr(all="raise")  # a notebook's settings do not make inf - inf an error
    try:
        with pytest.raises(AssertionError, match="expected inf, got -inf"):
            check_close(-math.inf, math.inf)
    finally:
        np.seterr(**before)


@pytest.mark.parametrize(
    "got, expected",
    [
        ([[0.1], [0.1], [0.05]], torch.tensor([[0.1], [0.1], [0.05]])),
        ((1, True, np.float32(0.5), np.int64(3)), [1.0, 1.0, 0.5, 3.0]),
        ([torch.tensor(1.0), np.float64(2.0), 3], [1, 2, 3]),
        ([torch.ones(2), np.ones(2)], torch.ones(2, 2)),
        ([], np.zeros(0)),
        (torch.Size([2, 3]), range(2, 4)),
        (torch.tensor(2.5, dtype=torch.float64), 2.5),
        (torch.tensor([1, 255], dtype=torch.uint8), [1, 255]),
        (torch.tensor([True, False]), [1, 0]),
        (torch.tensor([0.5, 3.0], dtype=torch.float16), [0.5, 3.0]),
        (torch.tensor([0.1, 3.0], dtype=torch.bfloat16), torch.tensor([0.1, 3.0]).bfloat16()),
        (
            torch.arange(12.0).reshape(3, 4).t()[::2],
            torch.arange(12.0).reshape(3, 4).t()[::2].clone(),
        ),
        (torch.ones(2, 3, requires_grad=True) * 2, torch.full((2, 3), 2.0)),
        (torch.tensor([1.0, -2.0])._neg_view(), [-1.0, 2.0]),
        (np.array([[0, 1]], dtype=np.int32), [[0, 1]]),
        (np.bool_(True), 1),
    ],
)
def test_every_plain_kind_of_value_is_read(got, expected):
    """Do tensors of every real dtype (non-contiguous, needing grad, 0-d), NumPy arrays and
    scalars, Python numbers and nested lists and tuples of them all pass when equal?"""
    check_close(got, expected)
    check_close(expected, got)


@pytest.mark.parametrize(
    "got, message",
    [
        ([[1.0], [1.0, 2.0]], "ragged list"),
        (torch.tensor([1 + 1j]), "complex64; expected real numbers"),
        (torch.ones(2).to_sparse(), "sparse_coo tensor"),
        (torch.empty(2, device="meta"), "cannot be read"),
        (np.array(["a", "b"]), "array of <U1"),
        ({"a": 1.0}, "a dict"),
        (2**1100, "too large"),
    ],
    ids=["ragged", "complex", "sparse", "meta", "strings", "dict", "huge-int"],
)
def test_what_cannot_be_read_as_numbers_fails_with_what_it_was(got, message):
    """Is a value that is not plain numbers a failed check that says what came?"""
    with pytest.raises(AssertionError, match=message):
        check_close(got, [1.0, 1.0])


def test_expected_values_that_are_not_numbers_are_a_test_error():
    """Does a test that passes something unreadable as expected get a TypeError, not a pass?"""
    with pytest.raises(TypeError, match="expected must be numbers"):
        check_close(1.0, _ArrayLike())


def test_check_shape_reads_plain_shapes_only():
    """Are a 0-d tensor, a meta tensor and a Parameter measured, and a list refused?"""
    check_shape(torch.tensor(1.0), ())
    check_shape(torch.empty(2, 3, device="meta"), (2, 3))
    check_shape(torch.nn.Parameter(torch.ones(4)), [4])
    check_shape(np.float32(1.5), ())
    with pytest.raises(AssertionError, match=r"expected a tensor of shape \(2,\), got _Agreeable"):
        check_shape(np.zeros(2).view(_Agreeable), (2,))


def test_a_missing_torch_guard_fails_closed(monkeypatch):
    """When a private torch guard is gone, does checking a tensor stop with an error that
    names it (and not pass), while plain numbers still work?"""
    monkeypatch.setitem(checks._GUARDS, "torch._C._DisableTorchDispatch", None)
    with pytest.raises(RuntimeError, match="lacks torch._C._DisableTorchDispatch"):
        check_close(RIGHT, RIGHT)
    check_close([0.25, 0.75], (0.25, 0.75))
    monkeypatch.setattr(checks, "_dispatch_keys", None)
    monkeypatch.setitem(
        checks._GUARDS, "torch._C._DisableTorchDispatch", torch._C._DisableTorchDispatch
    )
    check_close(RIGHT, RIGHT)  # without dispatch keys, plain tensors still pass
    with pytest.raises(AssertionError, match="cannot tell whether it answers"):
        check_close(torch.nn.Parameter(RIGHT.clone()), RIGHT)  # and any subclass is refused


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
    assert (
        metrics.mean_iou(
            torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long), 2
        )
        == 1.0
    )


def test_forbid_rejects_what_it_cannot_switch_off():
    """Is a non-function (a builtin, a closure) refused with a clear TypeError?"""
    with pytest.raises(TypeError, match="functions and classes"), forbid(len):
        pass

    def outer():
        x = 1
        return lambda: x

    with pytest.raises(TypeError, match="closure"), forbid(outer()):
        pass


# --- the LAB_REFERENCES lists the hidden tests forbid through --------------------------------

SOLUTIONS = sorted((Path(__file__).resolve().parents[1] / "solutions").glob("*/*.ipynb"))


def _lists() -> dict[str, tuple]:
    found = {}
    for info in pkgutil.walk_packages(labkit.__path__, prefix="labkit."):
        if info.name == "labkit.__main__":
            continue
        module = importlib.import_module(info.name)
        if "LAB_REFERENCES" in vars(module):
            found[info.name] = module.LAB_REFERENCES
    return found


LISTS = _lists()


def test_each_list_holds_what_forbid_can_switch_off():
    """Is every LAB_REFERENCES entry a labkit function or class that its own module uses or
    defines, declared in __all__, and does forbid() on the whole list switch each one off?"""
    assert len(LISTS) >= 8, sorted(LISTS)
    for name, refs in LISTS.items():
        module = importlib.import_module(name)
        assert "LAB_REFERENCES" in module.__all__, name
        assert refs and len(set(refs)) == len(refs), name
        for ref in refs:
            assert inspect.isfunction(ref) or inspect.isclass(ref), (name, ref)
            assert ref.__module__.startswith("labkit."), (name, ref)
            assert vars(module).get(ref.__name__) is ref, f"{name} does not hold {ref.__name__}"
        with forbid(*refs):
            for ref in refs:
                with pytest.raises(ReferenceUsedError, match=ref.__qualname__):
                    ref()
        code = [getattr(r, "__code__", None) for r in refs]
        assert code == [getattr(r, "__code__", None) for r in refs]  # back on leaving


def _private_names(cell: str) -> list[str]:
    """The private labkit names a cell reaches: ``from labkit.x import _y`` or
    ``alias._y`` where ``alias`` is a labkit module the cell imported."""
    tree = ast.parse(cell)
    aliases, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "labkit":
                    aliases.add(a.asname or a.name)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("labkit"):
            for a in node.names:
                if a.name.startswith("_"):
                    found.append(f"{node.module}.{a.name}")
                elif (
                    importlib.util.find_spec(f"{node.module}.{a.name}")
                    if _is_package(node.module)
                    else False
                ):
                    aliases.add(a.asname or a.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            if ast.unparse(node.value) in aliases:
                found.append(ast.unparse(node))
    return found


def _is_package(name: str) -> bool:
    spec = importlib.util.find_spec(name)
    return bool(spec and spec.submodule_search_locations)


def _hidden_test_cells(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [
        c.source
        for c in nb.cells
        if c.cell_type == "code" and nbutils.is_grade(c) and not nbutils.is_solution(c)
    ]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_hidden_tests_forbid_whole_lists_and_name_nothing_private(path):
    """Does every labkit reference a lab forbids come from a LAB_REFERENCES list, whole
    lists only, with no private labkit name written in a test cell?"""
    refs, _ = forbidden_references(nbformat.read(path, as_version=4))
    assert refs, f"{path.name} forbids nothing"
    listed = {name: {(r.__module__, r.__qualname__) for r in v} for name, v in LISTS.items()}
    used = [name for name, members in listed.items() if members & refs]
    assert refs == set().union(*(listed[name] for name in used)), (
        f"{path.name} forbids part of a list or something no list holds: "
        f"{sorted(refs - set().union(*listed.values()))}"
    )
    for cell in _hidden_test_cells(path):
        assert _private_names(cell) == [], cell[:200]


def test_the_private_name_finder_finds_both_spellings():
    """Does the check above see a private name by import and by attribute (it must be able
    to fail)?"""
    assert _private_names("from labkit.metrics import _count\n") == ["labkit.metrics._count"]
    assert _private_names("import labkit.metrics as lm\nlm._count(1)\n") == ["lm._count"]
    assert _private_names("from labkit.models import fcn\nfcn._UpStage\n") == ["fcn._UpStage"]
    assert _private_names("import torch\ntorch._C\n") == []


def test_student_side_is_the_module_itself_outside_the_referee():
    """In a notebook kernel, is student_side(m) m; inside student_modules, the lookup's answer
    for m's name, and m again afterwards, even after an error?"""
    assert checks.student_side(torch) is torch and checks.student_side(math) is math
    asked = []
    with checks.student_modules(lambda name: asked.append(name) or f"there:{name}"):
        assert checks.student_side(torch.nn) == "there:torch.nn"
    assert asked == ["torch.nn"] and checks.student_side(torch) is torch
    with pytest.raises(KeyError), checks.student_modules(lambda name: {}[name]):
        checks.student_side(torch)
    assert checks.student_side(torch) is torch
