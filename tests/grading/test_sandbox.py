"""Does the sandbox isolate student code and enforce its limits?

The oracles are the real ``bwrap`` (tests that need it are skipped, saying why, where it does
not work) and the operating system: ``/proc`` for processes, ``os.stat`` for files, sockets
for the network. Every limit is also tested without bwrap, the limits-only fallback.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest
import torch

import labkit
from labkit.grading import sandbox
from labkit.grading.sandbox import NOBODY, Limits, SandboxError, run_sandboxed
from tests.system_packages import require

ROOT = os.geteuid() == 0
HOME = str(Path.home())
SMALL = Limits(memory_mb=512, cpu_seconds=60, processes=64, output_mb=64, wall_seconds=60)


@pytest.fixture
def scratch():
    """A fresh folder the sandbox user can reach (pytest's own tmp_path is mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix="labkit-sandbox-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def host_dir():
    """A fresh folder outside /tmp (which the sandbox replaces with its own) and HOME."""
    path = Path(tempfile.mkdtemp(prefix="labkit-sandbox-host-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=[True, False], ids=["bwrap", "limits-only"])
def use_bwrap(request) -> bool:
    """Each test twice: inside bubblewrap, and with resource limits only."""
    if request.param:
        require("bwrap")
    return request.param


@functools.cache
def _fallback_python() -> str | None:
    # Without bwrap nothing is bound back: a root grader's unprivileged uid needs an
    # interpreter it may enter (this one may live in root's 0700 home).
    for candidate in (sys.executable, "/usr/bin/python3", shutil.which("python3")):
        with tempfile.TemporaryDirectory() as tmp:
            os.chmod(tmp, 0o755)
            try:
                if (
                    candidate
                    and run_sandboxed(
                        [candidate, "-c", "pass"], scratch=tmp, limits=SMALL, bwrap=False
                    ).returncode
                    == 0
                ):
                    return candidate
            except SandboxError:
                continue
    return None


def run_python(code: str, *, use_bwrap: bool, scratch: Path, limits: Limits = SMALL, hide=(), **kw):
    """Run ``python -c code``; inside bwrap the grader's home is hidden, as in grading."""
    python = sys.executable if use_bwrap else _fallback_python()
    if python is None:
        pytest.skip(f"no Python interpreter that uid {NOBODY} may run without bwrap")
    return run_sandboxed(
        [python, "-c", code],
        scratch=scratch,
        limits=limits,
        bwrap=use_bwrap,
        hide=[*hide, HOME] if use_bwrap else hide,
        **kw,
    )


def _tasks_of(uid: int) -> int:
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if f"\nUid:\t{uid}\t" in status:
            count += int(status.split("\nThreads:\t")[1].split()[0])
    return count


def _processes_with(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline and "pytest" not in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


@pytest.mark.parametrize(
    "field, value",
    [
        ("memory_mb", 0),
        ("cpu_seconds", -1),
        ("processes", 2.5),
        ("output_mb", True),
        ("wall_seconds", float("inf")),
        ("memory_mb", "1"),
    ],
)
def test_limits_reject_nonsense(field, value):
    """Is a limit that is not a positive number refused, naming the field and the value?"""
    with pytest.raises(ValueError, match=rf"Limits\.{field} must be a positive .*{value!r}"):
        Limits(**{field: value})
    assert Limits().memory_mb == 4096


CONNECT = """
import json, socket
def reach(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "connected"
    except OSError as exc:
        return exc.errno
server = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(server.getsockname())
server.accept()[0].sendall(b"ping")
print(json.dumps({"host": reach("127.0.0.1", PORT), "public": reach("1.1.1.1", 53),
                  "loopback": client.recv(4).decode()}))
"""


@pytest.mark.needs("bwrap")
def test_no_network_but_loopback(scratch):
    """Can the code reach neither the host's listening port nor the internet, while its own
    loopback connections work?"""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        result = run_python(CONNECT.replace("PORT", str(port)), use_bwrap=True, scratch=scratch)
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()
    seen = json.loads(result.output.splitlines()[-1])
    assert seen["loopback"] == "ping"
    assert seen["host"] == errno.ECONNREFUSED  # nothing listens in the new namespace
    assert seen["public"] == errno.ENETUNREACH


WRITE = """
import os
for path in ("OUTSIDE/x", "SCRATCH/y"):
    try:
        with open(path, "w") as f:
            f.write("written")
        print(path, "ok")
    except OSError as exc:
        print(path, exc.errno)
env = sorted(set(os.environ) - {"PWD"})  # bwrap --chdir sets PWD
print("uid", os.getuid(), "home", os.environ["HOME"], "env", env)
print([l for l in open("/proc/self/status") if l.startswith("NoNewPrivs")][0].split()[1])
"""


def test_writes_outside_scratch_fail(use_bwrap, scratch, host_dir):
    """Is the scratch folder the only place the code can write, as an unprivileged user with
    HOME there and none of the grader's environment? (Inside bwrap scratch is a tmpfs: what
    is written there stays off the host.)"""
    host_dir.chmod(0o777 if use_bwrap else 0o755)  # bwrap: read-only even when world-writable
    code = WRITE.replace("OUTSIDE", str(host_dir)).replace("SCRATCH", str(scratch))
    os.environ["LABKIT_SANDBOX_SECRET"] = "1"
    try:
        result = run_python(
            code, use_bwrap=use_bwrap, scratch=scratch, readable=[host_dir] if use_bwrap else []
        )
    finally:
        del os.environ["LABKIT_SANDBOX_SECRET"]
    lines = result.output.splitlines()
    if use_bwrap or ROOT:  # a plain user's code without bwrap writes wherever the user may
        assert lines[0] == f"{host_dir}/x {errno.EROFS if use_bwrap else errno.EACCES}", result
        assert not (host_dir / "x").exists()
    assert lines[1] == f"{scratch}/y ok"
    in_tmpfs = use_bwrap and sandbox.probe()[1]  # bubblewrap >= 0.7: scratch is a tmpfs
    assert (scratch / "y").exists() != in_tmpfs
    assert lines[2] == (
        f"uid {NOBODY if ROOT else os.getuid()} home {scratch} env ['HOME', 'LANG', 'PATH']"
    )
    assert lines[3] == "1"  # no_new_privs: setuid programs gain nothing
    if ROOT and not in_tmpfs:
        assert (scratch / "y").stat().st_uid == NOBODY


SNOOP = """
import os
print(sorted(os.listdir("COURSE")))
for path in ("COURSE/gradebook.db", "COURSE/.venv/pkg.py", "NOTE", "COURSE/new"):
    try:
        print(repr(open(path).read()) if not path.endswith("new") else open(path, "w"))
    except OSError as exc:
        print(exc.errno)
"""


@pytest.mark.needs("bwrap")
def test_hidden_paths_invisible_readable_visible(scratch, host_dir):
    """Inside a bound tree, are hidden folders empty and read-only, a hidden file unreadable,
    and a path bound back under a hidden folder readable?"""
    course, note = host_dir / "course", host_dir / "note.txt"
    (course / ".venv").mkdir(parents=True)
    (course / "gradebook.db").write_text("hidden tests")
    (course / ".venv" / "pkg.py").write_text("ANSWER = 42")
    note.write_text("instructor note")
    code = SNOOP.replace("COURSE", str(course)).replace("NOTE", str(note))
    result = run_python(
        code,
        use_bwrap=True,
        scratch=scratch,
        hide=[course, note],
        readable=[host_dir, course / ".venv"],
    )
    assert result.output.splitlines() == [
        "['.venv']",
        str(errno.ENOENT),
        "'ANSWER = 42'",
        str(errno.EACCES),
        str(errno.EROFS),
    ], result
    inner = course / "autograde" / "student"  # scratch under the hidden course stays writable
    inner.mkdir(parents=True)
    (inner / "out").touch()  # and a writable file in it reaches the host
    code = f"import os\nopen('out', 'w').write('ok')\nprint(os.listdir({str(course)!r}))"
    result = run_python(
        code, use_bwrap=True, scratch=inner, hide=[course], writable=[inner / "out"]
    )
    assert result.output == "['autograde']\n" and (inner / "out").read_text() == "ok", result


PEEK = """
for path in "$@"; do
    if cat "$path" > /dev/null 2>&1; then echo "read $path"; else echo "none $path"; fi
done
"""


def _kit(folder: Path) -> Path:
    """A lab kit (nbgrader_config.py, a hidden test in solutions/): what a student wants."""
    (folder / "solutions" / "lab01").mkdir(parents=True)
    (folder / "nbgrader_config.py").write_text("c = get_config()\n")
    secret = folder / "solutions" / "lab01" / "lab01.ipynb"
    secret.write_text("### BEGIN HIDDEN TESTS\nassert add(2, 2) == 4\n")
    return secret


@pytest.mark.needs("bwrap")
def test_only_the_allow_list_is_there(scratch, host_dir):
    """Does the code see no kit: not a copy of it in an unrelated folder, not another checkout
    (which the old sandbox, the whole file system read-only less a deny-list, showed), not the
    checkout around an editable install, not the grader's home, while the system, /etc's
    chosen files and what is bound readable are there, and a program outside is refused?"""
    package = Path(labkit.__file__).resolve().parent
    copy, other = _kit(host_dir / "kit-copy"), _kit(host_dir / "other-checkout")
    for path in [host_dir, *host_dir.rglob("*")]:  # the host's permissions let anyone read
        path.chmod(0o755 if path.is_dir() else 0o644)
    home = sorted(str(p) for p in Path.home().iterdir() if p.is_file())[:1]
    repo = [
        str(package.parent / n)
        for n in ("pyproject.toml", "solutions/lab01/lab01.ipynb")
        if (package.parent / n).is_file()
    ]
    allowed = ["/etc/passwd", "/usr/bin/env", str(package / "__init__.py")]
    paths = [str(copy), str(other), *repo, *home, "/etc/shadow", "/etc/hostname", *allowed]
    old = [
        "bwrap",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        str(Path.home()),
        *(["--tmpfs", str(package.parent)] if repo else []),
        "sh",
        "-c",
        PEEK,
        "sh",
        *paths,
    ]
    before = subprocess.run(old, capture_output=True, text=True, check=True).stdout.split("\n")
    assert [f"read {copy}", f"read {other}"] == before[:2]  # the attack that worked
    # as the grader itself, whom no file mode stops: only the allow-list can
    result = run_sandboxed(
        ["sh", "-c", PEEK, "sh", *paths],
        scratch=scratch,
        limits=SMALL,
        hide=[HOME],
        readable=[package],
        uid=None,
    )
    assert result.output.splitlines() == [
        *(f"none {p}" for p in paths[:-3]),
        *(f"read {p}" for p in allowed),
    ], result
    program = host_dir / "true"
    shutil.copy(shutil.which("true"), program)
    with pytest.raises(SandboxError, match=f"{program} is not in the sandbox"):
        run_sandboxed([str(program)], scratch=scratch, limits=SMALL, bwrap=True)


FILL = """
import errno
for where in FOLDERS:
    total = 0
    try:
        for i in range(8):
            with open(f"{where}/fill{i}", "wb") as f:
                f.write(b"x" * 4 * 2**20)
            total += 4
        print(where, "wrote", total)
    except OSError as exc:
        print(where, "stopped", total, errno.errorcode[exc.errno])
with open("results", "ab") as f:
    f.write(b"y" * 2**20)
print("results written")
"""


def test_scratch_is_capped_in_total(use_bwrap, scratch):
    """Does writing 32 MB in 4 MB files to scratch, /tmp and /dev/shm stop at the 10 MB cap
    with ENOSPC inside bwrap, nothing of it on the host, while the results file is still
    written? With limits only (and in the old sandbox, which bound scratch writable) each
    file is capped, not the total: all 32 MB land on the host's disk."""
    if use_bwrap and not sandbox.probe()[1]:
        pytest.skip("this bubblewrap takes no --size (it needs 0.7): its tmpfs have no cap")
    (scratch / "results").touch()
    folders = [str(scratch), *(["/tmp", "/dev/shm"] if use_bwrap else [])]
    result = run_python(
        FILL.replace("FOLDERS", repr(folders)),
        use_bwrap=use_bwrap,
        scratch=scratch,
        limits=Limits(output_mb=10, wall_seconds=60),
        writable=[scratch / "results"],
    )
    lines = result.output.splitlines()
    assert lines[-1] == "results written", result
    assert (scratch / "results").stat().st_size == 2**20
    if use_bwrap:
        assert lines[:-1] == [f"{f} stopped 8 ENOSPC" for f in folders]
        assert sorted(p.name for p in scratch.iterdir()) == ["results"]
    else:
        assert lines[:-1] == [f"{scratch} wrote 32"]
        assert sum(p.stat().st_size for p in scratch.glob("fill*")) == 32 * 2**20


def test_memory_bomb_is_stopped(use_bwrap, scratch):
    """Is a process tree that keeps allocating killed once it holds more than memory_mb?"""
    limits = Limits(memory_mb=200, wall_seconds=60)
    code = "import os\nos.fork()\nblocks = []\nwhile True:\n    blocks.append(b'x' * 10**7)"
    result = run_python(code, use_bwrap=use_bwrap, scratch=scratch, limits=limits)
    assert result.memory_exceeded and not result.timed_out, result
    assert result.reason == "memory limit of 200 MB exceeded"
    assert result.returncode == -signal.SIGKILL and result.peak_memory_mb > 200
    assert result.seconds < 30 and result.sandboxed == use_bwrap


@pytest.mark.needs("bwrap")
def test_files_in_the_sandboxs_tmpfs_count_as_memory(scratch):
    """A process of a few MB that writes 150 MB into /tmp holds 150 MB of memory no PSS shows
    (tmpfs pages): under a 100 MB cap it is killed for memory, not left to run out its time
    (as it was when the watchdog counted processes only: 15 MB, killed at the wall clock)."""
    if not sandbox.probe()[1]:
        pytest.skip("this bubblewrap takes no --size (it needs 0.7)")
    code = (
        "import time\nchunk = b'x' * 2**20\nwith open('/tmp/hoard', 'wb') as f:\n"
        "    for _ in range(150):\n        f.write(chunk)\n"
        "print('written', flush=True)\ntime.sleep(60)"
    )
    result = run_python(
        code,
        use_bwrap=True,
        scratch=scratch,
        limits=Limits(memory_mb=100, output_mb=256, wall_seconds=30),
    )
    assert result.memory_exceeded and not result.timed_out, result
    assert result.reason == "memory limit of 100 MB exceeded" and result.peak_memory_mb > 100


BOMB = """
import os, time
refused = False
while True:
    try:
        os.fork()
    except OSError:
        if not refused:
            print("fork refused", flush=True)
        refused = True
        time.sleep(0.01)
"""


def test_fork_bomb_is_capped(use_bwrap, scratch):
    """Does a fork bomb run into the process cap and the wall clock while the host can still
    start processes, and leave nothing behind?"""
    # A uid of its own, one per variant: the cap counts per uid, and pytest-xdist may run the
    # bwrap and limits-only variants at the same time.
    uid, peak, stop = 64321 + use_bwrap, [0], threading.Event()

    def sample():
        while not stop.wait(0.05):
            peak[0] = max(peak[0], _tasks_of(uid))
            subprocess.run(["true"], check=True)  # the host still forks

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = run_python(
            BOMB,
            use_bwrap=use_bwrap,
            scratch=scratch,
            uid=uid,
            limits=Limits(processes=24, wall_seconds=4),
        )
    finally:
        stop.set()
        sampler.join()
    assert result.timed_out and result.reason == "wall-clock limit of 4 s exceeded", result
    assert "fork refused" in result.output
    if ROOT:
        assert 1 < peak[0] <= 24 and _tasks_of(uid) == 0


def test_file_output_is_capped(use_bwrap, scratch):
    """Does writing 50 MB to a host file (a results file) stop at output_mb, as an error for
    Python and SIGXFSZ for dd?"""
    limits = Limits(output_mb=10, wall_seconds=60)
    (scratch / "big.bin").touch()
    (scratch / "big.dd").touch()
    code = "open('big.bin', 'wb').write(b'x' * 50 * 2**20)"
    result = run_python(
        code, use_bwrap=use_bwrap, scratch=scratch, limits=limits, writable=[scratch / "big.bin"]
    )
    assert result.returncode == 1 and "File too large" in result.output, result
    assert (scratch / "big.bin").stat().st_size == 10 * 2**20
    dd = run_sandboxed(
        ["dd", "if=/dev/zero", "of=big.dd", "bs=1M", "count=50"],
        scratch=scratch,
        limits=limits,
        bwrap=use_bwrap,
        writable=[scratch / "big.dd"],
    )
    assert dd.returncode == -signal.SIGXFSZ and dd.reason == "file size limit of 10 MB exceeded"
    assert (scratch / "big.dd").stat().st_size == 10 * 2**20


@pytest.mark.parametrize(
    "limits, reason, signum",
    [
        (Limits(wall_seconds=2), "wall-clock limit of 2 s exceeded", signal.SIGKILL),
        (Limits(cpu_seconds=1, wall_seconds=60), "CPU time limit of 1 s exceeded", signal.SIGXCPU),
    ],
)
def test_infinite_loop_is_stopped(use_bwrap, scratch, limits, reason, signum):
    """Is an endless loop stopped by the wall clock, and by the CPU-time limit?"""
    result = run_python(
        "while True:\n    pass", use_bwrap=use_bwrap, scratch=scratch, limits=limits
    )
    assert result.timed_out and result.reason == reason, result
    assert result.returncode == -signum and 1 <= result.seconds < 30


@pytest.mark.parametrize("loop", [True, False], ids=["killed", "exits"])
def test_nothing_is_left_running(use_bwrap, scratch, loop):
    """Once the run is over, killed or not, are its children and a daemon it set loose gone
    from /proc?"""
    marker = f"{3600 + os.getpid() % 1000}.{time.monotonic_ns() % 10**6:06d}"
    code = f"""
import os, subprocess
subprocess.Popen(["sleep", "{marker}"])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "{marker}"])
    os._exit(0)
os.wait()
print("spawned", flush=True)
while {loop}:
    pass
"""
    result = run_python(code, use_bwrap=use_bwrap, scratch=scratch, limits=Limits(wall_seconds=3))
    assert "spawned" in result.output and result.timed_out == loop, result
    assert _processes_with(f"sleep {marker}") == []


def test_killing_the_grader_ends_the_run(use_bwrap, scratch):
    """When the grading process itself is killed (SIGKILL), does the student's code die with
    it instead of running on unwatched?"""
    marker = f"{4600 + os.getpid() % 1000}.{time.monotonic_ns() % 10**6:06d}"
    grader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "from labkit.grading.sandbox import Limits, run_sandboxed\n"
                f"run_sandboxed(['sleep', '{marker}'], scratch={str(scratch)!r}, "
                f"limits=Limits(wall_seconds=600), bwrap={use_bwrap})"
            ),
        ]
    )
    deadline = time.monotonic() + 60
    while not _processes_with(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(f"sleep {marker}"), "the sandboxed command never started"
    grader.kill()
    grader.wait()
    deadline = time.monotonic() + 30  # a loaded machine may take a while; gone is what counts
    while _processes_with(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(f"sleep {marker}") == []


def test_import_torch_with_default_limits(use_bwrap, scratch):
    """Does ``import torch`` (a CUDA build maps gigabytes of address space) work under the
    default limits?"""
    try:
        result = run_sandboxed(
            [sys.executable, "-c", "import torch; print(torch.__version__)"],
            scratch=scratch,
            hide=[HOME] if use_bwrap else [],
            limits=Limits(),
            bwrap=use_bwrap,
        )
    except SandboxError as exc:
        pytest.skip(f"this interpreter is out of the sandbox user's reach: {exc}")
    assert result.returncode == 0, result
    assert result.output.split()[-1] == torch.__version__


@pytest.mark.skipif(not ROOT, reason="only a root grader drops to another uid")
def test_unreachable_program_is_refused(scratch):
    """Does a root grader refuse, naming the folder, a program its uid may not enter?"""
    locked = scratch.parent / f"{scratch.name}-locked"
    locked.mkdir(mode=0o700)
    try:
        os.symlink(shutil.which("sh"), locked / "sh")
        with pytest.raises(SandboxError, match=f"cannot reach .*{locked} .*bars the way"):
            run_sandboxed(
                [str(locked / "sh"), "-c", "true"], scratch=scratch, limits=SMALL, bwrap=False
            )
    finally:
        shutil.rmtree(locked)


@pytest.mark.skipif(not ROOT, reason="only a root grader drops to another uid")
def test_uid_none_runs_as_the_grader_with_the_limits(scratch):
    """With ``uid=None``, does a root grader run, as itself and under the limits, a program
    out of the unprivileged uid's reach (autograde's fallback for a Python under /root)?"""
    locked = scratch.parent / f"{scratch.name}-locked"
    locked.mkdir(mode=0o700)
    try:
        os.symlink(shutil.which("sh"), locked / "sh")
        result = run_sandboxed(
            [str(locked / "sh"), "-c", "id -u; ulimit -t"],
            scratch=scratch,
            limits=SMALL,
            bwrap=False,
            uid=None,
        )
    finally:
        shutil.rmtree(locked)
    assert result.returncode == 0, result
    assert result.output.split() == [str(os.geteuid()), str(SMALL.cpu_seconds)]


def test_fallback_warns_once(scratch, monkeypatch, caplog):
    """Without bwrap, is there one loud warning per process, and do results say so?"""
    monkeypatch.setattr(sandbox, "_WARNED", [])
    with caplog.at_level(logging.WARNING, logger="labkit.grading.sandbox"):
        results = [
            run_sandboxed(["true"], scratch=scratch, limits=SMALL, bwrap=False) for _ in range(2)
        ]
    assert [r.sandboxed for r in results] == [False, False]
    assert [r.reason for r in results] == [None, None]
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "WITHOUT A SANDBOX" in warnings[0]


@pytest.mark.slow
@pytest.mark.needs("bwrap")
def test_notebook_runs_in_the_sandbox(scratch, host_dir):
    """Does ``jupyter nbconvert --execute`` run a notebook inside (kernel and client both,
    over loopback) as the sandbox user, blind to a course, writing its one output file?"""
    (host_dir / "gradebook.db").write_text("hidden tests")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell(
            f"import os, torch\nprint(os.getuid(), os.path.exists({str(host_dir)!r}), "
            "torch.ones(3).sum().item())"
        )
    ]
    nbformat.write(nb, scratch / "lab.ipynb")
    (scratch / "done.ipynb").touch()
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    result = run_sandboxed(
        [
            sys.executable,
            "-m",
            "jupyter",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--output",
            "done.ipynb",
            "lab.ipynb",
        ],
        scratch=scratch,
        hide=[HOME, host_dir],
        env=env,
        limits=Limits(),
        readable=[scratch / "lab.ipynb"],
        writable=[scratch / "done.ipynb"],
    )
    assert result.returncode == 0 and result.sandboxed, result
    done = nbformat.read(scratch / "done.ipynb", as_version=4)
    assert done.cells[0].outputs[0].text == f"{NOBODY if ROOT else os.getuid()} False 3.0\n"


def test_the_hosts_disk_is_not_counted_before_the_sandbox_is_mounted():
    """While bwrap's child still sees the host's file systems (before its mounts), is nothing
    counted as the sandbox's tmpfs, though statvfs of the host's /tmp shows its disk in use
    (what once failed a judge at start-up with a memory limit "exceeded")?"""
    from labkit.grading.sandbox import _tmpfs_held

    st = os.statvfs("/tmp")
    assert (st.f_blocks - st.f_bfree) * st.f_frsize > 0  # what a naive count would take
    parent = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(f"/proc/{parent.pid}/task/{parent.pid}/children") as f:
                if f.read().split():
                    break
            time.sleep(0.02)
        assert _tmpfs_held(parent.pid, ["/tmp", "/dev/shm"]) == 0
    finally:
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)  # the sleep, then sh
        parent.kill()
        parent.wait()
