"""Submissions from an LMS download into ``submitted/<student>/<lab>/<lab>.ipynb``.

:func:`collect_submissions` reads a folder or a zip file. Whose a notebook is, the top level
of the download alone decides (the LMS writes it; below it all is the student's upload):
a folder ``<student>/`` or a Moodle folder ``<Name>_<id>_assignsubmission_file_/`` owns
everything in it at any depth (``<student>/<lab>.ipynb``, nbgrader's
``<student>/<lab>/<lab>.ipynb``, an uploaded folder), so no folder a student names can file a
notebook under a classmate; a file at the top is its Canvas name's,
``<lastfirst>_[late_]<id>_<submission id>_<lab>[-N].ipynb`` (``-N``: a resubmission; highest
N, then submission id, is newest). Students are matched by id against the gradebook, labs by
the notebook's name (in a student's folder a Canvas-shaped name is an unknown lab).

One allowance: a download that is a single folder (hidden files and ``__MACOSX`` aside),
neither a gradebook student's nor a Moodle one, is a wrapper (a zip of the folder an LMS
download unpacked to) and is stepped into, once. A download of several entries has none, so
there a student's folder is always its own; only a download of nothing but the folder of
someone the gradebook lacks would be misread (the log names every wrapper stepped into).

A ``timestamp.txt`` beside a notebook is the LMS's time of it: it says which submission is
newer; else the file's (zip entry's) modification time decides. The time that decided is
written to the placed submission's ``timestamp.txt``, where nbgrader's autograde reads it
for late penalties (:mod:`labkit.grading.deadlines`); Canvas's ``late_`` marker is
reported. The source is only read; a submission in place is replaced only
by a newer one, and moved to ``.labkit/replaced/<student>/<lab>/``; each placement is atomic
(written beside, renamed). Every older version (of the same download, the one replaced, an
older one a later download brings) is kept, once per contents, in the history
(:mod:`labkit.grading.versions`). A zip file with an entry leaving it (absolute, ``..``) or unpacking
to over ``max_bytes`` is refused whole.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import time
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from nbgrader.utils import parse_utc

from labkit.grading.course import CourseError, available_labs
from labkit.grading.versions import keep_version

__all__ = ["CollectReport", "Placed", "Problem", "collect_submissions", "submission_time"]

log = logging.getLogger(__name__)

_CANVAS = re.compile(r"[^_/]+_(?P<late>late_)?(?P<id>[^_]+)_(?P<sub>\d+)_(?P<file>.+)\.ipynb", re.I)
_MOODLE = re.compile(r".+_(?P<id>[^_]+)_assignsubmission_[a-z]+_?")
_RESUBMITTED = re.compile(r"(?P<lab>.+?)-(?P<n>\d+)")
_UNREADABLE = (OSError, EOFError, RuntimeError, zipfile.BadZipFile, zlib.error)


@dataclass(frozen=True)
class Problem:
    """A file not placed, and why (``path`` in a zip file: ``archive.zip:inner/path``)."""

    path: str
    reason: str


@dataclass(frozen=True)
class Placed:
    """``student``'s ``lab`` from the file ``source`` at ``path``; LMS time ``submitted``;
    ``lms_late``: the LMS marked it late (Canvas's ``late_`` in the name)."""

    student: str
    lab: str
    source: str
    path: Path
    submitted: datetime | None
    lms_late: bool = False


@dataclass
class CollectReport:
    """What :func:`collect_submissions` did: submissions ``placed`` (new, or newer than the
    one in place) and ``unchanged`` (in place byte for byte); files ``skipped`` on purpose
    (older than another, a lab not asked for); ``problems``: files not placed (unknown student
    or lab, not a notebook, two candidates for one place, a link, too large, unreadable);
    ``kept``: older versions newly written to the history (``path`` there, ``submitted`` the
    version's time)."""

    placed: list[Placed] = field(default_factory=list)
    unchanged: list[Placed] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    kept: list[Placed] = field(default_factory=list)


@dataclass
class _Entry:
    parts: tuple[str, ...]  # path inside the source
    where: str  # the path shown to the instructor
    size: int
    mtime: datetime
    read: Callable[[], bytes]
    link: bool = False
    student: str = ""  # where it goes, once recognised as a submission
    lab: str = ""
    rank: tuple[int, int] = (0, 0)  # (resubmission number, LMS submission id)
    lms_time: datetime | None = None
    lms_late: bool = False


def _folder_entries(src: Path) -> Iterator[_Entry]:
    for top, dirs, files in os.walk(src):  # does not descend into linked folders
        for path, info in ((p, p.lstat()) for p in sorted(Path(top) / n for n in dirs + files)):
            if path.name in files or stat.S_ISLNK(info.st_mode):
                yield _Entry(
                    path.relative_to(src).parts,
                    str(path),
                    info.st_size,
                    datetime.fromtimestamp(info.st_mtime, timezone.utc),
                    path.read_bytes,
                    link=stat.S_ISLNK(info.st_mode),
                )


def _zip_entry(zf: zipfile.ZipFile, src: Path, info: zipfile.ZipInfo) -> _Entry:
    # A zip time is a local time without a zone (mktime also mends a month or day of 0).
    mtime = datetime.fromtimestamp(time.mktime(info.date_time + (0, 0, -1)), timezone.utc)
    parts = tuple(p for p in info.filename.replace("\\", "/").split("/") if p not in ("", "."))
    return _Entry(
        parts,
        f"{src}:{info.filename}",
        info.file_size,
        mtime,
        lambda: zf.read(info),
        link=stat.S_ISLNK(info.external_attr >> 16),
    )


@contextmanager
def _entries(src: Path, max_bytes: int) -> Iterator[list[_Entry]]:
    if src.is_dir():
        yield list(_folder_entries(src))
        return
    if not (src.is_file() and zipfile.is_zipfile(src)):
        raise CourseError(
            f"{src} is neither a folder nor a zip file; expected the LMS's "
            "download of the submissions, or the folder it unpacks to."
        )
    with zipfile.ZipFile(src) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        for info, parts in ((i, i.filename.replace("\\", "/").split("/")) for i in infos):
            if parts[0] == "" or re.match(r"[A-Za-z]:", parts[0]) or ".." in parts:
                raise CourseError(
                    f"{src}: entry {info.filename!r} leaves the archive (absolute "
                    "or '..'); refusing all of it. Download it from the LMS again."
                )
        if (total := sum(i.file_size for i in infos)) > max_bytes:
            raise CourseError(
                f"{src} unpacks to {total:,} bytes, over max_bytes={max_bytes:,}; "
                "refusing it. Raise the limit if it is trusted, or split it."
            )
        yield [_zip_entry(zf, src, info) for info in infos]


def _lab_of(stem: str, labs: set[str]) -> tuple[str, int]:
    m = _RESUBMITTED.fullmatch(stem)  # lab01-2: lab01, resubmission 2
    return (m["lab"], int(m["n"])) if stem not in labs and m and m["lab"] in labs else (stem, 0)


def _ignored(parts: tuple[str, ...]) -> bool:
    """Hidden files, macOS metadata, notebook checkpoints: never submissions."""
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _unwrap(entries: list[_Entry], students: set[str]) -> None:
    """Step into the download's wrapper folder, if it has one (see the module docstring)."""
    tops = {e.parts[0] for e in entries if not _ignored(e.parts)}
    if len(tops) != 1:
        return
    (top,) = tops
    if (
        top in students or _MOODLE.fullmatch(top) or any(e.parts == (top,) for e in entries)
    ):  # a file, not a folder
        return
    for entry in entries:
        if entry.parts[0] == top:
            entry.parts = entry.parts[1:]
    log.warning(
        "the download holds one folder, %r, and nothing else: read as a wrapper "
        "around the submissions, whose entries are the students'",
        top,
    )


def _recognise(entry: _Entry, labs: set[str]) -> None:
    """Set the student id (empty: none), lab and rank of a notebook: the student from the
    top-level entry of the download only, the lab from the notebook's name."""
    top, name = entry.parts[0], entry.parts[-1]
    entry.lab, resubmission = _lab_of(name[: -len(".ipynb")], labs)
    entry.student, entry.rank = "", (resubmission, 0)
    if len(entry.parts) > 1:  # in a student's folder, at any depth: that student's
        moodle = _MOODLE.fullmatch(top)
        entry.student = moodle["id"] if moodle else top
    elif entry.lab not in labs and (canvas := _CANVAS.fullmatch(name)):
        entry.lab, resubmission = _lab_of(canvas["file"], labs)
        entry.student, entry.rank = canvas["id"], (resubmission, int(canvas["sub"]))
        entry.lms_late = bool(canvas["late"])


def _why_not(entry: _Entry, students: set[str], labs: set[str], max_file_bytes: int) -> str | None:
    if entry.link:
        return "a link, not a file; links are never followed"
    if not entry.parts[-1].lower().endswith(".ipynb"):
        return "not a notebook (expected <lab>.ipynb)"
    if entry.size > max_file_bytes:
        return f"{entry.size:,} bytes, more than max_file_bytes={max_file_bytes:,}"
    if entry.lab not in labs:
        return (
            f"unknown lab {entry.lab!r}: expected a notebook named <lab>.ipynb, <lab> one "
            f"of {sorted(labs)}"
        )
    if not entry.student:
        return (
            "no student folder: a notebook at the top of the download without a Canvas "
            "name; expected <student>/<lab>.ipynb"
        )
    if entry.student not in students:
        return (
            f"unknown student {entry.student!r}: not in the gradebook; add them (`nbgrader "
            "db student add ID`) or fix the name, and collect again"
        )
    return None


def _candidates(
    entries: list[_Entry],
    students: set[str],
    labs: set[str],
    wanted: set[str],
    max_file_bytes: int,
    report: CollectReport,
) -> Iterator[_Entry]:
    stamps = {e.parts[:-1]: e for e in entries if e.parts[-1] == "timestamp.txt"}
    for entry in entries:
        if _ignored(entry.parts) or entry is stamps.get(entry.parts[:-1]):
            continue  # hidden files, macOS metadata, checkpoints; timestamps are read below
        if entry.parts[-1].lower().endswith(".ipynb"):
            _recognise(entry, labs)
        if entry.lab in labs - wanted:
            report.skipped.append(Problem(entry.where, f"lab {entry.lab} was not asked for"))
        elif why := _why_not(entry, students, labs, max_file_bytes):
            report.problems.append(Problem(entry.where, why))
        else:
            if stamp := stamps.get(entry.parts[:-1]):
                try:
                    entry.lms_time = parse_utc(stamp.read().decode().strip()).replace(
                        tzinfo=timezone.utc
                    )
                except (ValueError, OverflowError, *_UNREADABLE) as exc:
                    log.warning("%s: not a time (%s); the file's time decides", stamp.where, exc)
            yield entry


def _newest(group: list[_Entry], report: CollectReport) -> _Entry | None:
    """The newest candidate for one place; None (and problems) when two tie and differ."""
    timed = all(c.lms_time for c in group)
    key = (lambda c: (c.lms_time, c.rank)) if timed else (lambda c: c.rank)
    best, *rest = sorted(group, key=key, reverse=True)
    body = best.read()
    if ties := [c for c in rest if key(c) == key(best) and c.read() != body]:
        for c in (best, *ties):
            others = ", ".join(o.where for o in (best, *ties) if o is not c)
            report.problems.append(
                Problem(
                    c.where,
                    f"two candidates for {c.student}/{c.lab} "
                    f"({others}), none newer; remove one, collect again",
                )
            )
        return None
    report.skipped += [Problem(c.where, f"older than {best.where}") for c in rest]
    return best


def submission_time(folder: str | os.PathLike, lab: str) -> datetime | None:
    """When the submission in ``folder`` (``submitted/<student>/<lab>``) was handed in: its
    ``timestamp.txt`` (the LMS's time), else ``<lab>.ipynb``'s modification time, in UTC;
    ``None`` when the folder holds no such notebook."""
    notebook = Path(folder) / f"{lab}.ipynb"
    if not notebook.is_file():
        return None
    try:
        stamp = parse_utc((notebook.parent / "timestamp.txt").read_text().strip())
        return stamp.replace(tzinfo=timezone.utc)
    except (OSError, ValueError, OverflowError):
        return datetime.fromtimestamp(notebook.stat().st_mtime, timezone.utc)


def _keep(
    root: Path, report: CollectReport, best: _Entry, source: str, body: bytes, when: datetime
) -> None:
    """Keep an older version of ``best``'s lab in the history; report it if it is new there."""
    if path := keep_version(root, best.student, best.lab, body, when=when):
        report.kept.append(Placed(best.student, best.lab, source, path, when))


def _place(root: Path, best: _Entry, body: bytes) -> None:
    folder = root / "submitted" / best.student / best.lab
    tmp = folder.with_name(f".{best.lab}.collect-tmp")  # one a crash left is rewritten
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / f"{best.lab}.ipynb").write_bytes(body)
    # always: nbgrader's autograde reads the time (for late penalties) from this file only
    stamp = best.lms_time or best.mtime
    (tmp / "timestamp.txt").write_text(stamp.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))
    when = stamp.timestamp()
    os.utime(tmp / f"{best.lab}.ipynb", (when, when))
    if folder.exists():  # kept, named by when it was replaced
        keep = root / ".labkit" / "replaced" / best.student / best.lab
        keep.mkdir(parents=True, exist_ok=True)
        os.replace(folder, keep / f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S.%fZ}")
    os.replace(tmp, folder)


def _settle(root: Path, group: list[_Entry], report: CollectReport) -> None:
    """Place the newest of one student's candidates for one lab, unless it is not newer."""
    try:
        if (best := _newest(group, report)) is None:
            return
        body = best.read()
        older = [(c, data) for c in group if c is not best and (data := c.read()) != body]
    except _UNREADABLE as exc:  # a damaged or encrypted zip entry, a vanished file
        report.problems += [Problem(c.where, f"could not be read ({exc!r})") for c in group]
        return
    folder = root / "submitted" / best.student / best.lab
    old = submission_time(folder, best.lab)
    placed = Placed(
        best.student,
        best.lab,
        best.where,
        folder / f"{best.lab}.ipynb",
        best.lms_time,
        best.lms_late,
    )
    for c, data in older:
        _keep(root, report, best, c.where, data, c.lms_time or c.mtime)
    if old is not None and placed.path.read_bytes() == body:
        report.unchanged.append(placed)
    elif old is not None and (best.lms_time or best.mtime) <= old:
        report.skipped.append(
            Problem(best.where, f"older than the submission in place ({old:%Y-%m-%d %H:%M:%S} UTC)")
        )
        _keep(root, report, best, best.where, body, best.lms_time or best.mtime)
    else:
        if old is not None:  # the version in place becomes history
            _keep(root, report, best, str(placed.path), placed.path.read_bytes(), old)
        _place(root, best, body)
        report.placed.append(placed)


def collect_submissions(
    root: str | os.PathLike,
    source: str | os.PathLike,
    *,
    labs: Sequence[str] | None = None,
    max_bytes: int = 2 << 30,
    max_file_bytes: int = 100_000_000,
) -> CollectReport:
    """Copy the submissions of an LMS download into the course's ``submitted/``.

    Args:
        root (str | os.PathLike): the course directory (its gradebook names the students).
        source (str | os.PathLike): a folder or a zip file of submissions (layouts in the module
            docstring).
        labs (Sequence[str] | None): collect only these labs (default: every lab in ``solutions/``).
        max_bytes (int): refuse a zip file that unpacks to more bytes than this.
        max_file_bytes (int): report a larger notebook, not place it (nbgrader's own limit: 100 MB).

    Returns:
        What was placed, found in place, passed over, and what could not be placed and why.

    Raises:
        CourseError: no gradebook, an unknown lab, a source neither folder nor zip, an unsafe zip.
    """
    from nbgrader.api import Gradebook

    root, source = Path(root).resolve(), Path(source)
    known = set(available_labs(root))
    if unknown := sorted(set(labs or []) - known):
        raise CourseError(
            f"unknown lab(s) {unknown}; expected names from {root / 'solutions'}: {sorted(known)}."
        )
    if not (root / "gradebook.db").is_file():
        raise CourseError(
            f"{root} has no gradebook.db; make the course with `labkit course "
            "init` first (or pass --root)."
        )
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        students = {s.id for s in gb.students}
    report = CollectReport()
    with _entries(source, max_bytes) as entries:
        _unwrap(entries, students)
        groups = defaultdict(list)
        for c in _candidates(entries, students, known, set(labs or known), max_file_bytes, report):
            groups[c.student, c.lab].append(c)
        for key in sorted(groups):
            _settle(root, groups[key], report)
    log.info(
        "collected from %s: %d placed, %d unchanged, %d skipped, %d problem(s)",
        source,
        len(report.placed),
        len(report.unchanged),
        len(report.skipped),
        len(report.problems),
    )
    return report
