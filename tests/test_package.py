"""Does the package keep its own conventions: documented public API, a test file per module?"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import labkit

ROOT = Path(__file__).resolve().parents[1]
# Modules that hold no logic of their own (entry points and re-exports).
_NO_TEST_NEEDED = {
    "labkit",
    "labkit.__main__",
    "labkit.data",
    "labkit.models",
    "labkit.viz",
    "labkit.grading",
}


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
    candidates = [
        ROOT / "tests" / Path(*parts[:-1]) / f"test_{parts[-1]}.py",
        ROOT / "tests" / f"test_{'_'.join(parts)}.py",
    ]
    assert any(c.exists() for c in candidates), f"no test file for {name}: expected {candidates[0]}"


def test_modules_have_explicit_all():
    """Does every public module declare __all__, so the API is what it says?"""
    missing = []
    for name in MODULES:
        module = importlib.import_module(name)
        if not name.rsplit(".", 1)[-1].startswith("_") and not hasattr(module, "__all__"):
            missing.append(name)
    assert not missing, f"modules without __all__: {missing}"


def _private_imports(path: Path, package: str) -> list[str]:
    """The imports in ``path`` (a module of ``package``) of another module's private name:
    ``from labkit.x import _name``, or a private module (``labkit.a._m``) imported from outside
    its own package ``labkit.a``."""
    import ast
    import importlib.util

    def is_module(name: str) -> bool:
        parent = importlib.util.find_spec(name.rpartition(".")[0])
        return (
            parent.submodule_search_locations is not None
            and importlib.util.find_spec(name) is not None
        )

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.ImportFrom)
            and not node.level
            and (node.module or "").split(".")[0] == "labkit"
        ):
            taken = [f"{node.module}.{a.name}" for a in node.names]
            modules = [node.module, *filter(is_module, taken)]
            names = [t for t in taken if t not in modules]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names if a.name.split(".")[0] == "labkit"]
            names = []
        else:
            continue
        found += [f"line {node.lineno}: {n}" for n in names if n.rpartition(".")[2].startswith("_")]
        for module in modules:
            parts = module.split(".")
            private = [i for i, p in enumerate(parts) if p.startswith("_")]
            if private and not package.startswith(".".join(parts[: private[0]])):
                found.append(f"line {node.lineno}: module {module}")
    return found


def test_no_module_imports_a_private_name_of_another():
    """Does every name one labkit module takes from another belong to that module's public
    API: no ``_name`` imported across modules, and a private module only from inside its own
    package? Renaming a private helper then never breaks another module."""
    bad = {}
    for path in sorted((ROOT / "labkit").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        package = ".".join(parts[:-1])
        if found := _private_imports(path, package):
            bad[str(path.relative_to(ROOT))] = found
    assert not bad, f"private names imported across modules: {bad}"


def test_every_labkit_name_the_docs_give_exists():
    """Does each ``labkit.a.b`` (a module, or a name in one) that README.md and docs/*.md
    name exist, so that a rename cannot leave the docs pointing nowhere?"""
    import re

    def spec(name):
        try:
            return importlib.util.find_spec(name)
        except ModuleNotFoundError:  # a name inside a module, not a submodule
            return None

    missing = {}
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for dotted in sorted(set(re.findall(r"\blabkit(?:\.[A-Za-z_]\w*)+", doc.read_text()))):
            module, attrs = dotted, []
            while module.count(".") and spec(module) is None:
                module, _, attr = module.rpartition(".")
                attrs.insert(0, attr)
            obj = importlib.import_module(module)
            for attr in attrs:
                obj = getattr(obj, attr, None)
            if obj is None:
                missing.setdefault(doc.name, []).append(dotted)
    assert not missing, f"names in the docs that labkit does not have: {missing}"


def _in_labkit(check) -> list[str]:
    """What ``check(path)`` finds in every module of the package."""
    return [found for path in sorted((ROOT / "labkit").rglob("*.py")) for found in check(path)]


_ARG = re.compile(r"^(\s+)(\*{0,2}\w+(?:, \*{0,2}\w+)*)( \([^)]*\))?:(\s|$)")
_SECTION = re.compile(r"^\s*(Returns|Raises|Yields|Attributes|Examples?|Notes?|Warnings?):\s*$")


def _untyped_args(path: Path) -> list[str]:
    """The ``Args:`` entries of ``path``'s docstrings written without their ``(type)``."""
    found = []
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        doc = ast.get_docstring(node, clean=False) or ""
        if "Args:" not in doc:
            continue
        indent = None
        for line in doc.split("Args:", 1)[1].splitlines()[1:]:
            if _SECTION.match(line) or (line.strip() and indent is None and not _ARG.match(line)):
                break
            m = _ARG.match(line)
            if not m or (indent is not None and len(m.group(1)) != indent):
                continue
            indent = len(m.group(1))
            if not m.group(3):
                found.append(f"{path}:{node.name}: {line.strip()[:60]}")
    return found


def test_every_documented_argument_names_its_type():
    """Is every docstring's Args section in the one dialect, ``name (Type[shape]): what``?"""
    untyped = _in_labkit(_untyped_args)
    assert not untyped, "Args entries without (type):\n" + "\n".join(untyped)


def test_the_dialect_check_sees_an_untyped_entry(tmp_path):
    """Does the check above find ``name: what`` (it must be able to fail)?"""
    sample = tmp_path / "m.py"
    sample.write_text(
        'def f(a, b):\n    """F.\n\n    Args:\n        a (int): typed.\n        b: untyped\n'
        '            over two lines.\n\n    Returns:\n        x: not an argument.\n    """\n'
    )
    assert _untyped_args(sample) == [f"{sample}:f: b: untyped"]


MAX_FUNCTION_LINES = 80


def _long_functions(path: Path) -> list[str]:
    """Functions of ``path`` longer than MAX_FUNCTION_LINES, decorators and docstring counted."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = node.end_lineno - first + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{path}:{node.lineno} {node.name}: {length} lines")
    return found


def test_no_function_is_longer_than_a_screen():
    """Can every function in labkit be read at once (at most 80 lines, docstring included)?"""
    long = _in_labkit(_long_functions)
    assert not long, "split these:\n" + "\n".join(long)


def test_the_length_check_counts_decorators_and_docstrings(tmp_path):
    """Does the check above count a decorated function whole: 71 lines of code, a decorator
    and a 10-line docstring make 82?"""
    body = "\n".join(f"    x{i} = {i}" for i in range(70))
    doc = '    """Doc.\n' + "\n" * 8 + '    """\n'
    sample = tmp_path / "m.py"
    sample.write_text(f"@staticmethod\ndef f():\n{doc}{body}\n")
    assert _long_functions(sample) == [f"{sample}:2 f: 82 lines"]
    sample.write_text(f"def f():\n{body}\n")
    assert _long_functions(sample) == []
