"""tests/warm_kernels.py: a forked kernel is warm, and otherwise the kernel jupyter_client starts."""

import asyncio
import json
import os
import time

import nbformat
import pytest
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

from tests.warm_kernels import WarmKernelManager, WarmProvisioner

pytestmark = pytest.mark.slow  # a kernel server, two warm kernels and a started one

PROBE = """\
import json, os, random, signal, subprocess, sys
import numpy as np
print(json.dumps({
    "pid": os.getpid(), "sid": os.getsid(0), "cwd": os.getcwd(), "path": sys.path,
    "name": __name__, "argv0": sys.argv[0], "argv": len(sys.argv), "env": dict(os.environ),
    "signals": {s.name: str(getattr(signal.getsignal(s), "__qualname__", signal.getsignal(s)))
                for s in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE)},
    "umask": os.umask(0o022), "executable": sys.executable,
    "warm": "torch" in sys.modules,
    "labkit": sorted(m for m in sys.modules if m.split(".")[0] == "labkit"),
    "random": random.random(), "numpy": float(np.random.random()),
    "child": subprocess.run(["true"]).returncode,
}))
"""
SLEEP, AFTER = "import time; time.sleep(60)", "print('after')"


def _run(folder, manager, *more: str) -> tuple[dict, nbformat.NotebookNode]:
    """The probe, then the cells ``more``, run by ``manager``'s kernel started in ``folder``;
    a cell past 5 s is interrupted. Returns the probe's answer and the notebook run."""
    folder.mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in (PROBE, *more)])
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    client = NotebookClient(
        nb,
        timeout=5,
        interrupt_on_timeout=True,
        allow_errors=True,
        kernel_name="python3",
        shutdown_kernel="immediate",
        kernel_manager_class=manager,
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute(env={**env, "WARM_MARK": "m"})
    return json.loads(nb.cells[0].outputs[0]["text"]), nb


def test_a_forked_kernel_is_warm_and_otherwise_a_started_one(tmp_path):
    """Beside a kernel jupyter_client starts itself (the oracle), in the same folder: has the
    forked kernel torch imported before its first cell (and no labkit module), and the
    started kernel's sys.path, ``__main__``, argv, environment (the launch's, nothing of the
    server's or the test process's beyond it), signal handlers, umask and session of its
    own? Do two forked kernels draw different random numbers, wait for their own children,
    stop a cell on an interrupt and go on, and end at the immediate shutdown?"""
    cold, _ = _run(tmp_path / "cold" / "here", AsyncKernelManager)
    a, run_a = _run(tmp_path / "a" / "here", WarmKernelManager, SLEEP, AFTER)
    b, _ = _run(tmp_path / "b" / "here", WarmKernelManager)
    assert not cold["warm"] and cold["sid"] == cold["pid"]
    for got, folder in ((a, "a"), (b, "b")):
        assert got["warm"] and got["labkit"] == []
        assert got["sid"] == got["pid"] != os.getpid()
        assert got["cwd"] == str(tmp_path / folder / "here")
        same = {
            k: got[k]
            for k in (
                "path",
                "name",
                "argv0",
                "argv",
                "env",
                "signals",
                "umask",
                "executable",
                "child",
            )
        }
        assert same == {k: cold[k] for k in same}
    assert a["random"] != b["random"] and a["numpy"] != b["numpy"] and a["pid"] != b["pid"]
    interrupted, after = run_a.cells[1].outputs, run_a.cells[2].outputs
    assert [o.get("ename") for o in interrupted if o.output_type == "error"] == [
        "KeyboardInterrupt"
    ], interrupted
    assert after[0]["text"] == "after\n"
    deadline = time.monotonic() + 10
    for pid in (a["pid"], b["pid"]):
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, f"kernel {pid} outlived its shutdown"
            time.sleep(0.1)


def test_another_kernel_command_is_refused_by_name():
    """Is a kernel spec that is not this interpreter's ipykernel refused with the command it
    asked for, instead of started some other way?"""
    provisioner = WarmProvisioner(kernel_id="k", kernel_spec=None, parent=None)
    with pytest.raises(ValueError, match=r"asks for \['/usr/bin/R', '--kernel'\]"):
        asyncio.run(provisioner.launch_kernel(["/usr/bin/R", "--kernel"]))
