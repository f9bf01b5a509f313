"""The library as it was before student code ran: a snapshot, and putting it back.

A grading process imports the libraries the tests use, takes a :func:`snapshot` (every loaded
module's and Python class's attributes, and the code, defaults and keyword defaults of their
functions) and only then runs student code. A fork that runs a test (the runner's) or answers
the referee (:mod:`labkit.grading.student_side`) calls :func:`restore` first, so
``np.isclose = lambda *a, **k: True``, a function body swapped through ``__code__`` or a
replaced ``sys.modules`` entry is undone; :func:`tampered` names what student code replaced
while the test ran. Counters and caches the libraries keep for themselves stay as they are.
The main module (a program run as ``__main__``) is not library and is left out.
"""

import functools
import os
import sys
import types
import warnings

__all__ = ["restore", "snapshot", "tampered"]

_MISSING = object()


def snapshot() -> tuple[list, list, dict]:
    """Every loaded module's and Python class's attributes, and their functions' code."""
    with warnings.catch_warnings():  # deprecated aliases warn when merely looked at
        warnings.simplefilter("ignore")
        return _collect()


def _collect() -> tuple[list, list, dict]:
    owners, seen = [], set()
    for module in list(sys.modules.values()):
        if not isinstance(module, types.ModuleType) or module is sys.modules.get("__main__"):
            continue
        owners.append(module)
        for value in list(vars(module).values()):
            if (
                isinstance(value, type) and id(value) not in seen and not value.__flags__ & (1 << 8)
            ):  # Py_TPFLAGS_IMMUTABLETYPE
                seen.add(id(value))
                owners.append(value)
    attrs = [(owner, dict(vars(owner))) for owner in owners]
    code = [
        (f, f.__code__, f.__defaults__, f.__kwdefaults__)
        for _, saved in attrs
        for f in saved.values()
        if isinstance(f, types.FunctionType)
    ]
    return attrs, code, dict(sys.modules)


def _foreign(value) -> bool:
    """Whether ``value`` was made by code that is not in a file: a student's cell, ``exec``.

    Libraries rebind some of their own attributes as they run (an optimizer class wraps its
    ``step`` once, handles count up): those values come from files and are left alone.
    """
    if isinstance(value, types.ModuleType):
        return (
            not os.path.isfile(getattr(value, "__file__", None) or "")
            and value.__name__ not in sys.builtin_module_names
        )
    code = getattr(value, "__code__", None)
    if isinstance(code, types.CodeType):
        return not os.path.isfile(code.co_filename)
    if isinstance(value, functools.partial):
        return _foreign(value.func)
    owner = value if isinstance(value, type) else type(value)
    return getattr(owner, "__module__", None) == "__main__"


def _changes(snapshot):
    """(where, owner, key, saved) for each library attribute that differs from the snapshot."""
    attrs, code, modules = snapshot
    for name, module in modules.items():
        if sys.modules.get(name) is not module:
            yield f"sys.modules[{name!r}]", sys.modules, name, module
    for owner, saved in attrs:
        current = vars(owner)
        for key, value in saved.items():
            if current.get(key, _MISSING) is not value:
                yield f"{getattr(owner, '__name__', owner)}.{key}", owner, key, value
    for f, c, d, k in code:
        if f.__code__ is not c or f.__defaults__ is not d or f.__kwdefaults__ is not k:
            yield f"the code of {f.__module__}.{f.__qualname__}", f, None, (c, d, k)


def restore(snapshot) -> None:
    """Put back every function, class and module the library had; counters and caches stay."""
    for _, owner, key, saved in list(_changes(snapshot)):
        if key is None:
            owner.__code__, owner.__defaults__, owner.__kwdefaults__ = saved
        elif owner is sys.modules:
            sys.modules[key] = saved
        elif (
            callable(saved) or isinstance(saved, types.ModuleType) or _foreign(vars(owner).get(key))
        ):
            try:
                setattr(owner, key, saved)
            except (AttributeError, TypeError):
                pass


def tampered(snapshot) -> str | None:
    """The first library attribute that student code replaced during a test, or ``None``."""
    for where, owner, key, _ in _changes(snapshot):
        now = (
            owner.__code__
            if key is None
            else sys.modules.get(key)
            if owner is sys.modules
            else vars(owner).get(key)
        )
        if (
            key is None
            and not os.path.isfile(now.co_filename)
            or key is not None
            and now is not None
            and _foreign(now)
        ):
            return where
    return None
