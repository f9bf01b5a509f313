"""``labkit course autograde``: a lab graded for a whole class, in parallel and safely.

Each submission is graded by its own process (:mod:`labkit.grading.worker`): nbgrader's
autograde converter with the sandboxed judge (:mod:`labkit.grading.judge`) in place of the
kernel. ``jobs`` of them run at once, each forked by its job's zygote
(:mod:`labkit.grading.zygote`, which has nbgrader imported already); a thread per job waits
on its process, so a crash, a hang past ``timeout`` or a kill ends one student's grading,
which is then recorded as failed with the reason, and the batch goes on. Every student ends
with a grading record (:func:`~labkit.grading.instance.write_record`), written atomically
after nbgrader has stored the grade, so a run killed at any point and started again regrades
whoever has no up-to-date record; nbgrader keeps one submission and one grade per cell, so
nothing is counted twice.
A grading that failed (the student's notebook unreadable, or the grader's fault: a judge that
never started, nbgrader failing) is recorded ``failed`` with its deepest cause and graded
again by the next run; only a ``graded`` record is ever skipped.

Before anyone is graded, a preflight runs an empty notebook through the judge exactly as the
students' will run (same sandbox mode, an unprivileged uid): a machine on which grading
cannot work is one :class:`GradingUnavailable` error, with the cause and the fix, not a
class of failed students. One case is worked around instead. Without bubblewrap (absent, or
``sandbox=False``), a root grader drops the judge to an unprivileged uid, which cannot run an
interpreter (or import a labkit) under a folder only root may enter (pyenv's
``/root/.pyenv``, root's home being ``0700``). Copying the interpreter and its packages
somewhere reachable costs gigabytes, and no uid but root may enter such a folder; so when
the preflight's judge fails as that uid and works as the grader itself, the judges run as the
grader's own user: with the memory, CPU, output and wall-clock limits but not the process cap
(Linux exempts root), and with the grader's file access, so student code could change the
gradebook. A loud warning says so (once per process) and each student's grading note too.
The fix is bubblewrap (inside it every uid reaches the interpreter) or a Python and labkit
outside ``/root``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from labkit.grading.bwrap import bwrap_available
from labkit.grading.course import CourseError, check_lab
from labkit.grading.instance import read_record, read_students, write_record
from labkit.grading.sandbox import NOBODY, Limits, SandboxError
from labkit.grading.zygote import Zygote

__all__ = ["GradingUnavailable", "Outcome", "autograde", "submitted_students"]

log = logging.getLogger(__name__)

_PREFLIGHT_SECONDS = 120  # an empty notebook: the runner's imports, on a busy machine
_AS_ROOT_WARNED: list[bool] = []  # the warning that judges run as root: once per process


class GradingUnavailable(CourseError):
    """Grading cannot run on this machine as asked; nobody was graded."""


@dataclass(frozen=True)
class Outcome:
    """How one student's lab ended in this run.

    Attributes:
        student: the student id; status: ``"graded"``, ``"failed"`` or ``"skipped"``
            (up to date, with ``resume``).
        reason: why it failed, or a remark on a graded one (an extra notebook, a judge
            stopped by a limit); score, max_score: from nbgrader's gradebook (``None`` when
            it failed); seconds: wall time.
    """

    student: str
    status: str
    reason: str
    score: float | None
    max_score: float | None
    seconds: float


def submitted_students(root: str | os.PathLike, lab: str) -> list[str]:
    """The students with a ``submitted/<student>/<lab>/`` folder, sorted."""
    base = Path(root) / "submitted"
    return sorted(p.name for p in base.iterdir() if (p / lab).is_dir()) if base.is_dir() else []


def _up_to_date(root: Path, lab: str, student: str) -> bool:
    record = read_record(root, lab, student)
    folder = root / "submitted" / student / lab
    newest = max((p.stat().st_mtime for p in folder.rglob("*")), default=0.0)
    return (
        record is not None
        and record.status == "graded"
        and record.finished.timestamp() > max(newest, folder.stat().st_mtime)
    )


def _draw_shapes(folder: Path) -> str:
    """The quick profile's Shapes set, drawn in ``folder`` for every judge of a run ('' if
    it cannot be drawn: the judges then draw their own, about 3 s a notebook).

    The folder lies outside the course: binding a path under the hidden course root into the
    sandbox would show its folder names.
    """
    try:
        from labkit.experiment import resolve_data_root
        from labkit.labs import lab_config

        data = resolve_data_root(lab_config("baseline", profile="quick"), runs_root=folder)
        for path in [folder, *folder.rglob("*")]:  # for the sandbox's unprivileged user
            path.chmod(0o755 if path.is_dir() else 0o644)
        return str(data)
    except Exception as exc:  # noqa: BLE001 - an optimisation: the judges draw their own
        log.info("no shared Shapes set (%s: %s); each judge draws its own", type(exc).__name__, exc)
        return ""


def _preflight(root: Path, lab: str, *, sandbox: bool, memory_mb: int) -> bool:
    """Run an empty notebook through the judge as the students' will run; whether the judges
    may drop to unprivileged uids (``False``: they run as the grader's own user)."""
    import nbformat

    from labkit.grading.judge import judge_program, run_judge

    program = judge_program(nbformat.v4.new_notebook(), prelude="", modules=[], cell_timeout=60.0)
    limits = Limits(
        memory_mb=memory_mb, wall_seconds=_PREFLIGHT_SECONDS, cpu_seconds=_PREFLIGHT_SECONDS
    )
    mode = "bubblewrap" if sandbox else "resource limits only"
    # A root grader with limits only may fall back to itself (see the module's docstring).
    uids = [NOBODY - 1, *([None] if not sandbox and os.geteuid() == 0 else [])]
    problems = []
    for uid in uids:
        try:
            result = run_judge(
                program, limits=limits, hide=[str(root)], bwrap=None if sandbox else False, uid=uid
            )
            why = result.grader_failure() or (
                None if result.finished else f"the judge stopped early ({result.sandbox.reason})"
            )
        except SandboxError as exc:
            why = f"SandboxError: {exc}"
        if why is None:
            break
        who = "as the grader's own user" if uid is None else f"as uid {uid}"
        problems.append(f"{who}: {why}")
    else:
        raise GradingUnavailable(
            f"cannot grade {lab}: an empty notebook does not get through the judge here "
            f"({mode}): {'; '.join(problems)}. Nobody was graded: fix that (a memory limit: "
            "raise --memory-mb; an import that fails: repair labkit's environment; a folder "
            "that bars the way: install bubblewrap or chmod o+x it) and grade again."
        )
    if uid is None and not _AS_ROOT_WARNED:
        _AS_ROOT_WARNED.append(True)
        log.warning(
            "STUDENT CODE RUNS AS ROOT: with limits only, the unprivileged uid cannot "
            "run the judge (%s). Student code keeps root's file access (it could change "
            "the gradebook) and no process cap applies. Install bubblewrap (apt-get "
            "install bubblewrap), or use a Python and labkit outside root's home (or "
            "chmod o+x the folders on their way).",
            problems[0],
        )
    return uid is not None


def _grade(
    root: Path, lab: str, student: str, spec: dict, timeout: float, slots: queue.SimpleQueue
) -> Outcome:
    # a uid per running judge (the process cap counts all of a uid's processes), and the
    # zygote that forks this job's workers
    uid, zygote = slots.get()
    try:
        return _grade_as(root, lab, student, dict(spec, uid=uid), timeout, zygote)
    finally:
        slots.put((uid, zygote))


def _grade_as(
    root: Path, lab: str, student: str, spec: dict, timeout: float, zygote: Zygote
) -> Outcome:
    started = time.monotonic()
    status, out, err = zygote.grade(dict(spec, root=str(root), lab=lab, student=student), timeout)
    if status is None:
        out = json.dumps({"status": "failed", "reason": f"grading took more than {timeout:g} s"})
    try:
        outcome = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        lines = [line.strip() for line in err.splitlines() if line.strip()]
        outcome = {
            "status": "failed",
            "reason": f"the grading process ended with status "
            f"{status}: {' / '.join(lines[-3:]) or 'no output'}"[:600],
        }
    seconds = time.monotonic() - started
    write_record(
        root,
        lab,
        student,
        status=outcome["status"],
        seconds=seconds,
        reason=outcome.get("reason", ""),
    )
    return Outcome(
        student,
        outcome["status"],
        outcome.get("reason", ""),
        outcome.get("score"),
        outcome.get("max_score"),
        seconds,
    )


def _chosen_students(root: Path, lab: str, students: list[str] | None) -> list[str]:
    """The students to grade, sorted: ``students``, else all who submitted ``lab``.

    Raises:
        CourseError: a student has no submission folder and is not in the class list.
    """
    known = set(submitted_students(root, lab))
    if (root / "students.csv").is_file():
        known |= {s["id"] for s in read_students(root / "students.csv")}
    chosen = sorted(set(students)) if students else submitted_students(root, lab)
    if unknown := [s for s in chosen if s not in known]:
        raise CourseError(
            f"no student {unknown[0]!r} in this course (no submitted/"
            f"{unknown[0]}/{lab}/ and not in students.csv); check the id."
        )
    return chosen


def _bubblewrap_works(lab: str) -> bool:
    """Whether bubblewrap works here; warns, loudly, when it does not (``lab``'s student code
    then runs with resource limits only)."""
    if bwrap_available():
        return True
    log.warning(
        "BUBBLEWRAP DOES NOT WORK HERE: student code of %s will run with resource "
        "limits only, able to read the gradebook, the solutions and other students' "
        "work and to use the network. Install bubblewrap (apt-get install "
        "bubblewrap) where user namespaces are allowed.",
        lab,
    )
    return False


def _uses_labkit(root: Path, lab: str) -> bool:
    """Whether ``lab``'s solution notebook mentions labkit (else its judges need no Shapes)."""
    return "labkit" in (root / "solutions" / lab / f"{lab}.ipynb").read_text(encoding="utf-8")


def autograde(
    root: str | os.PathLike,
    lab: str,
    *,
    students: list[str] | None = None,
    jobs: int = 1,
    timeout: float = 900.0,
    cell_timeout: float | None = None,
    memory_mb: int = 6144,
    sandbox: bool = True,
    referee: bool = True,
    resume: bool = False,
    shapes: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[Outcome]:
    """Grade ``lab`` for ``students`` (default: all who submitted it), ``jobs`` at a time.

    Args:
        root (str | os.PathLike): the course directory (``labkit course init``).
        lab (str): the lab, as in ``solutions/``.
        students (list[str] | None): whom to grade; each must have a submission folder or be in the
            class list.
        jobs (int): submissions graded at once (each takes one judge process; ~2 GB peak here).
        timeout (float): wall-clock seconds for one notebook; cell_timeout: for one cell
            (default: ``min(timeout, 300)``).
        memory_mb (int): memory (PSS) of one judge, all its processes together, in MiB.
        sandbox (bool): run student code under bubblewrap where it works (``False``: limits only).
        referee (bool): decide every test in the grader's process (:mod:`labkit.grading.
            refereed`, the default): the student's process never holds a test's source or
            labkit's versions of the lab's exercises. ``False``: the runner decides them in
            the student's sandboxed process (:mod:`labkit.grading.judge_runner`).
        resume (bool): skip students whose last grading succeeded after their last change.
        shapes (str | os.PathLike | None): the quick profile's Shapes set, read by every judge
            (readable by all users); default: drawn for this run in a temporary folder when the lab
            uses labkit.
        progress (bool): show a progress bar (tqdm, on stderr).

    Returns:
        One :class:`Outcome` per student, sorted by student id.

    Raises:
        CourseError: the lab is not in the course, a student is unknown, or ``jobs`` < 1.
        GradingUnavailable: the preflight found that grading cannot run here (the cause and
            the fix in the message); nobody was graded.
    """
    root = Path(root).resolve()
    check_lab(root, lab)
    if jobs < 1 or timeout <= 0 or memory_mb < 1:
        raise CourseError(
            f"expected jobs >= 1, timeout > 0 and memory_mb >= 1; got jobs={jobs}, "
            f"timeout={timeout}, memory_mb={memory_mb}."
        )
    chosen = _chosen_students(root, lab, students)
    # bubblewrap's absence said once here, not once per student in each worker
    sandbox = sandbox and _bubblewrap_works(lab)
    skipped = [s for s in chosen if resume and _up_to_date(root, lab, s)]
    todo = [s for s in chosen if s not in skipped]
    drop = _preflight(root, lab, sandbox=sandbox, memory_mb=memory_mb) if todo else True
    drawn = None  # a lab that never imports labkit trains on nothing
    if todo and shapes is None and _uses_labkit(root, lab):
        drawn = Path(tempfile.mkdtemp(prefix="labkit-shapes-"))
        shapes = _draw_shapes(drawn)
    spec = {
        "timeout": float(timeout),
        "memory_mb": int(memory_mb),
        "sandbox": bool(sandbox),
        "referee": bool(referee),
        "cell_timeout": float(cell_timeout or min(timeout, 300)),
        "data": str(shapes or ""),
    }
    try:
        return _run(
            root, lab, todo, skipped, spec, jobs=jobs, timeout=timeout, progress=progress, drop=drop
        )
    finally:
        if drawn is not None:
            shutil.rmtree(drawn, ignore_errors=True)


def _run(
    root: Path,
    lab: str,
    todo: list[str],
    skipped: list[str],
    spec: dict,
    *,
    jobs: int,
    timeout: float,
    progress: bool,
    drop: bool,
) -> list[Outcome]:
    outcomes = [
        Outcome(s, "skipped", "graded after its last change", None, None, 0.0) for s in skipped
    ]
    log.info(
        "%s: grading %d submission(s) with %d job(s), %d up to date",
        lab,
        len(todo),
        jobs,
        len(skipped),
    )
    slots: queue.SimpleQueue = queue.SimpleQueue()
    zygotes: list[Zygote] = []
    with (
        tempfile.TemporaryDirectory(prefix="labkit-grading-") as scratch,
        ThreadPoolExecutor(max_workers=jobs) as pool,
        tqdm(total=len(todo), desc=lab, unit="nb", disable=not progress or None) as bar,
    ):
        try:
            for slot in range(min(jobs, len(todo))):
                zygotes.append(Zygote(root, Path(scratch), referee=spec["referee"]))
                slots.put((NOBODY - 1 - slot if drop else None, zygotes[-1]))
            # a notebook's own limit plus a minute for nbgrader's bookkeeping around it
            futures = [pool.submit(_grade, root, lab, s, spec, timeout + 60, slots) for s in todo]
            for future in as_completed(futures):
                outcomes.append(future.result())
                bar.update()
                bar.set_postfix(failed=sum(o.status == "failed" for o in outcomes))
        finally:
            for zygote in zygotes:
                zygote.close()
    return sorted(outcomes, key=lambda o: o.student)
