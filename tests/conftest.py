"""Shared fixtures and the suite's scheduling: seeds, GPU skips, worker groups, durations.

Scheduling (``make test`` runs ``--dist loadgroup --no-loadscope-reorder``):

- every test that uses a module-scoped fixture is put in its module's ``xdist_group``, so
  that the fixture (a graded class, a released lab) is built on one worker only, once;
- work units (a group, or a lone test) are handed out longest first, by the seconds the last
  measured run took (``tests/durations.json``, written by ``benchmarks/test_durations.py``),
  so that the two workers finish together instead of one waiting on a long test started
  last. A test the file does not know goes last, in collection order.

``make test-fast`` runs ``-m "not slow"``: besides the tests marked ``slow`` by hand, a
test (or a module-fixture group) that took :data:`FAST_LIMIT` seconds or more in the measured
run is marked ``slow`` here. What the file does not know yet runs in both.

``--durations-json=FILE`` writes each test's seconds (setup, call and teardown together), when
and on which worker it ran, and the run's wall time, for ``benchmarks/test_durations.py``.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from tests.system_packages import require

# The suite runs in two pytest-xdist workers on two cores; more torch threads per worker
# only oversubscribe the machine (small ops became up to 100x slower when they did).
torch.set_num_threads(1)

DURATIONS = Path(__file__).with_name("durations.json")
#: Seconds from which a measured test (or group) is left to ``make test`` by ``make test-fast``.
FAST_LIMIT = 1.0


def pytest_addoption(parser):
    parser.addoption(
        "--durations-json",
        metavar="FILE",
        default=None,
        help="write every test's seconds and the wall time here (JSON)",
    )


@pytest.fixture(autouse=True)
def _seed():
    """Seed torch for every test so random inputs are the same run to run."""
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _nbgrader_env():
    """Put back nbgrader's ``NBGRADER_*`` variables after each test: nbgrader run in-process
    sets them without a ``finally``, and a leftover ``NBGRADER_EXECUTION`` makes every later
    ``lab_config`` in that worker quick."""
    before = {k: v for k, v in os.environ.items() if k.startswith("NBGRADER_")}
    yield
    for key in [k for k in os.environ if k.startswith("NBGRADER_")]:
        if key not in before:
            del os.environ[key]
    os.environ.update(before)


def _module_scoped(item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(
        d.scope == "module" for defs in info.name2fixturedefs.values() for d in defs
    )


def _known_seconds() -> dict[str, float]:
    try:
        return json.loads(DURATIONS.read_text(encoding="utf-8"))["tests"]
    except (OSError, ValueError, KeyError):
        return {}


@pytest.hookimpl(tryfirst=True)  # before xdist's hook reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    """Skip GPU tests without CUDA; group tests sharing a module fixture; longest first."""
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device; this machine has none")
        for item in items:
            # The marker, not the keywords: a parameter id "gpu" is a keyword too.
            if item.get_closest_marker("gpu") is not None:
                item.add_marker(skip)
    units: dict[str, float] = defaultdict(float)
    unit_of = {}
    known = _known_seconds()
    for item in items:
        unit = item.nodeid
        if _module_scoped(item) and item.get_closest_marker("xdist_group") is None:
            unit = item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group(unit.replace("/", ".")))
        unit_of[item.nodeid] = unit
        units[unit] += known.get(item.nodeid, 0.0)
    for item in items:
        if units[unit_of[item.nodeid]] >= FAST_LIMIT:
            item.add_marker(pytest.mark.slow)
    # sorted() is stable: tests of one unit stay together and in collection order.
    items.sort(key=lambda item: -units[unit_of[item.nodeid]])
    if getattr(config.option, "loadgroup", False):  # set in xdist's workers by --dist loadgroup
        for item in items:
            _suffix_group(item)


def _suffix_group(item) -> None:
    """Append ``@<group>`` to a grouped test's node id, which is how xdist's loadgroup sends a
    group to one worker. xdist 3.8 writes it to ``item._nodeid``, which pytest 9 no longer
    reads (the id lives in ``item._id``), so its own suffix is lost and every group spreads
    over both workers; this writes it where pytest 9 reads it."""
    from _pytest.nodeid import coerce_node_id

    marks = [m for m in item.iter_markers("xdist_group")]
    if not marks or not hasattr(item, "_id") or _grouped(item.nodeid):
        return
    names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in marks})
    item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(names)}")


def _grouped(nodeid: str) -> bool:
    # xdist's own rule for a group suffix: an "@" after the last "]".
    return nodeid.rfind("@") > nodeid.rfind("]")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Check ``needs("bwrap")``-style marks before any fixture (some take minutes) is set up."""
    for mark in item.iter_markers("needs"):
        for package in mark.args:
            require(package)


class _Durations:
    """Seconds per test (setup + call + teardown), gathered where reports arrive (the
    controller, under xdist), written at the end of the session."""

    def __init__(self, path: str) -> None:
        self.path, self.start, self.seconds = Path(path), time.time(), defaultdict(float)
        self.spans: dict[str, list] = {}  # test -> [worker, first start, last stop]

    def pytest_runtest_logreport(self, report):
        # loadgroup appends "@<group>" to the node id of grouped tests.
        nodeid = report.nodeid
        nodeid = nodeid[: nodeid.rfind("@")] if _grouped(nodeid) else nodeid
        self.seconds[nodeid] += report.duration
        node = getattr(report, "node", None)  # xdist's worker; absent without it
        worker = getattr(getattr(node, "gateway", None), "id", "main")
        span = self.spans.setdefault(nodeid, [worker, report.start, report.stop])
        span[1], span[2] = min(span[1], report.start), max(span[2], report.stop)

    def pytest_sessionfinish(self, session, exitstatus):
        if hasattr(session.config, "workerinput"):
            return  # the controller writes the file
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(
            json.dumps(
                {
                    "wall_seconds": round(time.time() - self.start, 1),
                    "exit_status": int(exitstatus),
                    "workers": session.config.getoption("numprocesses", None) or 0,
                    "tests": {k: round(v, 3) for k, v in sorted(self.seconds.items())},
                    # when each test ran, on which worker: where a worker sat idle
                    "spans": {
                        k: [w, round(a - self.start, 2), round(b - self.start, 2)]
                        for k, (w, a, b) in sorted(self.spans.items())
                    },
                },
                indent=1,
            )
            + "\n"
        )


def pytest_configure(config):
    path = config.getoption("--durations-json")
    # xdist's workers have `workerinput`; not the environment variable, which a pytest
    # started by a test inside a worker inherits
    if path and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Durations(path), "labkit-durations")
