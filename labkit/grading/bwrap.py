"""The bubblewrap command line that isolates student code, and whether bubblewrap works here.

:func:`sandbox_command` builds the ``bwrap`` invocation that
:func:`labkit.grading.sandbox.run_sandboxed` starts. What the code sees is an allow-list: the
root is an empty tmpfs, read-only, into which only these are bound read-only:

- the system: ``/usr``, and ``/bin``, ``/sbin``, ``/lib*`` (as links where the host's are
  links, as on a merged-``/usr`` system), and of ``/etc`` only :data:`ETC` (the dynamic
  linker's cache, users and groups, name service, hosts, the time zone, certificates, fonts,
  matplotlib's and MIME types' configuration);
- ``readable``: what the caller names (the interpreter and its environment, labkit's package,
  a dataset);

and a fresh ``/dev`` (read-only but for its devices), ``/proc``, and ``/tmp``, ``/dev/shm``
and scratch folder. Nothing else of the host exists inside: no home, no ``/root``, no
checkout of the kit or copy of it, no course, nothing else of ``/tmp``. ``hide`` still
covers, with an empty read-only folder or an unreadable ``/dev/null``, what lies inside a
bound tree (a course under the environment, a home holding the dataset). No network but
loopback, a process namespace of its own.

What the code can write is size-capped: with ``tmpfs_mb`` (bubblewrap >= 0.7) ``/tmp``,
``/dev/shm`` and the scratch folder (the working directory and ``HOME``, at the scratch's own
path) are each a fresh tmpfs of ``tmpfs_mb``, and the only host files it can write are
``writable`` ones, each capped by the sandbox's ``RLIMIT_FSIZE``: at most ``3 * tmpfs_mb`` of
memory (tmpfs pages, which the sandbox's memory watchdog counts with the processes') plus
the file size limit per writable file, none of it on the host's disk but those files.
Without ``tmpfs_mb`` the tmpfs have no size of their own (half the memory, the kernel's
default) and the scratch folder is the host's, bound writable: each file is capped, the
total only by the disk.
:func:`bwrap_available` runs that command once to learn whether user namespaces work.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ETC",
    "SYSTEM",
    "Layout",
    "bwrap_available",
    "interpreter_paths",
    "layout",
    "probe",
    "sandbox_command",
    "unreachable",
]

_MB = 2**20
#: The system's top-level folders bound into the sandbox (or linked, as the host has them).
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: All the sandbox sees of ``/etc`` (those that exist here).
ETC = tuple(
    f"/etc/{name}"
    for name in (
        "ld.so.cache",
        "ld.so.conf",
        "ld.so.conf.d",
        "passwd",
        "group",
        "nsswitch.conf",
        "hosts",
        "localtime",
        "timezone",
        "ssl",
        "pki",
        "ca-certificates",
        "alternatives",
        "fonts",
        "matplotlibrc",
        "mime.types",
    )
)


@functools.cache
def probe() -> tuple[bool, bool, str]:
    """Whether bubblewrap works here, found by running the real sandbox command on ``true``
    (once per process: the answer is cached).

    Returns:
        ``(works, sized, why)``: bwrap runs; it takes ``--size`` (bubblewrap >= 0.7, a sized
        tmpfs for the scratch folder); and, when it does not run, why not, in one line.
    """
    if shutil.which("bwrap") is None:
        return False, False, "there is no `bwrap` on PATH"
    errors = []
    for size in (16, None):  # --size needs bubblewrap >= 0.7 and no setuid bwrap
        with tempfile.TemporaryDirectory(prefix="labkit-bwrap-") as tmp:
            try:
                proc = subprocess.run(
                    sandbox_command(["true"], scratch=tmp, tmpfs_mb=size),
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                return False, False, f"`bwrap` could not run: {exc}"
        if proc.returncode == 0:
            return True, size is not None, ""
        errors += proc.stderr.strip().splitlines()[-1:] or [f"status {proc.returncode}"]
    return False, False, f"`bwrap ... true` failed: {errors[-1]} (needs bubblewrap >= 0.5)"


def bwrap_available() -> bool:
    """Whether bubblewrap works here: the real sandbox command runs ``true`` (tried once)."""
    return probe()[0]


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _inside(path: str | os.PathLike) -> str:
    """``path`` as the sandbox names it: absolute, through the system's links (``/lib/x`` is
    ``/usr/lib/x``, since ``/lib`` is a link inside as well)."""
    path = os.path.abspath(path)
    top = "/" + path.split("/")[1]
    if top in SYSTEM and os.path.islink(top):
        return os.path.normpath(os.path.join(os.path.realpath(top), os.path.relpath(path, top)))
    return path


@dataclass
class Layout:
    """The sandbox's mounts, in order: what :func:`sandbox_command` passes to ``bwrap``.

    Attributes:
        args: the ``bwrap`` options that make the file system.
        mounts: ``(path, kind)`` in the order made; kind is ``tmpfs`` (shows nothing of the
            host: the root, ``/tmp``, a hidden folder), ``scratch`` (the sized scratch
            tmpfs), ``ro``/``rw`` (a host path bound), ``null`` (a hidden file), ``dev``,
            ``proc`` or ``link``.
        made: folders bubblewrap makes (mode 0755) on the way to a mount.
    """

    args: list[str] = field(default_factory=list)
    mounts: list[tuple[str, str]] = field(default_factory=list)
    made: list[str] = field(default_factory=list)

    def cover(self, path: str) -> tuple[str, str]:
        """The mount ``path`` lies in: the deepest, the last made of equals."""
        best = ("/", "tmpfs")
        for mount, kind in self.mounts:
            if _within(path, mount) and len(mount) >= len(best[0]):
                best = (mount, kind)
        return best

    def shows_host(self, path: str) -> bool:
        """Whether ``path`` in the sandbox is the host's ``path`` (under a bind, not hidden)."""
        return self.cover(path)[1] in ("ro", "rw")

    def add(self, path: str, kind: str, args: list[str]) -> None:
        """Mount ``path`` (``kind``) with ``args``, making the folders on its way."""
        for parent in map(str, reversed(Path(path).parents)):  # bwrap would make them 0700
            mount, under = self.cover(parent)
            if under in ("tmpfs", "scratch") and parent != mount and parent not in self.made:
                self.args += ["--perms", "0755", "--dir", parent]
                self.made.append(parent)
        self.args += args
        self.mounts.append((path, kind))


def layout(
    *,
    scratch: str | os.PathLike,
    hide: Iterable[str | os.PathLike] = (),
    readable: Iterable[str | os.PathLike] = (),
    writable: Iterable[str | os.PathLike] = (),
    tmpfs_mb: int | None = None,
) -> Layout:
    """The sandbox's file system (see :func:`sandbox_command` for the arguments)."""
    scratch, size = os.path.abspath(scratch), ["--size", str(tmpfs_mb * _MB)] if tmpfs_mb else []
    ops = [
        (path, "link" if os.path.islink(path) else "ro")
        for path in (*SYSTEM, *ETC)
        if os.path.lexists(path)
    ]
    for path in readable:
        if not os.path.exists(path):
            raise ValueError(
                f"readable path {path} does not exist; pass what the code "
                "needs: the interpreter, its environment, the dataset."
            )
        ops.append((_inside(path), "ro"))
    for path in writable:
        if not os.path.isfile(path) or os.path.islink(path):
            raise ValueError(
                f"writable path {path} is not a regular file; create the file "
                "the code writes its results to (a folder would have no cap)."
            )
        ops.append((_inside(path), "rw"))
    ops += [(scratch, "scratch" if tmpfs_mb else "rw")] + [(_inside(p), "hide") for p in hide]
    plan = Layout(
        [
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--perms",
            "1777",
            *size,
            "--tmpfs",
            "/tmp",
            "--perms",
            "1777",
            *size,
            "--tmpfs",
            "/dev/shm",
        ],
        [
            ("/", "tmpfs"),
            ("/dev", "dev"),
            ("/proc", "proc"),
            ("/tmp", "tmpfs"),
            ("/dev/shm", "tmpfs"),
        ],
    )
    hidden = []
    for path, op in sorted(ops, key=lambda o: (o[0].count("/"), o[1] != "hide")):  # outer first
        if op == "hide":  # only what a bind shows needs covering: the rest is not there
            if os.path.lexists(path) and plan.shows_host(path):
                folder = os.path.isdir(path)
                plan.add(
                    path,
                    "tmpfs" if folder else "null",
                    ["--tmpfs", path] if folder else ["--ro-bind", "/dev/null", path],
                )
                hidden += [path] if folder else []
        elif op == "link":
            plan.add(path, "link", ["--symlink", os.readlink(path), path])
        elif op == "scratch":  # world-writable: a root grader's code runs as another uid
            plan.add(path, op, ["--perms", "1777", *size, "--tmpfs", path])
        elif op == "rw" or plan.cover(path)[1] != "ro":  # not twice under a read-only bind
            plan.add(path, op, ["--bind" if op == "rw" else "--ro-bind", path, path])
    for path in [*hidden, "/dev", "/"]:  # not recursive: /tmp, /dev/shm, scratch stay writable
        plan.args += ["--remount-ro", path]
    return plan


def unreachable(path: Path, uid: int | None, plan: Layout | None = None) -> str | None:
    """Why ``uid`` cannot reach ``path`` in a sandbox, if it cannot.

    Folders bwrap makes are 0755, its tmpfs 0755 or 1777; bound ones keep the host's modes.

    Args:
        path (Path): what the sandboxed code must open (the interpreter, a bound file).
        uid (int | None): whom the code runs as; ``None``: whoever may enter every folder.
        plan (Layout | None): the sandbox's :class:`Layout`; ``None``: the host as it is.

    Returns:
        ``None`` when ``path`` is reachable, else one line saying what bars the way.
    """
    path = Path(_inside(path)) if plan else path
    for step in [*reversed(path.parents), path]:
        mount, kind = plan.cover(str(step)) if plan else ("/", "ro")
        if kind not in ("ro", "rw"):
            if step == path and not (kind == "scratch" and str(step) == mount):
                return f"{path} is not in the sandbox; add it (or its folder) to `readable`"
        elif step != path and uid is not None and step.exists():
            st = step.stat()
            bit = (
                stat.S_IXUSR
                if st.st_uid == uid
                else stat.S_IXGRP
                if st.st_gid == uid
                else stat.S_IXOTH
            )
            if not st.st_mode & bit:
                return f"{step} (mode {stat.filemode(st.st_mode)}, uid {st.st_uid}) bars the way"
    return None


def interpreter_paths() -> list[str]:
    """What the launcher's Python needs inside a sandbox.

    Returns:
        The folders of this interpreter's installation and of its environment (both as
        given and resolved), to be bound read-only.
    """
    paths = [
        f(p) for p in (sys.base_prefix, sys.prefix) for f in (os.path.abspath, os.path.realpath)
    ]
    python = os.path.realpath(sys.executable)
    if not any(_within(python, p) for p in paths):
        paths.append(os.path.dirname(os.path.dirname(python)))
    return list(dict.fromkeys(paths))


def sandbox_command(
    argv: Sequence[str],
    *,
    scratch: str | os.PathLike,
    hide: Iterable[str | os.PathLike] = (),
    readable: Iterable[str | os.PathLike] = (),
    writable: Iterable[str | os.PathLike] = (),
    network: bool = False,
    tmpfs_mb: int | None = None,
) -> list[str]:
    """The ``bwrap`` command line that runs ``argv`` isolated, in ``scratch``.

    Args:
        argv (Sequence[str]): the command to run inside.
        scratch (str | os.PathLike): the working directory and ``HOME``, at its own path: a fresh
            tmpfs of ``tmpfs_mb`` (the host folder's files are not seen there, except ``readable``
            and ``writable`` ones), or, without ``tmpfs_mb``, the host folder bound writable.
        hide (Iterable[str | os.PathLike]): what the code must not see of a bound tree: folders
            become an empty read-only tmpfs, files an unreadable ``/dev/null``. Paths that do not
            exist, or that no bind shows (they are not there anyway), are skipped.
        readable (Iterable[str | os.PathLike]): host paths bound read-only, at their own paths (the
            interpreter and its environment, labkit's package, a dataset), also over hidden ones.
        writable (Iterable[str | os.PathLike]): host files bound writable (a results file in
            scratch); the sandbox's ``RLIMIT_FSIZE`` caps each.
        network (bool): keep the host's network (default: a namespace holding only loopback).
        tmpfs_mb (int | None): size of ``/tmp``, ``/dev/shm`` and scratch (bubblewrap >= 0.7).

    Returns:
        ``["bwrap", ..., "--", *argv]``.

    Raises:
        ValueError: a ``readable`` path does not exist, a ``writable`` one is not a file.
    """
    scratch = os.path.abspath(scratch)
    plan = layout(
        scratch=scratch, hide=hide, readable=readable, writable=writable, tmpfs_mb=tmpfs_mb
    )
    return [
        "bwrap",
        *plan.args,
        *([] if network else ["--unshare-net"]),
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",
        "--new-session",
        "--chdir",
        scratch,
        "--setenv",
        "HOME",
        scratch,
        "--",
        *argv,
    ]
