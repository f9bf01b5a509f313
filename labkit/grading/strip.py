"""labkit without the references a lab's students must write themselves.

A hidden test switches labkit's own version of an exercise off while it runs the student's
(:func:`labkit.checks.forbid`). In the judge the tests run in the referee, not in the student's
process, so there the references are taken away before the student's process starts: the judge
binds a copy of the labkit package in which each forbidden function or class keeps its name and
signature but its body only raises :class:`~labkit.checks.ReferenceUsedError`. No copy of the
code is left to re-import or read from disk in the sandbox.

:func:`forbidden_references` finds the references in a lab's test cells: each argument of a
``forbid(...)`` call, resolved from the cell's imports and the top-level tuples it names (as
``_REFS = (*labkit.losses.LAB_REFERENCES, F.cross_entropy)``). Only labkit's can be
taken out; the others (``torch.nn.functional.cross_entropy``) are reported apart.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nbformat
from nbgrader import utils as nbutils

import labkit

__all__ = ["forbidden_references", "references_in", "stripped_package"]

_MAGIC = re.compile(r"^[ \t]*[%!].*$", re.M)  # IPython's lines: no import in them
_STUB = (
    "raise __import__('labkit.checks', fromlist=['ReferenceUsedError']).ReferenceUsedError({!r})"
)


def _resolve(tree: ast.Module, nodes: list[ast.expr], imports: list[ast.stmt]) -> list[Any]:
    """The objects ``nodes`` name, given ``imports``, the cell's own and its top-level tuples
    of names (an element that does not resolve is left out)."""
    namespace: dict = {}
    own = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    for node in [*imports, *own]:
        if not getattr(node, "level", 0):
            try:
                exec(compile(ast.Module([node], []), "<imports>", "exec"), namespace)  # noqa: S102
            except ImportError:
                continue

    def value(expr: ast.expr) -> list[Any]:
        try:
            return [eval(compile(ast.Expression(expr), "<ref>", "eval"), namespace)]  # noqa: S307
        except (AttributeError, NameError):
            return []  # a name the cell makes at run time: nothing to take out

    def values(nodes: list[ast.expr]) -> list[Any]:
        out = []
        for node in nodes:
            if isinstance(node, ast.Starred):  # *module.LAB_REFERENCES
                out.extend(v for group in value(node.value) for v in group)
            else:
                out.extend(value(node))
        return out

    def plain(e: ast.expr) -> bool:
        return isinstance(e, (ast.Name, ast.Attribute)) or (
            isinstance(e, ast.Starred) and plain(e.value)
        )

    for node in tree.body:  # _REFS = (*m.LAB_REFERENCES, c.d): names and attributes only
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, (ast.Tuple, ast.List))
            and all(plain(e) for e in node.value.elts)
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    namespace[target.id] = tuple(values(node.value.elts))
    return values(nodes)


def forbidden_references(source: nbformat.NotebookNode) -> tuple[set[tuple[str, str]], list[str]]:
    """What the lab's test cells forbid.

    Args:
        source (nbformat.NotebookNode): the lab's nbgrader source notebook (hidden tests included).

    Returns:
        ``(labkit_refs, others)``: ``(module, qualname)`` of each labkit function or class,
        and the dotted names of the rest (torch's, torchvision's).
    """
    code = [c for c in source.cells if c.cell_type == "code"]
    tests = [c.source for c in code if nbutils.is_grade(c) and not nbutils.is_solution(c)]
    return references_in(tests, imports=[c.source for c in code])


def references_in(
    tests: Iterable[str], *, imports: Iterable[str] = ()
) -> tuple[set[tuple[str, str]], list[str]]:
    """What test cells forbid, given the code whose imports they may use.

    Only import statements of ``imports`` are run (in this process, to resolve names): pass
    the instructor's code (the source notebook, the judge's prelude), never a student's.

    Args:
        tests (Iterable[str]): the test cells' source, hidden tests included.
        imports (Iterable[str]): code whose top-level imports the tests may rely on.

    Returns:
        As :func:`forbidden_references`.
    """
    from labkit.checks import forbid

    refs, others, statements = set(), [], []
    for text in imports:
        try:
            statements += [
                n
                for n in ast.parse(_MAGIC.sub("", text)).body
                if isinstance(n, (ast.Import, ast.ImportFrom))
            ]
        except SyntaxError:
            continue
    for text in tests:
        try:
            tree = ast.parse(_MAGIC.sub("", text))
        except SyntaxError:
            continue
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
        names = {k for k, v in _imported(tree).items() if v is forbid} | {"forbid"}
        args = [
            a for c in calls if isinstance(c.func, ast.Name) and c.func.id in names for a in c.args
        ]
        for obj in _resolve(tree, args, statements):
            module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
            where = (module or "").split(".")[0]
            if where == "labkit" and "<" not in qualname:
                refs.add((module, qualname))
            else:
                others.append(f"{module}.{qualname}")
    return refs, sorted(set(others))


def _imported(tree: ast.Module) -> dict[str, Any]:
    namespace: dict = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "labkit.checks":
            exec(compile(ast.Module([node], []), "<imports>", "exec"), namespace)  # noqa: S102
    return namespace


def _strip_module(text: str, qualnames: set[str], module: str) -> str:
    """The module's source with each named top-level function or class (or method) stubbed."""
    tree = ast.parse(text)

    def stub(node: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> None:
        message = f"{module}.{name} is switched off while your work is graded: write your own"
        node.body = [ast.parse(_STUB.format(message)).body[0]]

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            name = prefix + node.name
            if isinstance(node, ast.ClassDef):
                if name in qualnames:  # every method of it, and its construction
                    node.body = [ast.parse("def __init__(self, *args, **kwargs): pass").body[0]]
                    stub(node.body[0], name)
                    node.decorator_list = []
                else:
                    visit(node.body, name + ".")
            elif name in qualnames:
                stub(node, name)
                node.decorator_list = []

    visit(tree.body, "")
    return ast.unparse(tree)


def stripped_package(cache: str | os.PathLike, refs: set[tuple[str, str]]) -> Path:
    """A copy of the installed labkit package without ``refs``; its folder.

    Made once per set of references and labkit version under ``cache`` (kept: the judge of
    every student of a lab binds the same copy). Compiled files are left out, so nothing of
    the original code is in the copy.
    """
    package = Path(labkit.__file__).resolve().parent
    digest = hashlib.sha256(
        repr((sorted(refs), labkit.__version__, _tree_stamp(package))).encode()
    ).hexdigest()[:16]
    dest = Path(cache) / f"labkit-{digest}" / "labkit"
    if dest.is_dir():
        return dest
    tmp = dest.parent.with_name(dest.parent.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(package, tmp / "labkit", ignore=shutil.ignore_patterns("__pycache__"))
    by_module: dict[str, set[str]] = {}
    for module, qualname in refs:
        by_module.setdefault(module, set()).add(qualname)
    for module, names in by_module.items():
        parts = module.split(".")[1:]
        path = tmp.joinpath("labkit", *parts).with_suffix(".py")
        if not path.is_file():
            path = tmp.joinpath("labkit", *parts, "__init__.py")
        path.write_text(_strip_module(path.read_text(), names, module))
    try:
        tmp.rename(dest.parent)
    except OSError:  # another judge made it first
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _tree_stamp(package: Path) -> list:
    return sorted(
        (str(p.relative_to(package)), p.stat().st_mtime_ns, p.stat().st_size)
        for p in package.rglob("*.py")
    )
