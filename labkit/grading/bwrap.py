"""The bubblewrap command line that isolates student code, and whether bubblewrap works here.

:func:`sandbox_command` builds the ``bwrap`` invocation that
:func:`labkit.grading.sandbox.run_sandboxed` starts: the file system read-only, fresh ``/tmp``,
``/dev`` and ``/proc``, no network but loopback, its own process namespace, only the scratch
folder writable, and what the code must not see covered by empty read-only folders.
:func:`bwrap_available` runs that command once to learn whether user namespaces work.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["bwrap_available", "sandbox_command"]

_MB = 2**20


@functools.cache
def _probe() -> tuple[bool, bool, str]:  # (works, takes --size, why not)
    if shutil.which("bwrap") is None:
        return False, False, "there is no `bwrap` on PATH"
    errors = []
    for size in (16, None):  # --size needs bubblewrap >= 0.7 and no setuid bwrap
        with tempfile.TemporaryDirectory(prefix="labkit-bwrap-") as tmp:
            try:
                proc = subprocess.run(sandbox_command(["true"], scratch=tmp, tmpfs_mb=size),
                                      capture_output=True, text=True, timeout=60, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return False, False, f"`bwrap` could not run: {exc}"
        if proc.returncode == 0:
            return True, size is not None, ""
        errors += proc.stderr.strip().splitlines()[-1:] or [f"status {proc.returncode}"]
    return False, False, f"`bwrap ... true` failed: {errors[-1]} (needs bubblewrap >= 0.5)"


def bwrap_available() -> bool:
    """Whether bubblewrap works here: the real sandbox command runs ``true`` (tried once)."""
    return _probe()[0]


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _in_tmpfs(path: str, tmpfs: Iterable[str], binds: Iterable[str]) -> bool:
    """Whether ``path`` lies in a sandbox tmpfs rather than under a bind (or ``/``)."""
    depth = max((len(t) for t in tmpfs if _within(path, t)), default=-1)
    return depth > max((len(b) for b in binds if _within(path, b)), default=0)


def sandbox_command(argv: Sequence[str], *, scratch: str | os.PathLike,
                    hide: Iterable[str | os.PathLike] = (),
                    readable: Iterable[str | os.PathLike] = (), network: bool = False,
                    tmpfs_mb: int | None = None) -> list[str]:
    """The ``bwrap`` command line that runs ``argv`` isolated, in ``scratch``.

    Args:
        argv: the command to run inside.
        scratch: the one writable folder (at its own path): working directory and ``HOME``.
        hide: what the code must not see: folders become an empty read-only tmpfs, files
            an unreadable ``/dev/null`` (the gradebook, the course root, other students,
            the instructor's home). Paths that do not exist are skipped.
        readable: paths bound back read-only over hidden ones (a virtual environment, the
            kit's package under the course root).
        network: keep the host's network (default: a namespace holding only loopback).
        tmpfs_mb: size of the fresh ``/tmp`` and ``/dev/shm`` (bubblewrap >= 0.7).

    Returns:
        ``["bwrap", ..., "--", *argv]``.

    Raises:
        ValueError: a ``readable`` path does not exist.
    """
    scratch, size = os.path.abspath(scratch), ["--size", str(tmpfs_mb * _MB)] if tmpfs_mb else []
    cmd = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
           "--perms", "1777", *size, "--tmpfs", "/tmp", "--perms", "1777", *size,
           "--tmpfs", "/dev/shm", *([] if network else ["--unshare-net"]), "--unshare-pid",
           "--unshare-ipc", "--die-with-parent", "--new-session"]
    ops = [(os.path.abspath(p), "--ro-bind") for p in readable] + [(scratch, "--bind")]
    for path, _ in ops[:-1]:
        if not os.path.exists(path):
            raise ValueError(f"readable path {path} does not exist; pass what the code "
                             "needs from under a hidden folder, such as the virtual environment.")
    ops += [(os.path.abspath(p), "hide") for p in hide]
    tmpfs, binds, hidden, made = ["/tmp", "/dev/shm"], [], [], []
    for path, op in sorted(ops, key=lambda o: (o[0].count("/"), o[1] != "hide")):  # outer first
        if op == "hide":
            if os.path.lexists(path) and not _in_tmpfs(path, tmpfs, binds):  # else hidden anyway
                folder = os.path.isdir(path)
                cmd += ["--tmpfs", path] if folder else ["--ro-bind", "/dev/null", path]
                (tmpfs if folder else binds).append(path)
                hidden += [path] if folder else []
            continue
        for parent in map(str, reversed(Path(path).parents)):  # bwrap would make them 0700
            if _in_tmpfs(parent, tmpfs, binds) and parent not in tmpfs + made:
                cmd += ["--perms", "0755", "--dir", parent]
                made.append(parent)
        cmd += [op, path, path]
        binds.append(path)
    for path in hidden:
        cmd += ["--remount-ro", path]
    return cmd + ["--chdir", scratch, "--setenv", "HOME", scratch, "--", *argv]
