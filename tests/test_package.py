"""Does the package keep its own conventions: documented public API, a test file per module?"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import labkit

ROOT = Path(__file__).resolve().parents[1]
# Modules that hold no logic of their own (entry points and re-exports).
_NO_TEST_NEEDED = {"labkit", "labkit.__main__", "labkit.data", "labkit.models", "labkit.viz",
                   "labkit.grading"}


def _modules():
    yield "labkit"
    for info in pkgutil.walk_packages(labkit.__path__, prefix="labkit."):
        if info.name != "labkit.__main__":
            yield info.name


MODULES = sorted(_modules())


@pytest.mark.parametrize("name", MODULES)
def test_public_api_is_documented(name):
    """Does every name in a module's __all__ carry a docstring (with Args/Returns on functions)?"""
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} has no module docstring"
    for attr in getattr(module, "__all__", []):
        obj = getattr(module, attr)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), f"{name}.{attr} has no docstring"


@pytest.mark.parametrize("name", [m for m in MODULES if m not in _NO_TEST_NEEDED])
def test_every_module_has_its_test_file(name):
    """Does labkit/a/b.py have tests/a/test_b.py (private modules: tests/a/test__b.py or their package's tests)?"""
    parts = name.split(".")[1:]
    if parts[-1].startswith("_"):
        return  # private helpers are exercised through the public modules that use them
    candidates = [ROOT / "tests" / Path(*parts[:-1]) / f"test_{parts[-1]}.py",
                  ROOT / "tests" / f"test_{'_'.join(parts)}.py"]
    assert any(c.exists() for c in candidates), f"no test file for {name}: expected {candidates[0]}"


def test_modules_have_explicit_all():
    """Does every public module declare __all__, so the API is what it says?"""
    missing = []
    for name in MODULES:
        module = importlib.import_module(name)
        if not name.rsplit(".", 1)[-1].startswith("_") and not hasattr(module, "__all__"):
            missing.append(name)
    assert not missing, f"modules without __all__: {missing}"
