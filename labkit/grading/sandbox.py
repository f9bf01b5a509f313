"""Run untrusted student code: bubblewrap isolation plus resource limits.

Under bubblewrap (:func:`labkit.grading.bwrap.sandbox_command`) the code sees an allow-list:
the system (``/usr``, ``/lib*``, a few files of ``/etc``), the interpreter this module runs on
and its environment, what the caller binds ``readable`` (labkit's package, a dataset) and a
fresh ``/dev``, ``/proc``, ``/tmp`` and ``/dev/shm``; nothing else of the host (no home, no
checkout or kit, no course), no network but loopback, its own process namespace. ``hide``
covers what lies inside a bound tree. All it can write is size-capped: ``/tmp``, ``/dev/shm``
and the scratch folder (its working directory and ``HOME``) are each a tmpfs of
``Limits.output_mb``, and the host files bound ``writable`` (a results file) are capped one by
one by ``RLIMIT_FSIZE``. Where bwrap is missing or cannot make namespaces,
:func:`run_sandboxed` falls back to resource limits alone and warns, loudly, once per
process: the code then sees the whole file system and writes to the host's scratch folder,
each file capped but not their total.

The ``bwrap`` command line is :func:`labkit.grading.bwrap.sandbox_command`.
The first program in the sandbox is :mod:`labkit.grading.launcher`, run by
``python -I -S -c``. In a forked child it sets ``RLIMIT_CPU``, ``RLIMIT_FSIZE``,
``RLIMIT_NPROC``, ``RLIMIT_CORE`` and a generous ``RLIMIT_AS``, drops a root grader's child to
an unprivileged uid (Linux does not enforce ``RLIMIT_NPROC`` for root, and file permissions
then apply), sets no_new_privs and execs the command; it stays the child's subreaper and kills
whatever the command leaves behind. (No ``preexec_fn``: it is not safe with threads, and bwrap
must not run under the limits.) Outside, a watchdog thread sums the resident memory of the
process tree from ``/proc`` (proportional set sizes: a fork's shared pages count once) and
what its files hold in the sandbox's tmpfs (``/tmp``, ``/dev/shm``, scratch: memory that no
process maps), and enforces ``memory_mb`` and the wall clock.

``uid=None`` runs the command as the grader's own user: no drop, so a root grader's command
keeps root's file access and ``RLIMIT_NPROC`` does not bind it (the memory, CPU, output and
wall-clock limits still do). :func:`labkit.grading.batch.autograde` asks for it only with
limits only, when its preflight finds that the unprivileged uid cannot run the judge (an
interpreter under root's ``0700`` home, as pyenv puts it) but the grader can, and says so in
a loud warning.

Measured here (torch 2.14, CUDA build, no GPU): ``import torch, torchvision`` and a ResNet-18
step reach 3.9 GB of address space and fail under a 3 GB ``RLIMIT_AS``; a notebook kernel run
by ``jupyter nbconvert`` reaches 4.5 GB and 18 threads. Hence ``RLIMIT_AS`` is ``memory_mb``
plus 8 GB: a backstop, the RSS watchdog being the real limit.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from labkit.errors import LabkitError
from labkit.grading.bwrap import (
    Layout,
    bwrap_available,
    interpreter_paths,
    layout,
    probe,
    sandbox_command,
    unreachable,
)
from labkit.grading.launcher import descendants

__all__ = [
    "NOBODY",
    "OUTPUT_TAIL_BYTES",
    "Limits",
    "SandboxError",
    "SandboxResult",
    "bwrap_available",
    "run_sandboxed",
    "sandbox_command",
]

log = logging.getLogger(__name__)

NOBODY = 65534  # whom a root grader runs student code as (uid and gid), unless told otherwise
OUTPUT_TAIL_BYTES = 64 * 1024  # how much of the end of the output a result keeps
_AS_HEADROOM_MB, _POLL, _MB, _WARNED = 8192, 0.05, 2**20, []
# The watchdog sums PSS (a walk of every page table: ~10 ms for a process holding torch) only
# when the tree's resident size, an upper bound read in microseconds, comes within an eighth
# of the limit (the kernel's RSS counters may lag its page tables by a few pages per thread),
# and every _PSS_EVERY polls (a second) for the peak it reports.
_NEAR, _PSS_EVERY = 0.875, 20
_LAUNCHER = Path(__file__).with_name("launcher.py")


class SandboxError(LabkitError, RuntimeError):
    """Student code cannot run as asked: bwrap required but unusable, a path out of reach."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run (MB are 2**20 bytes).

    Attributes:
        memory_mb: resident memory of the whole process tree, with the files it keeps in the
            sandbox's tmpfs; above it all of it is killed.
        cpu_seconds: CPU time of each process (``RLIMIT_CPU``: SIGXCPU, SIGKILL 5 s later).
        processes: processes and threads of the sandbox's uid (``RLIMIT_NPROC``).
        output_mb: size of each file written (``RLIMIT_FSIZE``) and, inside bubblewrap, of
            each of its tmpfs: ``/tmp``, ``/dev/shm`` and the scratch folder.
        wall_seconds: wall-clock time of the whole run.
    """

    memory_mb: int = 4096
    cpu_seconds: int = 1800
    processes: int = 256
    output_mb: int = 512
    wall_seconds: float = 900.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value, whole = getattr(self, f.name), f.name != "wall_seconds"
            if (
                isinstance(value, bool)
                or not isinstance(value, int if whole else (int, float))
                or not 0 < value < float("inf")
            ):
                raise ValueError(
                    f"Limits.{f.name} must be a positive "
                    f"{'integer' if whole else 'finite number'}; got {value!r}."
                )


@dataclass(frozen=True)
class SandboxResult:
    """How a run ended.

    Attributes:
        returncode: the command's exit status; ``-N`` when signal N ended it.
        output: the last :data:`OUTPUT_TAIL_BYTES` of its stdout and stderr together.
        seconds: wall-clock duration.
        timed_out: stopped by the wall-clock or the CPU-time limit.
        memory_exceeded: killed for holding more than ``memory_mb``.
        sandboxed: ran inside bubblewrap (``False``: resource limits only).
        reason: one line, e.g. ``"memory limit of 512 MB exceeded"``, ``"killed by signal 11
            (SIGSEGV)"``; ``None`` when the command exited with status 0.
        peak_memory_mb: the most resident memory (PSS) of the process tree the watchdog
            saw; it sums PSS each second, and at every poll near ``memory_mb``.
    """

    returncode: int
    output: str
    seconds: float
    timed_out: bool
    memory_exceeded: bool
    sandboxed: bool
    reason: str | None
    peak_memory_mb: float


def _hand_over(scratch: Path, program: str, uid: int | None, plan: Layout | None) -> None:
    """Check that ``uid`` (``None``: the sandbox, whoever runs in it) reaches ``scratch`` and
    ``program``; give ``uid`` ``scratch``."""
    found = [Path(os.path.abspath(program)), Path(os.path.realpath(program))]
    for path in {scratch, *(found if found[1].exists() else [])}:  # else the launcher says
        why = unreachable(path, uid, plan)
        if why:
            raise SandboxError(
                f"{'the sandbox' if uid is None else f'uid {uid}'} cannot "
                f"reach {path}: {why}. Move it, grant that uid access (chmod "
                "o+x), or bind it with `readable`."
            )
    for folder, dirs, files in os.walk(scratch) if uid is not None else ():
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.lchown(name, uid, uid)  # never follows a student's symlink


def _tree_rss(pid: int) -> int:
    """Memory of a process tree: the sum of proportional set sizes (PSS), so pages a fork
    shares with its parent count once, not once per process as RSS would."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:"))
        except (OSError, IndexError, ValueError, StopIteration):
            try:  # no smaps_rollup (kernel < 4.14): resident size, shared pages counted twice
                with open(f"/proc/{p}/statm") as f:
                    total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, IndexError, ValueError):
                pass
    return total


def _tree_resident(pid: int) -> int:
    """An upper bound of :func:`_tree_rss`: the sum of resident set sizes, shared pages
    counted once per process (a process's PSS never exceeds its RSS). Read from
    ``/proc/<pid>/statm``, a counter, where PSS needs a walk of the page tables."""
    total, page = 0, os.sysconf("SC_PAGE_SIZE")
    for p in [pid, *descendants(pid)]:
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
    return total


def _tmpfs_held(pid: int, mounts: Sequence[str]) -> int:
    """Bytes in the sandbox's writable tmpfs: memory that no process maps, so no PSS shows
    it. Read through ``/proc/<pid>/root`` of a process inside (``statvfs``, microseconds)."""
    if not mounts:
        return 0
    try:  # bwrap's child, pid 1 of the sandbox, has the sandbox's root as its own
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(k) for k in f.read().split()]
    except (OSError, ValueError):
        return 0
    for child in children:
        inside = [f"/proc/{child}/root{m}" for m in mounts]
        try:
            if not all(_own_mount(there, here) for there, here in zip(inside, mounts)):
                # bwrap has not mounted the sandbox yet: these paths are still the host's,
                # whose disk usage is not the student's (it once failed a judge at start-up)
                return 0
            return sum((st.f_blocks - st.f_bfree) * st.f_frsize for st in map(os.statvfs, inside))
        except OSError:  # gone
            continue
    return 0


def _own_mount(inside: str, host: str) -> bool:
    """Is the path ``inside`` the sandbox (through ``/proc/<pid>/root``) on another file system
    than the same path on the host, i.e. the sandbox's own mount?"""
    try:
        theirs = os.stat(host).st_dev
    except OSError:  # no such path on the host: it can only be the sandbox's
        return True
    return os.stat(inside).st_dev != theirs


def _stop(proc: subprocess.Popen, sandboxed: bool) -> None:
    # bwrap: kill its pid-namespace init; the kernel takes every process inside along before
    # bwrap sees it die. Otherwise SIGTERM the launcher, which kills what it started.
    try:
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            inits = [int(p) for p in f.read().split()] if sandboxed else []
        for pid in inits or [proc.pid]:
            os.kill(pid, signal.SIGKILL if sandboxed else signal.SIGTERM)
        proc.wait(timeout=5)
        return
    except (OSError, subprocess.TimeoutExpired):
        pass
    for pid in [proc.pid, *descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _watch(
    proc: subprocess.Popen,
    limits: Limits,
    sandboxed: bool,
    state: dict,
    done: threading.Event,
    tmpfs: Sequence[str] = (),
) -> None:
    limit, polls = limits.memory_mb * _MB, 0
    while not done.wait(_POLL) and proc.poll() is None:
        held = _tmpfs_held(proc.pid, tmpfs)  # files in the sandbox's tmpfs are memory too
        # far below the limit by the cheap bound, the tree is below it by PSS too: the exact
        # sum is needed only near the limit, and now and then for the peak
        if polls % _PSS_EVERY == 0 or _tree_resident(proc.pid) + held > _NEAR * limit:
            rss = _tree_rss(proc.pid) + held
            state["peak"] = max(state["peak"], rss)
            state["memory"] = rss > limit
        polls += 1
        state["wall"] = time.monotonic() - state["start"] > limits.wall_seconds
        if state["memory"] or state["wall"]:
            log.info("stopping pid %d: %s limit", proc.pid, "memory" if state["memory"] else "time")
            return _stop(proc, sandboxed)


def _feed(pipe, data: bytes) -> None:
    try:  # a command that never reads its input must not block the grader
        pipe.write(data)
    except OSError:
        pass
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def _reason(code: int, state: dict, limits: Limits) -> str | None:
    if state["memory"]:
        return f"memory limit of {limits.memory_mb} MB exceeded"
    if state["wall"]:
        return f"wall-clock limit of {limits.wall_seconds:g} s exceeded"
    if code in (-signal.SIGXCPU, -signal.SIGXFSZ):
        return (
            f"CPU time limit of {limits.cpu_seconds} s"
            if code == -signal.SIGXCPU
            else f"file size limit of {limits.output_mb} MB"
        ) + " exceeded"
    if code < 0:
        return f"killed by signal {-code} ({signal.Signals(-code).name})"
    return f"exited with status {code}" if code else None


def run_sandboxed(
    argv: Sequence[str],
    *,
    scratch: str | os.PathLike,
    hide: Iterable[str | os.PathLike] = (),
    readable: Iterable[str | os.PathLike] = (),
    writable: Iterable[str | os.PathLike] = (),
    limits: Limits,
    env: Mapping[str, str] | None = None,
    bwrap: bool | None = None,
    uid: int | None = NOBODY,
    stdin: bytes = b"",
    pass_fds: Sequence[int] = (),
) -> SandboxResult:
    """Run ``argv`` in ``scratch`` under bubblewrap (where it works) and ``limits``.

    A root grader runs the command as ``uid`` (gid the same number) and first hands
    ``scratch`` to it: root ignores ``RLIMIT_NPROC``, and the unprivileged user only writes
    where it may. The process cap counts every process of that uid, so runs in parallel
    should each get a uid of their own (a grader that is not root and has no bwrap shares
    the cap with all of its own processes).

    Args:
        argv (Sequence[str]): the command, e.g. ``[python, "-m", "jupyter", "nbconvert", ...]``.
        scratch (str | os.PathLike): an existing folder: the code's working directory and ``HOME``.
            Under bubblewrap with ``--size`` a fresh tmpfs of ``limits.output_mb`` at this path, in
            which only ``readable`` and ``writable`` files of the folder are seen; otherwise the
            folder itself, writable.
        hide (Iterable[str | os.PathLike]): what the code must not see of a bound tree (see
            :func:`sandbox_command`).
        readable (Iterable[str | os.PathLike]): what to bind read-only besides the system; the
            Python running this module is added (its installation and environment), since the
            launcher runs on it.
        writable (Iterable[str | os.PathLike]): files to bind writable (under bubblewrap; without it
            all of ``scratch`` is), each capped by ``limits.output_mb``.
        limits (Limits): the resource limits.
        env (Mapping[str, str] | None): the environment (default: only ``PATH`` and ``LANG``);
            ``HOME`` becomes ``scratch``.
        bwrap (bool | None): ``None``: bubblewrap where it works, else limits only with a warning;
            ``True``: bubblewrap or :class:`SandboxError`; ``False``: limits only.
        uid (int | None): whom a root grader runs the code as; ``None``: the grader's own user (no
            drop; a root grader's code then keeps root's file access).
        stdin (bytes): what the command reads on its standard input (then end of file).
        pass_fds (Sequence[int]): file descriptors the command inherits under the same numbers
            (the pipes of a channel to it); the caller keeps and closes its own copies.

    Returns:
        How the run ended; none of its processes is left when this returns.

    Raises:
        SandboxError: bwrap required but unusable, or ``uid`` cannot reach ``scratch`` or
            the program.
        ValueError: ``argv`` is empty or ``scratch`` is not a folder.
    """
    scratch = _scratch_folder(argv, scratch)
    sandboxed = _mode(bwrap)
    env = dict(
        {"PATH": os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8"} if env is None else env,
        HOME=str(scratch),
    )
    files = {
        "hide": list(hide),
        "readable": [*readable, *interpreter_paths()],
        "writable": list(writable),
        "tmpfs_mb": limits.output_mb if probe()[1] else None,
    }
    plan = layout(scratch=scratch, **files) if sandboxed else None
    drop = os.geteuid() == 0 and uid is not None
    if drop or sandboxed:  # inside, a program that is not bound is not there
        program = shutil.which(argv[0], path=env.get("PATH")) or argv[0]
        _hand_over(scratch, program, uid if drop else None, plan)
    ours, theirs = socket.socketpair()
    cmd = _launch_command(argv, limits, uid if drop else None, theirs.fileno())
    if sandboxed:
        cmd = sandbox_command(cmd, scratch=scratch, **files)
    state = {"start": time.monotonic(), "peak": 0, "memory": False, "wall": False}
    proc = _start(cmd, scratch, env, theirs, pass_fds)
    tail = _supervise(proc, stdin, limits, sandboxed, state, _tmpfs_mounts(plan))
    status = _status(ours)
    return _result(proc, status, state, limits, sandboxed, tail)


def _scratch_folder(argv: Sequence[str], scratch: str | os.PathLike) -> Path:
    """``scratch``, resolved, checked to be a folder (and ``argv`` to be a command).

    Raises:
        ValueError: ``argv`` is empty or ``scratch`` is not a folder.
    """
    scratch = Path(scratch).resolve()
    if not argv or not scratch.is_dir():
        raise ValueError(
            f"expected a command and an existing scratch folder; got argv="
            f"{list(argv)!r}, scratch={scratch}."
        )
    return scratch


def _start(
    cmd: list[str],
    scratch: Path,
    env: Mapping[str, str],
    theirs: socket.socket,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen:
    """Start ``cmd`` in a session of its own (its process group is killed at the end), its
    output and errors on one pipe, the launcher's end ``theirs`` of the status socket and
    ``pass_fds`` passed on (bubblewrap and the launcher keep what they inherit). ``theirs`` is
    closed here whatever happens: the grader keeps only its own end."""
    try:
        return subprocess.Popen(
            cmd,
            cwd=scratch,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(theirs.fileno(), *pass_fds),
        )
    finally:
        theirs.close()


def _tmpfs_mounts(plan: Layout | None) -> list[str]:
    """The sandbox's writable tmpfs, whose files the watchdog counts as memory (none without
    bubblewrap)."""
    return (
        ["/tmp", "/dev/shm", *(m for m, kind in plan.mounts if kind == "scratch")] if plan else []
    )


def _result(
    proc: subprocess.Popen,
    status: bytes,
    state: dict,
    limits: Limits,
    sandboxed: bool,
    tail: bytes,
) -> SandboxResult:
    """How the run ended: the command's status as the launcher reported it (``status``;
    empty: it never did), else ``-SIGKILL`` for a run the watchdog stopped, else the status
    of the process started (bwrap or the launcher)."""
    killed = state["memory"] or state["wall"]
    code = (
        os.waitstatus_to_exitcode(int(status))
        if status
        else -signal.SIGKILL
        if killed
        else proc.returncode
    )
    reason = _reason(code, state, limits)
    if not status and not killed:
        reason = f"the sandbox ended without the command's status ({reason})"
    return SandboxResult(
        code,
        tail.decode(errors="replace"),
        time.monotonic() - state["start"],
        state["wall"] or code == -signal.SIGXCPU,
        state["memory"],
        sandboxed,
        reason,
        state["peak"] / _MB,
    )


def _mode(bwrap: bool | None) -> bool:
    """Whether to run under bubblewrap, as :func:`run_sandboxed`'s ``bwrap`` asks; warns
    (once per process) when student code runs without it."""
    works, _, why = probe()
    if bwrap and not works:
        raise SandboxError(
            f"bubblewrap is required but {why}; install it (apt-get install "
            "bubblewrap) where user namespaces are allowed."
        )
    sandboxed = works if bwrap is None else bwrap
    if not sandboxed and not _WARNED:
        _WARNED.append(True)
        log.warning(
            "STUDENT CODE RUNS WITHOUT A SANDBOX (%s): it can read the gradebook, the "
            "solutions and other students' work, use the network and fill the disk "
            "(each file it writes is capped, not their total); only resource limits "
            "apply. Install bubblewrap (apt-get install bubblewrap).",
            why if bwrap is None else "turned off by the caller",
        )
    return sandboxed


def _launch_command(argv: Sequence[str], limits: Limits, uid: int | None, line: int) -> list[str]:
    """The launcher's command line (:mod:`labkit.grading.launcher`): the limits, the uid
    to drop to (``None``: none) and the socket ``line`` it reports the status on."""
    space = (limits.memory_mb + _AS_HEADROOM_MB) * _MB
    rlimits = [
        (resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 5),
        (resource.RLIMIT_FSIZE, limits.output_mb * _MB, limits.output_mb * _MB),
        (resource.RLIMIT_NPROC, limits.processes, limits.processes),
        (resource.RLIMIT_AS, space, space),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    spec = json.dumps({"rlimits": rlimits, "uid": uid, "line": line})
    python = os.path.realpath(sys.executable)
    return [python, "-I", "-S", "-c", _LAUNCHER.read_text(encoding="utf-8"), spec, *argv]


def _supervise(
    proc: subprocess.Popen,
    stdin: bytes,
    limits: Limits,
    sandboxed: bool,
    state: dict,
    tmpfs: Sequence[str],
) -> bytes:
    """Feed ``proc`` its input, watch its limits and keep the tail of its output until it
    ends; then make sure nothing of it is left. Returns that tail."""
    threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()
    done = threading.Event()
    watchdog = threading.Thread(
        target=_watch,
        args=(proc, limits, sandboxed, state, done, tmpfs),
        name=f"sandbox-watchdog-{proc.pid}",
        daemon=True,
    )
    watchdog.start()
    tail, pipe, drain_until = bytearray(), select.poll(), float("inf")
    pipe.register(proc.stdout, select.POLLIN)
    try:
        while time.monotonic() < drain_until:
            if drain_until == float("inf") and proc.poll() is not None:
                drain_until = time.monotonic() + 1.0  # what is still in the pipe, then stop
            if pipe.poll(_POLL * 1000):
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                tail = (tail + chunk)[-OUTPUT_TAIL_BYTES:]
    finally:
        done.set()
        watchdog.join()
        if proc.poll() is None:
            _stop(proc, sandboxed)
        proc.wait()
        proc.stdout.close()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything left in the run's process group
        except OSError:
            pass
    return bytes(tail)


def _status(ours: socket.socket) -> bytes:
    """The command's wait status as the launcher reported it (empty: it never did); closes
    the launcher's lifeline, which makes a launcher still alive clean up now."""
    ours.setblocking(False)
    try:
        status = ours.recv(32).strip()
    except BlockingIOError:
        status = b""
    ours.close()
    return status
