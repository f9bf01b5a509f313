"""Every version of a lab a student handed in, not only the one graded.

``labkit course collect`` puts the newest version of a student's lab in
``submitted/<student>/<lab>/``, where nbgrader grades it; each older one (from the same download,
or the one in place when a later download replaces it) is kept here, outside ``submitted/`` so
nbgrader never sees it::

    <root>/submitted_history/<student>/<lab>/<when>-<sha>.ipynb

``<when>`` is the version's submission time in UTC (``20261201T100200.000000Z``: the LMS's
``timestamp.txt``, else the file's modification time), ``<sha>`` the first 12 hex digits of
the notebook's SHA-256. A version is kept once: one of the same contents already there is not
written again, so collecting a download twice adds nothing, and identical contents handed in
twice count as one version. Each file is written atomically (:mod:`labkit.atomic`).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from labkit.atomic import write_atomic

__all__ = ["HISTORY", "Version", "keep_version", "versions"]

#: The history folder, beside ``submitted/`` in the course directory.
HISTORY = "submitted_history"
_STAMP = "%Y%m%dT%H%M%S.%fZ"
_NAME = re.compile(r"(?P<when>\d{8}T\d{6}\.\d{6}Z)-(?P<sha>[0-9a-f]{12})\.ipynb")


@dataclass(frozen=True)
class Version:
    """One version of a lab: handed in at ``when`` (UTC), kept at ``path``, contents ``sha``."""

    when: datetime
    path: Path
    sha: str


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:12]


def _history(root: str | os.PathLike, student: str, lab: str) -> list[Version]:
    folder = Path(root) / HISTORY / student / lab
    found = []
    for path in sorted(folder.glob("*.ipynb")) if folder.is_dir() else []:
        if m := _NAME.fullmatch(path.name):
            when = datetime.strptime(m["when"], _STAMP).replace(tzinfo=timezone.utc)
            found.append(Version(when, path, m["sha"]))
    return found


def keep_version(
    root: str | os.PathLike, student: str, lab: str, body: bytes, *, when: datetime
) -> Path | None:
    """Keep an older version of ``student``'s ``lab`` in the history, unless already there.

    Args:
        root (str | os.PathLike): the course directory.
        student (str): the student id.
        lab (str): the lab.
        body (bytes): the notebook's contents.
        when (datetime): when it was handed in (aware; stored in UTC).

    Returns:
        The path written, or ``None`` when a version with these contents is already kept.
    """
    sha = _sha(body)
    if any(v.sha == sha for v in _history(root, student, lab)):
        return None
    name = f"{when.astimezone(timezone.utc).strftime(_STAMP)}-{sha}.ipynb"
    path = write_atomic(Path(root) / HISTORY / student / lab / name, body)
    os.utime(path, (when.timestamp(), when.timestamp()))
    return path


def versions(
    root: str | os.PathLike, student: str, lab: str, *, current: tuple[Path, datetime] | None
) -> list[Version]:
    """Every version of ``student``'s ``lab``, the first handed in first.

    Args:
        root (str | os.PathLike): the course directory.
        student (str): the student id.
        lab (str): the lab.
        current (tuple[Path, datetime] | None): the notebook in ``submitted/`` and its
            submission time, or ``None`` when there is none.

    Returns:
        The kept versions and the current one (counted once when the history holds the same
        contents), sorted by time.
    """
    kept = _history(root, student, lab)
    if current is not None:
        path, when = current
        if (sha := _sha(path.read_bytes())) not in {v.sha for v in kept}:
            kept.append(Version(when, path, sha))
    return sorted(kept, key=lambda v: (v.when, v.sha))
