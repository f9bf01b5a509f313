"""Does labkit work installed from its wheel, away from this checkout, for root and a student?

A course server's shared environment gets labkit as a built wheel, not as this editable
checkout. The module builds the wheel once and installs it into an environment of its own
(:func:`wheel_env`) that reuses the dependencies already installed next to the running
interpreter (a ``.pth`` line; nothing is downloaded, no second torch), then drives that
environment only through its own commands (``python``, ``jupyter``, ``labkit``) from folders
outside the checkout, with a clean process environment.

The lab notebook runs once, as the most constrained user the machine has: an unprivileged
student with the install and ``$LABKIT_DATA`` read-only where it can make one (that needs root
and an interpreter every user can reach), else the user running the tests. The notebooks train
under ``LABKIT_BUDGET=smoke`` (one batch): the install is under test, not the training.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

import nbformat
import pytest

from labkit.grading.bwrap import bwrap_available
from labkit.grading.course import lab_scores
from labkit.grading.submissions import fill_solutions

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
LAB = "lab01_baseline_fcn"
STUDENT = "labkit-student"  # made once by the student tests and reused by later runs
# The notebooks' training shrinks to one batch; every cell still runs (labkit/labs.py).
SMOKE = {"LABKIT_BUDGET": "smoke"}
# A notebook's last cell: which interpreter and which labkit the kernel really ran.
_WHO = (
    "import json, os, sys, labkit\n"
    "print('WHO ' + json.dumps({'labkit': labkit.__file__, 'python': sys.executable, "
    "'uid': os.geteuid()}))"
)


def _run(
    argv: list, *, env: dict, cwd: Path, user: str | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``argv`` with exactly ``env`` (as ``user`` if given); on failure, fail with its output."""
    argv = [str(a) for a in argv]
    if user is not None:  # runuser keeps no environment of ours: env -i sets it whole
        argv = [
            shutil.which("runuser") or "runuser",
            "-u",
            user,
            "--",
            "env",
            "-i",
            *[f"{k}={v}" for k, v in env.items()],
            *argv,
        ]
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(argv[-6:])} exited {proc.returncode}\n"
        f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-6000:]}"
    )
    return proc


def _barred(path: Path) -> str | None:
    """Why users other than root cannot reach ``path`` (a folder on the way lacks o+x), or None."""
    for folder in [*reversed(path.parents), path]:
        mode = folder.stat().st_mode
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return f"{folder} (mode {stat.filemode(mode)}, uid {folder.stat().st_uid}) bars the way"
    return None


def _interpreter() -> tuple[Path, str | None]:
    """The interpreter to build the environment from, and why a student could not run it.

    The running interpreter's base first; else a system Python of the same version and ABI
    (the installed dependencies' compiled parts must load), which students can reach where
    the base lives under a root-only home (a pyenv under /root).
    """
    base = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    if _barred(base) is None:
        return base, None
    soabi = sysconfig.get_config_var("SOABI")
    for name in (
        f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}",
        f"/usr/local/bin/python{sys.version_info.major}.{sys.version_info.minor}",
    ):
        other = Path(os.path.realpath(name))
        if other.is_file() and _barred(other) is None:
            probe = subprocess.run(
                [other, "-c", "import sysconfig; print(sysconfig.get_config_var('SOABI'))"],
                capture_output=True,
                text=True,
            )
            if probe.stdout.strip() == soabi:
                return other, None
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return base, (
        f"no interpreter a student can reach: {_barred(base)}, and no "
        f"/usr/bin/python{version} with ABI {soabi}"
    )


def _readable_by_all(top: Path) -> None:
    """Give everyone read (and, on folders and programs, search/run) access under ``top``."""
    for path in [top, *top.rglob("*")]:
        if not path.is_symlink():
            mode = path.stat().st_mode
            extra = 0o055 if path.is_dir() or mode & stat.S_IXUSR else 0o044
            path.chmod((mode | extra) & ~0o022)


class WheelEnv:
    """labkit's wheel installed in an environment of its own under ``root`` (see the module doc)."""

    def __init__(self, root: Path) -> None:
        self.root, self.env = root, root / "env"
        self.python, self.bin = self.env / "bin" / "python", self.env / "bin"
        src, self.dist = root / "src", root / "dist"
        # Build from a copy: pip builds in place and would leave build/ in the shared checkout.
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, src / name)
        shutil.copytree(
            REPO / "labkit", src / "labkit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
        _run(
            [
                *pip,
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "-w",
                self.dist,
                src,
            ],
            env=dict(os.environ),
            cwd=root,
        )
        self.wheel = next(self.dist.glob("labkit-*.whl"))
        interpreter, self.why_not_student = _interpreter()
        _run([interpreter, "-m", "venv", "--without-pip", self.env], env=dict(os.environ), cwd=root)
        site = Path(
            _run(
                [self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                env={},
                cwd=root,
            ).stdout.strip()
        )
        deps = Path(sysconfig.get_paths()["purelib"])
        # A plain path line: .venv's own .pth files (its editable labkit finder) are not run.
        (site / "_labkit_test_deps.pth").write_text(f"{deps}\n")
        _run(
            [*pip, "--python", self.python, "install", "--no-deps", "--no-index", "-q", self.wheel],
            env=dict(os.environ),
            cwd=root,
        )
        self._link_dependencies_commands(Path(sys.prefix))
        self.site = site
        _readable_by_all(root)  # whatever the umask: a student reads it, only root writes it

    def _link_dependencies_commands(self, prefix: Path) -> None:
        """Give the environment the dependencies' commands and data, as one install would have."""
        for script in (prefix / "bin").iterdir():
            if (
                script.name in ("labkit",)
                or script.name.startswith(("pip", "python"))
                or not script.is_file()
            ):
                continue
            first, _, rest = script.read_bytes().partition(b"\n")
            if first.startswith(b"#!") and first[2:].startswith(str(prefix / "bin").encode()):
                (self.bin / script.name).write_bytes(
                    b"#!" + str(self.python).encode() + b"\n" + rest
                )
                (self.bin / script.name).chmod(0o755)
        share = self.env / "share" / "jupyter"
        share.mkdir(parents=True)
        for item in (prefix / "share" / "jupyter").iterdir():
            if item.name != "kernels":  # the kernel must be this environment's python
                (share / item.name).symlink_to(item)
        _run(
            [self.python, "-m", "ipykernel", "install", "--sys-prefix"],
            env=self.environ(self.root),
            cwd=self.root,
        )

    def environ(self, home: Path, **extra: str) -> dict[str, str]:
        """A clean process environment: this env's bin/ first, nothing of the checkout's."""
        return {
            "PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "MPLBACKEND": "Agg",
            "PYTHONWARNINGS": "ignore",
            **extra,
        }


@pytest.fixture(scope="module")
def wheel_env():
    """The wheel built and installed once for the module, in a folder every user can read."""
    root = Path(tempfile.mkdtemp(prefix="labkit-wheel-"))
    root.chmod(0o755)  # mkdtemp makes it 0700; the student test's user must get in
    try:
        yield WheelEnv(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def outside(tmp_path) -> Path:
    """A working folder outside the checkout, with a HOME of its own."""
    assert not tmp_path.resolve().is_relative_to(REPO)
    (tmp_path / "home").mkdir()
    return tmp_path


def _lab_submission() -> nbformat.NotebookNode:
    """Lab 01 as released, with the solutions typed in: what a student who solved it runs."""
    release = nbformat.read(REPO / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    source = nbformat.read(REPO / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    return fill_solutions(release, source)


def _execute(env: WheelEnv, folder: Path, environ: dict, *, user: str | None = None) -> dict:
    """Run the solved lab 01 with ``jupyter nbconvert --execute`` in ``folder``; the WHO record."""
    nb = _lab_submission()
    nb.cells.append(nbformat.v4.new_code_cell(_WHO))
    nbformat.write(nb, folder / f"{LAB}.ipynb")
    if user is not None:
        shutil.chown(folder / f"{LAB}.ipynb", user)
    _run(
        [
            env.bin / "jupyter",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--ExecutePreprocessor.timeout=600",
            "--output",
            "executed",
            f"{LAB}.ipynb",
        ],
        env=environ,
        cwd=folder,
        user=user,
    )
    out = nbformat.read(folder / "executed.ipynb", as_version=4)
    text = "".join(o.get("text", "") for o in out.cells[-1].get("outputs", []))
    return json.loads(text.split("WHO ", 1)[1])


def test_the_wheel_ships_every_preset_and_no_course_material(wheel_env):
    """Does the wheel hold labkit/presets/*.yaml, each one of the checkout's, and nothing of
    solutions/, labs/ or any notebook (students must not install the solutions)?"""
    names = zipfile.ZipFile(wheel_env.wheel).namelist()
    presets = {n.rsplit("/", 1)[1] for n in names if n.startswith("labkit/presets/")}
    assert presets == {p.name for p in (REPO / "labkit" / "presets").glob("*.yaml")}
    assert len(presets) > 0
    leaked = [
        n
        for n in names
        if n.endswith(".ipynb")
        or n.split("/")[0] in ("solutions", "labs", "tests", "configs")
        or "nbgrader_config" in n
    ]
    assert not leaked, f"the wheel carries course material: {leaked[:5]}"


def test_the_installed_package_loads_every_preset_from_outside(wheel_env, outside):
    """From a folder outside the checkout, is labkit imported from the new environment (not
    the editable checkout), does every preset load, lab_config('baseline') among them, and
    does every lab's measured lesson?"""
    script = (
        "import json, labkit\n"
        "from labkit.config import available_presets, load_preset\n"
        "from labkit.labs import lab_config\n"
        "from labkit.lessons import LESSONS, measured\n"
        "loaded = {n: load_preset(n).name for n in available_presets()}\n"
        "lessons = {x.lab: len(measured(x.lab)) for x in LESSONS}\n"
        "print(json.dumps({'file': labkit.__file__, 'loaded': loaded, 'lessons': lessons,\n"
        "                  'lab': lab_config('baseline', profile='quick').name}))"
    )
    proc = _run(
        [wheel_env.python, "-c", script], env=wheel_env.environ(outside / "home"), cwd=outside
    )
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(got["file"]).is_relative_to(wheel_env.site), got["file"]
    expected = sorted(p.stem for p in (REPO / "labkit" / "presets").glob("*.yaml"))
    assert sorted(got["loaded"]) == expected
    assert all(got["loaded"][n] for n in expected)
    assert got["lab"] == "baseline_quick"
    # the measured lessons the labs display travel in the wheel (labkit/lessons.json)
    from labkit.lessons import LESSONS

    assert got["lessons"] == {x.lab: sum(y.lab == x.lab for y in LESSONS) for x in LESSONS}


def test_labkit_train_runs_a_few_steps_on_the_installed_package(wheel_env, outside):
    """Does the installed `labkit train` (its script on this environment's python) train a
    preset for one tiny epoch and write the run folder with one history row?"""
    script = wheel_env.bin / "labkit"
    assert script.read_text().splitlines()[0] == f"#!{wheel_env.python}"
    _run(
        [
            script,
            "train",
            "--preset",
            "baseline_quick",
            "--runs-dir",
            "runs",
            "--name",
            "tiny",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--crop-size",
            "32",
            "--device",
            "cpu",
            "--cpu-threads",
            "1",
            "--set",
            "shapes.num_train=8",
            "--set",
            "shapes.num_val=4",
            "--set",
            "shapes.size=32",
            "--no-progress",
        ],
        env=wheel_env.environ(outside / "home"),
        cwd=outside,
    )
    run = outside / "runs" / "tiny"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["name"] == "tiny"
    rows = (run / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 2, rows  # the header and epoch 1
    assert (run / "last.pt").is_file() and (run / "best.pt").is_file()


def test_labkit_doctor_passes_the_installed_package(wheel_env, outside):
    """Does the installed `labkit doctor` read the pins from the installed labkit's metadata,
    load every preset from the package and find nothing a quick lab lacks (exit 0)?"""
    proc = _run(
        [wheel_env.bin / "labkit", "doctor", "--json"],
        env=wheel_env.environ(outside / "home"),
        cwd=outside,
    )
    report = json.loads(proc.stdout)
    rows = {c["name"]: c for c in report["checks"]}
    assert report["exit_code"] == 0, [c for c in report["checks"] if c["status"] == "FAIL"]
    for name in ("torch", "torchvision", "nbgrader", "presets"):
        assert rows[name]["status"] == "ok", rows[name]
    count = len(list((REPO / "labkit" / "presets").glob("*.yaml")))
    assert f"all {count} load from {wheel_env.site}" in rows["presets"]["found"], rows["presets"]


def test_the_installed_package_grades_a_submission_with_the_kit_named(wheel_env, outside):
    """Without --kit or $LABKIT_KIT, does `course init` say what to pass; with --kit, does the
    installed labkit make the course and autograde the solved lab 01 to every autograded
    point the source notebook declares?"""
    environ = wheel_env.environ(outside / "home", **SMOKE)  # the judge passes it on
    (outside / "students.csv").write_text("id\nann\n")
    refused = subprocess.run(
        [wheel_env.bin / "labkit", "course", "init", "course", "--students", "students.csv"],
        env=environ,
        cwd=outside,
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0
    assert "--kit" in refused.stderr and "LABKIT_KIT" in refused.stderr, refused.stderr
    assert not (outside / "course" / "gradebook.db").exists()

    _run(
        [
            wheel_env.bin / "labkit",
            "course",
            "init",
            "course",
            "--students",
            "students.csv",
            "--kit",
            REPO,
            "--lab",
            LAB,
        ],
        env=environ,
        cwd=outside,
    )
    folder = outside / "course" / "submitted" / "ann" / LAB
    folder.mkdir(parents=True)
    nbformat.write(_lab_submission(), folder / f"{LAB}.ipynb")
    # Sandboxed where bubblewrap works; elsewhere the limits alone (see README, grading).
    sandbox = [] if bwrap_available() else ["--no-sandbox"]
    _run(
        [wheel_env.bin / "labkit", "course", "autograde", LAB, "--root", "course", *sandbox],
        env=environ,
        cwd=outside,
    )
    source = nbformat.read(REPO / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    points = sum(
        float(c.metadata["nbgrader"].get("points", 0))
        for c in source.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
    )
    score = lab_scores(outside / "course", LAB)["ann"]
    assert points > 0
    assert (score.auto, score.auto_max) == (points, points), score.tests
    # The tests come before the training: the cells after them (training, plots, the
    # results table) ran too, to the last one, without an error.
    graded = nbformat.read(
        outside / "course" / "autograded" / "ann" / LAB / f"{LAB}.ipynb", as_version=4
    )
    code = [c for c in graded.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors[0]
    assert code[-1].outputs, "the notebook's last cell did not run"


# --- a student who is not root ---------------------------------------------------------------


def _student() -> str:
    """The unprivileged user, made on first use (no login shell, no home of its own)."""
    # Two tests need the user and may start together on two workers: one makes it.
    with open(Path(tempfile.gettempdir()) / f"{STUDENT}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        try:
            pwd.getpwnam(STUDENT)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    STUDENT,
                ],
                check=True,
                capture_output=True,
            )
    return STUDENT


def _why_no_student(env: WheelEnv) -> str | None:
    if os.geteuid() != 0:
        return "needs root to make an unprivileged user (useradd) and run as it (runuser)"
    if missing := [c for c in ("useradd", "runuser") if shutil.which(c) is None]:
        return f"{' and '.join(missing)} not found on this machine"
    if env.why_not_student:
        return env.why_not_student
    # The environment borrows the checkout's installed dependencies (a .pth line): a checkout
    # under a root-only home keeps them from the student too.
    deps = Path(sysconfig.get_paths()["purelib"])
    return _barred(env.root) or (
        f"the installed dependencies {deps}: {why}" if (why := _barred(deps)) else None
    )


def _unprivileged_student(env: WheelEnv) -> tuple[str | None, str]:
    """The student user and ``""`` where this machine can run one, else None and why not."""
    if why := _why_no_student(env):
        return None, why
    user = _student()
    probe = subprocess.run(
        [shutil.which("runuser"), "-u", user, "--", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:  # a container without PAM sessions, say
        return None, f"runuser -u {user} does not work here: {probe.stderr.strip()}"
    return user, ""


@contextlib.contextmanager
def _student_folders(user: str):
    """(data, work, home) in a fresh folder every user can search, removed afterwards.

    ``data`` is the course's shared data: root's, read-only to students, and holding another
    set than lab 01's (so the lab's must be drawn somewhere the student can write); ``work``
    and ``home`` are the student's.
    """
    base = Path(tempfile.mkdtemp(prefix="labkit-student-"))
    try:
        base.chmod(0o755)
        data, work, home = base / "data", base / "work", base / "home"
        from labkit.data.shapes import generate_shapes

        generate_shapes(data, num_train=4, num_val=2, size=32, num_classes=3, workers=1)
        _readable_by_all(data)
        for folder in (work, home):
            folder.mkdir()
            shutil.chown(folder, user)
        yield data, work, home
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_lab_notebook_runs_top_to_bottom_on_the_installed_package(wheel_env, outside):
    """Does the solved lab 01 run to its end under the environment's own kernel, importing
    the installed labkit, with its Shapes set drawn beside the notebook?

    Run once, by the most constrained user this machine has: where it can make one, an
    unprivileged student with the installed labkit and $LABKIT_DATA both read-only to them
    (and $LABKIT_DATA, which holds another set, left as it was); else the user running the
    tests, without $LABKIT_DATA.
    """
    user, why_not = _unprivileged_student(wheel_env)
    with contextlib.ExitStack() as stack:
        if user is None:
            work, uid = outside, os.geteuid()
            environ = wheel_env.environ(outside / "home", **SMOKE)
        else:
            data, work, home = stack.enter_context(_student_folders(user))
            uid = pwd.getpwnam(user).pw_uid
            # TMPDIR: what torch and Jupyter leave in the user's temp folder goes with the test.
            environ = wheel_env.environ(home, LABKIT_DATA=str(data), TMPDIR=str(home), **SMOKE)
            for place in (wheel_env.site, wheel_env.site / "labkit", data):  # read-only, truly
                denied = subprocess.run(
                    [shutil.which("runuser"), "-u", user, "--", "test", "-w", place]
                )
                assert denied.returncode != 0, f"{user} can write {place}"
            before = sorted(str(p.relative_to(data)) for p in data.rglob("*"))

        who = _execute(wheel_env, work, environ, user=user)
        assert who["uid"] == uid, (who, why_not)
        assert Path(who["labkit"]).is_relative_to(wheel_env.site), who
        assert Path(who["python"]).parent == wheel_env.bin, who
        drawn = list((work / "runs" / ".data").glob("shapes-*"))
        assert len(drawn) == 1 and drawn[0].stat().st_uid == uid, drawn
        assert (drawn[0] / "VOCdevkit" / "VOC2012" / "shapes.json").is_file()
        if user is not None:
            assert sorted(str(p.relative_to(data)) for p in data.rglob("*")) == before


def test_a_student_who_cannot_write_the_runs_folder_gets_the_set_in_their_cache(wheel_env):
    """As an unprivileged user of the installed labkit, with the runs folder (here the
    read-only $LABKIT_DATA) not writable either, does the Shapes set go to the student's
    cache, with a warning that says why? (The lab notebook test runs lab 01 as this user.)"""
    user, why_not = _unprivileged_student(wheel_env)
    if user is None:
        pytest.skip(f"no unprivileged student here: {why_not}")
    with _student_folders(user) as (data, work, home):
        environ = wheel_env.environ(home, LABKIT_DATA=str(data), TMPDIR=str(home))
        script = (
            "import json\n"
            "from labkit.experiment import resolve_data_root\n"
            "from labkit.labs import lab_config\n"
            "cfg = lab_config('baseline', overrides={'shapes.num_train': 4, "
            "'shapes.num_val': 2, 'shapes.size': 32})\n"
            f"print(resolve_data_root(cfg, runs_root={str(data)!r}))"
        )
        proc = _run([wheel_env.python, "-c", script], env=environ, cwd=work, user=user)
        root = Path(proc.stdout.strip().splitlines()[-1])
        assert root.parent == home / ".cache" / "labkit", proc.stdout
        assert (root / "VOCdevkit" / "VOC2012" / "shapes.json").is_file()
        assert root.stat().st_uid == pwd.getpwnam(user).pw_uid
        assert str(data / ".data") in proc.stderr, proc.stderr  # the warning says why
