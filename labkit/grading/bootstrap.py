"""Start a labkit module in a new interpreter that imports the same labkit as this one.

``python -m labkit.grading.x`` puts the working directory first on ``sys.path``: run from
inside another labkit checkout (the kit repository an instructor maintains, next to the
installed labkit), the grading worker imported that checkout's labkit while the judge
imported the installed one, and the two did not agree. :func:`module_argv` starts
``python -I -c BOOT WHERE MODULE ARGS...`` instead: isolated mode leaves out the working
directory, ``PYTHONPATH`` and the user's site-packages; BOOT puts WHERE, the folder that
holds this process's labkit, first on ``sys.path`` when it is not there already (an
editable install's checkout), checks that ``import labkit`` finds that copy, and runs MODULE
as ``__main__`` with ``sys.argv[1:]`` = ARGS. The grading workers' zygote
(:mod:`labkit.grading.zygote`), the judge (:mod:`labkit.grading.judge_runner`) and
labkit's ``nbgrader`` commands (:mod:`labkit.grading.nbgrader_cli`) are started this way.
"""

from __future__ import annotations

import os
import sys

import labkit

__all__ = ["labkit_home", "module_argv"]

_BOOT = """\
import os, runpy, sys
where, module = sys.argv[1:3]
del sys.argv[1:3]
if where not in sys.path:
    sys.path.insert(0, where)
import labkit
found = os.path.realpath(labkit.__file__)
if not found.startswith(where.rstrip(os.sep) + os.sep):
    raise ImportError(f"the grader runs the labkit in {where} but this process imported "
                      f"{found}; remove the other copy from this interpreter's path")
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def labkit_home() -> str:
    """The folder holding this process's ``labkit`` package (resolved, no symlinks)."""
    return os.path.dirname(os.path.dirname(os.path.realpath(labkit.__file__)))


def module_argv(
    module: str, *args: str, python: str | None = None, home: str | None = None
) -> list[str]:
    """The command that runs ``module`` as ``__main__`` on this process's labkit.

    Args:
        module (str): e.g. ``"labkit.grading.judge_runner"``.
        *args (str): its arguments (``sys.argv[1:]`` in the module).
        python (str | None): the interpreter (default: this one, ``sys.executable``).
        home (str | None): the folder holding the labkit to import instead (the referee's
            copy without a lab's references, :mod:`labkit.grading.strip`).

    Returns:
        ``[python, "-I", "-c", BOOT, home or labkit_home(), module, *args]``.
    """
    return [python or sys.executable, "-I", "-c", _BOOT, home or labkit_home(), module, *args]
