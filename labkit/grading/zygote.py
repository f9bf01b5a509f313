"""Grading workers forked from a warm process: one process per submission, without paying
nbgrader's imports for each.

Every submission is graded in a process of its own (:mod:`labkit.grading.worker`), so a
crash, a hang or a kill ends one student's grading and nothing else. Starting that process
costs an interpreter and nbgrader's imports (nbconvert, SQLAlchemy, the exchange: about
1.2 s of a core), which a class of two hundred pays two hundred times. A zygote pays it once:
started per grading job (``python -I`` on the grader's labkit, like every worker), it imports
what :func:`~labkit.grading.worker.grade` needs and then, for each request, forks a child
that grades one submission from a fresh copy of that state and exits. The child is still a
process of its own per submission, in its own session, with stdout and stderr in files of
the grader's, exactly as a started worker.

Protocol (one JSON object per line): the grader writes ``{"spec": SPEC, "out": PATH,
"err": PATH}`` on the zygote's stdin; the zygote answers ``{"pid": N}`` once the child runs
and ``{"pid": N, "status": S}`` when it has ended (``S`` as ``subprocess.Popen.returncode``:
negative for a signal). The zygote exits at the end of its stdin; it and its children also
watch the lifeline pipe named on its command line, which reaches its end when the grader
dies, even by SIGKILL.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

from labkit.grading.bootstrap import module_argv

__all__ = ["Zygote"]


class Zygote:
    """The grader's handle on one zygote: :meth:`grade` one submission at a time.

    Args:
        course (Path): the course folder (named on the zygote's command line, so that the grading
            processes of a course can be found).
        scratch (Path): a folder of the grader's for the children's output files.
        referee (bool): the children grade with the referee: the zygote imports its side too.
    """

    def __init__(self, course: Path, scratch: Path, *, referee: bool = False) -> None:
        self.course, self.scratch, self.referee = course, scratch, referee
        self._proc: subprocess.Popen | None = None
        self._keep = -1
        self._count = 0

    def _start(self) -> subprocess.Popen:
        lifeline, self._keep = os.pipe()  # ends when this process dies
        err = open(self.scratch / f"zygote-{id(self)}.err", "wb")  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                module_argv(
                    "labkit.grading.zygote",
                    str(lifeline),
                    str(self.course),
                    *(["referee"] if self.referee else []),
                ),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                bufsize=0,
                pass_fds=(lifeline,),
                start_new_session=True,
            )  # unbuffered: select sees all
        finally:
            os.close(lifeline)
            err.close()
        return self._proc

    def _line(self, deadline: float) -> dict | None:
        """The zygote's next message, or None past ``deadline``; EOFError at its end."""
        out = self._proc.stdout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([out], [], [], left)[0]:
                return None
            line = out.readline()
            if not line:
                raise EOFError
            if line.strip():
                return json.loads(line)

    def _died(self) -> tuple[int, str, str]:
        """The zygote stopped answering: ``(its exit status, "", its stderr)``, reported
        as a worker's own end."""
        self.close()
        return (
            self._proc.returncode,
            "",
            (self.scratch / f"zygote-{id(self)}.err").read_text(errors="replace"),
        )

    def grade(self, spec: dict, timeout: float) -> tuple[int | None, str, str]:
        """Grade one submission in a forked child: ``(status, stdout, stderr)`` of the child,
        status ``None`` when it ran past ``timeout`` seconds and was killed (its whole
        session), and the zygote's own status and stderr when the zygote itself failed."""
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        self._count += 1
        out = self.scratch / f"{id(self)}-{self._count}.out"
        err = self.scratch / f"{id(self)}-{self._count}.err"
        deadline = time.monotonic() + timeout
        request = json.dumps({"spec": spec, "out": str(out), "err": str(err)}).encode() + b"\n"
        try:
            while request:
                request = request[self._proc.stdin.write(request) :]
        except OSError:
            return self._died()
        try:
            started = self._line(time.monotonic() + 120)  # a fork: at once, unless it broke
        except EOFError:
            started = None
        if started is None:
            return self._died()
        pid = started["pid"]
        try:
            ended = self._line(deadline)
        except EOFError:  # the zygote died: the child's session ends too
            _kill_session(pid)
            return self._died()
        killed = ended is None
        if killed:  # past the deadline
            _kill_session(pid)
            try:
                self._line(time.monotonic() + 30)  # the zygote's word that the child ended
            except EOFError:
                pass
        texts = []
        for path in (out, err):
            texts.append(path.read_text(errors="replace") if path.exists() else "")
            path.unlink(missing_ok=True)
        return (None if killed else ended["status"]), texts[0], texts[1]

    def close(self) -> None:
        """End the zygote (it finishes at the end of its stdin)."""
        if self._keep >= 0:
            os.close(self._keep)
            self._keep = -1
        if self._proc is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc.stdout.close()


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, 9)
    except ProcessLookupError:
        pass


def _child(request: dict, lifeline: int) -> None:
    """In the forked child: a session of its own, output to the grader's files, one grading."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, request["out"]), (2, request["err"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    os.close(null)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the fds replaced under Python
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    from labkit.grading import worker

    worker.run(dict(request["spec"], lifeline=lifeline))  # never returns


def main() -> None:
    lifeline = int(sys.argv[1])
    from labkit.grading import worker

    worker.preload(referee=sys.argv[3:4] == ["referee"])
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    while True:
        ready = select.select([requests, lifeline], [], [])[0]
        if lifeline in ready and not os.read(lifeline, 64):
            return  # the grader is gone
        line = requests.readline()
        if not line:
            return
        if not line.strip():
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                _child(request, lifeline)
            finally:
                os._exit(70)  # _child ends the process itself; this is a failure to start
        try:
            answers.write(json.dumps({"pid": pid}).encode() + b"\n")
            answers.flush()
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            answers.write(json.dumps({"pid": pid, "status": code}).encode() + b"\n")
            answers.flush()
        except BrokenPipeError:
            return  # the grader is gone; the child follows through the lifeline


if __name__ == "__main__":
    main()
