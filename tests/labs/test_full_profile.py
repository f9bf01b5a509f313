"""Does every lab's solution notebook run top to bottom on the full profile?

The full profile is what students run on the GPU server: VOC or ADE20K from ``$LABKIT_DATA``,
the full presets' models (ResNet backbones from ImageNet weights in ``$TORCH_HOME``), batch
sizes and validation batches of one image. Here it runs on the CPU against tiny trees in the
real layouts (tests/data_trees.py), random weights saved under torchvision's file names, and
``LABKIT_BUDGET=smoke``, which shrinks the budget only (one epoch of one batch, a few
validation images, 64-pixel crops). The notebook is executed as a student would run it
(nbclient, no nbgrader; the kernel forked from a warm process, see tests/warm_kernels.py), so
``NBGRADER_EXECUTION`` must stay unset: it would force ``quick``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
import torch
import torchvision
from nbclient import NotebookClient

from labkit.config import load_preset
from labkit.lessons import LESSONS, measured
from labkit.models import pretrained_weights_path
from tests.data_trees import write_ade, write_voc
from tests.labs.conftest import KERNEL_ENV, REPO
from tests.warm_kernels import WarmKernelManager

pytestmark = pytest.mark.slow  # each case runs a whole notebook: 10-120 s

LABS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.name.startswith("lab"))
QUICK, FULL = 'PROFILE = "quick"', 'PROFILE = "full"'


@pytest.fixture(scope="session")  # not module: its cases spread over both workers
def full_env(tmp_path_factory) -> dict[str, str]:
    """The kernel environment: data trees, a hub cache of random weights, the smoke budget."""
    root = tmp_path_factory.mktemp("full")
    data = root / "data"
    write_voc(data)
    write_ade(data)
    env = {
        **os.environ,
        **KERNEL_ENV,
        "LABKIT_DATA": str(data),
        "TORCH_HOME": str(root / "torch"),
        "LABKIT_BUDGET": "smoke",
    }
    env.pop("NBGRADER_EXECUTION", None)
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = env["TORCH_HOME"]  # pretrained_weights_path reads it
    try:
        for arch in ("resnet18", "resnet50", "resnet101"):
            path = pretrained_weights_path(arch)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(getattr(torchvision.models, arch)().state_dict(), path)
    finally:
        if old is None:
            os.environ.pop("TORCH_HOME")
        else:
            os.environ["TORCH_HOME"] = old
    return env


def _full(lab: str, folder: Path) -> Path:
    """A copy of the lab's solution folder whose notebook says PROFILE = "full"."""
    shutil.copytree(
        REPO / "solutions" / lab,
        folder,
        ignore=shutil.ignore_patterns("runs", "__pycache__", ".ipynb_checkpoints"),
    )
    path = folder / f"{lab}.ipynb"
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and QUICK in c.source]
    assert len(cells) == 1, f"{lab}: expected one config cell holding {QUICK!r}"
    cells[0].source = cells[0].source.replace(QUICK, FULL)
    nbformat.write(nb, path)
    return path


def _shown(nb: nbformat.NotebookNode) -> str:
    """Everything the notebook's code cells displayed, as text."""
    return "\n".join(
        str(o.get("text", "")) + "".join(map(str, o.get("data", {}).values()))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )


# Lab 08 once more without weights: its ResNet-50 runs must fall back to scratch, saying so.
CASES = [(lab, True) for lab in LABS] + [("lab08_deformable_conv", False)]
FALLBACK = "no ImageNet weights for ResNet-50"


class _Enough(Exception):
    """Raised by the hook of :func:`_stop_after_fallback` to end a run that showed enough."""


def _checkpoints(folder: Path) -> list[Path]:
    return sorted((folder / "runs").glob("*_full/*/last.pt"))


def _stop_after_fallback(folder: Path):
    """nbclient's ``on_cell_executed`` hook for the run without weights: stop after the first
    cell that ran cleanly once the notebook has said it trains from scratch and a full run
    has left a checkpoint. The cells after it repeat what the run with weights checks."""
    said = []

    def hook(cell, execute_reply, **_) -> None:
        said.append(FALLBACK in _shown(nbformat.NotebookNode(cells=[cell])))
        if execute_reply["content"]["status"] == "ok" and any(said) and _checkpoints(folder):
            raise _Enough

    return hook


@pytest.mark.parametrize(
    ("lab", "weights"), CASES, ids=[f"{lab}-{'weights' if w else 'no-weights'}" for lab, w in CASES]
)
def test_solution_runs_on_the_full_profile(lab, weights, full_env, tmp_path):
    """Does the solution notebook run every cell with PROFILE = "full" on VOC/ADE20K trees and
    the smoke budget, use the ImageNet weights in $TORCH_HOME (or, without them, say it trains
    from scratch: that run stops once it has) and keep a checkpoint of its runs?"""
    path = _full(lab, tmp_path / lab)
    env = full_env if weights else {**full_env, "TORCH_HOME": str(tmp_path / "empty")}
    nb = nbformat.read(path, as_version=4)
    hook = None if weights else _stop_after_fallback(path.parent)
    # killed once done, as nbgrader_config.py has it: a graceful exit only tears torch down
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        on_cell_executed=hook,
        shutdown_kernel="immediate",
        kernel_manager_class=WarmKernelManager,
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute(env=env)
    except _Enough:
        pass
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert not errors, errors
    # The config cell really ran the full profile: it trained and checkpointed on VOC/ADE20K.
    checkpoints = _checkpoints(path.parent)
    assert checkpoints, f"{lab}: no run of a *_full preset left a checkpoint"
    assert (FALLBACK in _shown(nb)) is not weights


CPU = 'PROFILE = "cpu"'
CPU_LABS = sorted({lesson.lab for lesson in LESSONS})


@pytest.mark.parametrize("lab", CPU_LABS)
def test_solution_runs_on_the_cpu_profile(lab, tmp_path):
    """Does every lab with a measured lesson run top to bottom with PROFILE = "cpu" (the
    lesson's own preset, its Shapes set drawn on first use; the smoke budget shrinks only
    the training), train that preset's model and show the measured lesson's table?"""
    path = _full(lab, tmp_path / lab)
    nb = nbformat.read(path, as_version=4)
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and FULL in c.source]
    cell.source = cell.source.replace(FULL, CPU)
    # lab 06 pretrains its encoder on first use (the smoke budget's tiny one): into a hub
    # cache of the test's own
    env = {**os.environ, **KERNEL_ENV, "LABKIT_BUDGET": "smoke", "TORCH_HOME": str(tmp_path)}
    for name in ("NBGRADER_EXECUTION", "LABKIT_DATA"):
        env.pop(name, None)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        shutdown_kernel="immediate",
        kernel_manager_class=WarmKernelManager,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env=env)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    shown = _shown(nb)
    preset = load_preset(next(x.cpu_preset for x in LESSONS if x.lab == lab))
    assert preset.description in shown or f"**{preset.name}**" in shown  # the config cell's
    for m in measured(lab):
        assert m.lesson.effect in shown
