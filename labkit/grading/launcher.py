"""The first program inside a sandbox: limits, an unprivileged uid, then the command.

Run as ``python -I -S -c <this file's text> SPEC ARGV...`` by
:func:`labkit.grading.sandbox.run_sandboxed` (standard library only, nothing from the course or
the student's folder on ``sys.path``). In a forked child it sets the resource limits of SPEC,
drops a root grader's child to SPEC's uid, sets no_new_privs and execs ARGV; it stays the
child's subreaper and kills whatever the command leaves behind, then sends the command's wait
status down SPEC's socket. EOF on that socket means the grader died: it cleans up and exits.
"""

import ctypes
import json
import os
import resource
import shutil
import signal
import sys
import threading

__all__ = ["descendants", "launch"]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` now, read from ``/proc`` (children of every thread)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            for tid in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{tid}/children") as f:
                    kids = [int(k) for k in f.read().split()]
                found, todo = found + kids, todo + kids
        except OSError:
            continue
    return found


def launch() -> None:
    """Set SPEC's limits and uid in a child, exec ARGV there, reap and report its status."""
    spec, argv = json.loads(sys.argv[1]), sys.argv[2:]
    libc, line = ctypes.CDLL(None), spec["line"]  # a socket to the grader: status out, EOF in
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans stay below this process
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # until inside `try` below
    program = shutil.which(argv[0]) or argv[0]  # before the drop: stdlib may be out of reach
    status, pid = None, os.fork()  # single-threaded still: the child cannot inherit a held lock
    if pid == 0:
        try:
            os.close(line)
            for which, soft, hard in spec["rlimits"]:
                resource.setrlimit(which, (soft, hard))
            if spec["uid"] is not None:
                os.setgroups([])
                os.setgid(spec["uid"])
                os.setuid(spec["uid"])
            libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: setuid programs gain nothing
            for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            os.execv(program, argv)
        except BaseException as exc:  # noqa: BLE001 - the child must never return from here
            os.write(2, f"labkit sandbox: cannot run {argv[0]!r}: {exc}\n".encode())
        os._exit(127)

    def lifeline():  # EOF or error: the grader died (maybe before we started); clean up, go
        try:
            while os.read(line, 64):
                pass
        finally:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)

    threading.Thread(target=lifeline, daemon=True).start()
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        while status is None:
            done, code = os.wait()
            status = code if done == pid else None
    finally:  # also on SIGTERM: kill what the command left behind (orphans come to us)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            for kid in descendants(os.getpid()):
                try:
                    os.kill(kid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                done, code = os.wait()
            except ChildProcessError:
                break
            status = code if done == pid and status is None else status
        try:
            os.write(line, b"%d\n" % status if status is not None else b"")
        except OSError:  # the grader is gone
            pass
    os._exit(0)


if __name__ == "__main__":
    launch()
