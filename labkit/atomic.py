"""Files written so that a process killed at any instant leaves the old file or the new one.

The data go to a temporary file in the destination's folder, are flushed to disk, and the
file is moved over the old one with ``os.replace`` (atomic within one file system on POSIX
and Windows); the folder is then synced so the rename survives a power cut. Checkpoints
(:func:`labkit.checkpoint.save_atomic`), grades, grading records and reports all use it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["replace_atomically", "write_atomic"]


def replace_atomically(path: str | os.PathLike, write: Callable[[Any], None]) -> Path:
    """Call ``write(file)`` on a temporary file, then move it over ``path``; returns ``path``."""
    # Same folder as the target: os.replace is atomic only within one file system.
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal rights
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` so that a kill never leaves half a file.

    A reader sees the old file or the new one, never a mix.

    Returns:
        The path written.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return replace_atomically(path, lambda fh: fh.write(raw))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable across a power cut; not possible on every platform.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
