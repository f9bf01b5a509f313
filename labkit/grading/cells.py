"""Running a notebook's cells in plain Python, as the judge's student process does.

Shared by the judge's runners (:mod:`labkit.grading.judge_runner`,
:mod:`labkit.grading.student_side`); the standard library only, so importing it costs
nothing before the student's code runs.
"""

import importlib
import io
import linecache
import os
import signal
import sys
import traceback

__all__ = ["OUTPUT_CHARS", "Capped", "error_output", "load_modules", "run_cell"]

OUTPUT_CHARS = 20_000  # per cell; the rest is cut and counted


class Capped(io.TextIOBase):
    """A text stream that keeps the first ``limit`` characters written to it."""

    def __init__(self, limit: int = OUTPUT_CHARS):
        self.parts, self.kept, self.cut, self.limit = [], 0, 0, limit

    def writable(self) -> bool:
        return True

    def write(self, text) -> int:
        text = str(text)
        room = max(self.limit - self.kept, 0)
        self.parts.append(text[:room])
        self.kept, self.cut = self.kept + min(len(text), room), self.cut + max(len(text) - room, 0)
        return len(text)

    def text(self) -> str:
        more = f"\n[... {self.cut} more characters of output cut]" if self.cut else ""
        return "".join(self.parts) + more


def error_output(exc: BaseException, *, full: bool = True) -> dict:
    """An exception as nbformat's error output; ``full=False`` keeps only its last line."""
    lines = [f"{type(exc).__name__}: {exc}"]
    if full:  # frames of the cells only: the runner's own are of no use to a student
        tb = traceback.extract_tb(exc.__traceback__)
        cells = traceback.StackSummary.from_list([f for f in tb if f.filename.startswith("<cell")])
        lines = [
            "Traceback (most recent call last):\n",
            *cells.format(),
            *traceback.format_exception_only(type(exc), exc),
        ]
    return {"ename": type(exc).__name__, "evalue": str(exc), "traceback": lines}


def _alarm(signum, frame):
    raise TimeoutError("the cell ran past its time limit")


def run_cell(
    source: str, index: int, namespace: dict, cell_timeout: float
) -> tuple[str, BaseException | None]:
    """Run one cell with its output captured; returns (output, error or None)."""
    out = Capped()
    old = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = out
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, cell_timeout)
    error = None
    name = f"<cell {index}>"
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)  # tracebacks
    try:
        exec(compile(source, name, "exec"), namespace)  # noqa: S102 - the point
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt too
        error = exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.stdout, sys.stderr = old
    return out.text(), error


def load_modules(names: list[str]) -> None:
    """Import ``names`` before any student code runs (plots to Agg); a module that does not
    import is skipped: a test that needs it fails and says so."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - see above
            pass
