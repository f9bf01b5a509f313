"""nbgrader's command line, without the extra interpreter it starts for a new gradebook.

A new ``gradebook.db`` is stamped with the revision of nbgrader's schema, and nbgrader learns
that revision by running ``alembic heads`` in a process of its own: a second interpreter that
imports alembic to read nbgrader's migration scripts, about 2 s of a core, for a constant.
:func:`alembic_head` reads the same scripts with alembic's own ``ScriptDirectory`` in this
process; :func:`stamp_in_process` makes nbgrader use it. ``python -m labkit.grading.nbgrader_cli
ARGS`` is ``nbgrader ARGS`` with it in place: what :func:`labkit.grading.course.nbgrader`
runs.
"""

from __future__ import annotations

import functools

__all__ = ["alembic_head", "stamp_in_process"]


@functools.cache
def alembic_head() -> str:
    """The head revision of nbgrader's migration scripts: what ``alembic heads`` prints."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader import dbutil

    config = Config()
    config.set_main_option("script_location", dbutil.ALEMBIC_DIR)
    return ScriptDirectory.from_config(config).get_current_head()


def stamp_in_process() -> None:
    """Have nbgrader stamp new gradebooks with :func:`alembic_head` (no ``alembic`` process)."""
    import nbgrader.api

    nbgrader.api.get_alembic_version = alembic_head


if __name__ == "__main__":
    stamp_in_process()
    from nbgrader.apps.nbgraderapp import main

    main()
