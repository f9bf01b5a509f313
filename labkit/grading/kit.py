"""Where the lab kit is: the folder a term's course is made from.

The kit holds ``nbgrader_config.py`` and ``solutions/<lab>/<lab>.ipynb``: a checkout of the
labkit repository. It is deliberately not part of the installed package (students install
labkit, and the solutions must not come with it), so an installed labkit is told where the
kit is: ``labkit course init --kit PATH`` (or ``course demo --kit PATH``), else
``$LABKIT_KIT``. Only when labkit runs from a checkout (an editable install, ``make demo``) is
that checkout the default.
"""

from __future__ import annotations

import os
from pathlib import Path

from labkit.grading.course import CourseError, available_labs

__all__ = ["KIT_ENV", "locate_kit"]

#: The environment variable naming the kit's folder when no ``--kit`` is given.
KIT_ENV = "LABKIT_KIT"
_EXPECTED = "nbgrader_config.py and solutions/<lab>/<lab>.ipynb in it"


def _is_kit(path: Path) -> bool:
    return (path / "nbgrader_config.py").is_file() and bool(available_labs(path))


def locate_kit(kit: str | os.PathLike | None = None) -> Path:
    """The lab kit's folder: ``kit``, else ``$LABKIT_KIT``, else the source checkout.

    The source checkout counts only when labkit itself runs from one (the folder above the
    ``labkit`` package holds the kit); an installed wheel ships no solutions, so there the
    kit must be named.

    Args:
        kit (str | os.PathLike | None): the kit's folder (``--kit``); ``None`` to look it up.

    Returns:
        The kit's folder, holding ``nbgrader_config.py`` and ``solutions/<lab>/<lab>.ipynb``.

    Raises:
        CourseError: the named folder is not a kit (the message says where the name came
            from), or no kit was named and labkit does not run from a checkout (the message
            says what to pass).
    """
    source = "--kit"
    if kit is None and os.environ.get(KIT_ENV):
        kit, source = os.environ[KIT_ENV], f"${KIT_ENV}"
    if kit is not None:
        path = Path(kit).expanduser()
        if not _is_kit(path):
            raise CourseError(
                f"{path} (from {source}) is not a lab kit: expected {_EXPECTED}; "
                f"pass the folder of a labkit checkout (--kit PATH or "
                f"${KIT_ENV})."
            )
        return path
    package = Path(__file__).resolve().parents[1]
    if _is_kit(package.parent):  # labkit runs from its repository
        return package.parent
    raise CourseError(
        f"no lab kit given, and labkit runs from an installed package "
        f"({package}), which ships no solutions; pass --kit PATH (or set "
        f"${KIT_ENV}=PATH) naming a checkout of the labkit repository, the folder "
        f"with {_EXPECTED}."
    )
