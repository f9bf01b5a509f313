"""Notebook kernels forked from a warm process, for the tests that run whole lab notebooks.

Every lab notebook's first cell imports torch, torchvision and matplotlib: about 3 s of a
core per kernel, paid by some fifty kernels in a test run. :class:`WarmKernelManager` is
jupyter_client's own ``AsyncKernelManager`` with one change: when the kernel command is
``python -m ipykernel_launcher`` of this interpreter, the kernel process is forked from a
server (one per test process) that has imported those libraries once, instead of started
from scratch. Everything else is what ``python -m ipykernel_launcher`` does: the child
starts a session of its own, takes the launch's environment, working directory and
arguments, reseeds ``random`` and NumPy, and runs ``ipykernel_launcher`` as ``__main__``.
Signals, interrupts and kills reach it as they would a started kernel.

The server imports no labkit module, so a notebook that uses a labkit module it never
imported fails here as it would on a student's machine. Tests that are about the kernel a
student or grader starts (the installed package, the sandboxed judge, labkit's own grading
commands) keep jupyter_client's default launch.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import uuid
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner

#: What a lab notebook's first cell imports that costs seconds, and ipykernel itself.
PRELOAD = (
    "torch",
    "torchvision",
    "matplotlib.pyplot",
    "matplotlib_inline.backend_inline",
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
)


def _serve() -> None:
    """The server's loop: one JSON request per line on stdin (``argv``, ``env``, ``cwd``),
    answered with the forked kernel's pid on stdout. Kernels are its children, reaped as
    they end; when stdin closes (the test process is gone) it kills those still running."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernels are reaped by the kernel
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    kernels: list[int] = []
    replies.write(b"ready\n")
    replies.flush()
    for line in requests:
        spec = json.loads(line)
        started_r, started_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the kernel
            os.close(started_r)
            _become_kernel(spec, started_w)
        os.close(started_w)
        os.read(started_r, 1)  # its own session exists: killpg(pid) reaches it and only it
        os.close(started_r)
        kernels.append(pid)
        replies.write(f"{pid}\n".encode())
        replies.flush()
    for pid in kernels:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def _become_kernel(spec: dict[str, Any], started: int) -> None:
    """In the forked child: ``python -m ipykernel_launcher ARGS`` as jupyter_client's
    launcher would have started it (new session, stdin from /dev/null); never returns."""
    code = 1
    try:
        import random
        import runpy

        import numpy as np

        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # its own children are its to wait for
        os.setsid()
        os.write(started, b"x")
        os.close(started)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.chdir(spec["cwd"])
        os.environ.clear()
        os.environ.update(spec["env"])
        random.seed()
        np.random.seed()  # a started kernel draws fresh seeds; the server's were shared
        sys.path[0] = os.getcwd()  # what `python -m` puts first (ipykernel_launcher takes it out)
        sys.argv = [sys.argv[0], *spec["argv"]]
        runpy.run_module("ipykernel_launcher", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os._exit(code)


class _Server:
    """One fork server per test process, started on first use."""

    _lock = threading.Lock()
    _proc: subprocess.Popen | None = None

    @classmethod
    def fork(cls, argv: list[str], env: dict[str, str], cwd: str) -> int:
        with cls._lock:
            if cls._proc is None or cls._proc.poll() is not None:
                from tests.labs.conftest import KERNEL_ENV

                cls._proc = subprocess.Popen(
                    [sys.executable, __file__],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env={**os.environ, **KERNEL_ENV},
                    start_new_session=True,
                )
                assert cls._proc.stdout.readline() == b"ready\n", "the kernel server died"
            cls._proc.stdin.write(
                json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode() + b"\n"
            )
            cls._proc.stdin.flush()
            answer = cls._proc.stdout.readline()
            if not answer.strip().isdigit():
                raise RuntimeError(f"the kernel server answered {answer!r}")
            return int(answer)


class ForkedKernel:
    """The part of :class:`subprocess.Popen` jupyter_client uses, for a kernel that is the
    server's child rather than ours: its end is seen through a pidfd."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid, self.returncode = pid, None
        try:
            self._fd = os.pidfd_open(pid)
        except ProcessLookupError:  # ended (and was reaped) already
            self._fd, self.returncode = -1, -signal.SIGKILL

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._fd], [], [], 0)[0]:
            # the exit status is the server's to read; a kernel that ended reads as killed
            self.returncode = -signal.SIGKILL
            os.close(self._fd)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._fd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
        return self.poll()

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class WarmProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, launching ``python -m ipykernel_launcher`` of this
    interpreter by a fork of the warm server (and no other command)."""

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        if cmd[:3] != [sys.executable, "-m", "ipykernel_launcher"]:
            raise ValueError(
                f"WarmKernelManager forks {sys.executable} -m ipykernel_launcher "
                f"only; the kernel spec asks for {cmd}. Use jupyter_client's "
                "AsyncKernelManager for other kernels."
            )
        # what jupyter_client's launcher adds (ipykernel watches this pid on Windows only)
        env = {**(kwargs.get("env") or os.environ), "JPY_PARENT_PID": str(os.getpid())}
        cwd = str(kwargs.get("cwd") or os.getcwd())
        self.process = ForkedKernel(_Server.fork(cmd[3:], env, cwd))
        self.pid = self.pgid = self.process.pid
        self.cwd = cwd
        return self.connection_info


class WarmKernelManager(AsyncKernelManager):
    """``AsyncKernelManager`` whose kernels come from :class:`WarmProvisioner`."""

    async def _async_pre_start_kernel(self, **kw: Any):
        if self.provisioner is None:
            self.kernel_id = self.kernel_id or kw.pop("kernel_id", None) or str(uuid.uuid4())
            self.provisioner = WarmProvisioner(
                kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self
            )
        return await super()._async_pre_start_kernel(**kw)


if __name__ == "__main__":
    _serve()
