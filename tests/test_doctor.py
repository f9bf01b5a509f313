"""Tests for labkit.doctor: each check on a machine that has what it needs and one that does not."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import tomllib
import torch
import torchvision
from packaging.requirements import Requirement

import labkit
import labkit.config
from labkit import doctor
from labkit.cli import main
from labkit.config import available_presets, load_preset
from labkit.data import generate_shapes
from labkit.doctor import FAIL, OK, WARN
from labkit.grading.bwrap import probe
from tests.data.test_ade20k import NAMES as ADE_NAMES
from tests.data.test_ade20k import _write_ade
from tests.data.test_voc import SPLITS as VOC_SPLITS
from tests.data.test_voc import _write_voc

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def configs():
    """Every preset, loaded once for the data and weight checks."""
    return {name: load_preset(name) for name in available_presets()}


def _row(rows, name):
    found = [r for r in rows if r.name == name]
    assert len(found) == 1, f"expected one row {name!r}; got {rows}"
    return found[0]


def test_versions_match_the_pins_in_pyproject():
    """Are torch, torchvision and nbgrader ok against the pins pyproject.toml itself lists?"""
    pins = {
        Requirement(r).name: str(Requirement(r))
        for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    rows = doctor.check_versions()
    for name, module in (("torch", torch), ("torchvision", torchvision)):
        row = _row(rows, name)
        assert row.status == OK and row.fix == ""
        assert pins[name] in row.found and module.__version__ in row.found
    assert pins["nbgrader"] in _row(rows, "nbgrader").found
    assert _row(rows, "other requirements").status == OK
    assert doctor.exit_code(rows) == 0


def test_versions_off_the_pin_or_missing_fail():
    """Is a torch off its pin a FAIL with the pip line, and a missing requirement named?"""
    rows = doctor.check_versions(
        requirements=["torch==1.0.0", "numpy>=99", "labkit-no-such-package>=1"]
    )
    row = _row(rows, "torch")
    assert row.status == FAIL and torch.__version__ in row.found
    assert 'pip install "torch==1.0.0"' in row.fix
    others = _row(rows, "other requirements")
    assert others.status == FAIL and "labkit-no-such-package>=1" in others.found
    assert doctor.exit_code(rows) == 1
    off = doctor.check_versions(requirements=["numpy>=99"])  # present, but out of range
    assert _row(off, "other requirements").status == WARN
    assert "numpy" in _row(off, "other requirements").found


def test_no_cuda_is_a_warning(monkeypatch):
    """Is a machine without CUDA a warn (the quick profile runs on the CPU), not a FAIL?"""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    [row] = doctor.check_cuda()
    assert row.status == WARN and "no CUDA device" in row.found
    assert "CUDA_VISIBLE_DEVICES=" in row.found and "CPU" in row.fix


def test_cuda_rows_compare_free_memory_with_the_threshold(monkeypatch):
    """Is each device a row, warn when its free memory is below the threshold, ok above?"""
    gib = 1 << 30
    memory = {0: (2 * gib, 80 * gib), 1: (60 * gib, 80 * gib)}  # (free, total) per device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: memory[i])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"Fake GPU {i}")
    busy, free = doctor.check_cuda(min_free_gib=5)
    assert (busy.name, busy.status) == ("CUDA cuda:0", WARN)
    assert "2.0 of 80.0 GiB free" in busy.found and "CUDA_VISIBLE_DEVICES" in busy.fix
    assert (free.name, free.status, free.fix) == ("CUDA cuda:1", OK, "")
    assert "Fake GPU 1: 60.0 of 80.0 GiB free" in free.found


@pytest.mark.gpu
def test_cuda_rows_on_a_real_gpu():
    """On a GPU machine, is there one row per device, ok with no threshold, warn with a huge one?"""
    rows = doctor.check_cuda(min_free_gib=0)
    assert [r.name for r in rows] == [f"CUDA cuda:{i}" for i in range(torch.cuda.device_count())]
    assert all(r.status == OK for r in rows)
    assert all(r.status == WARN for r in doctor.check_cuda(min_free_gib=1e6))


@pytest.fixture
def fresh_probe():
    """Forget the cached bubblewrap probe before and after, so PATH changes take effect."""
    probe.cache_clear()
    yield
    probe.cache_clear()


@pytest.mark.needs("bwrap")
def test_working_bwrap_is_ok(fresh_probe):
    """Where bubblewrap runs the sandbox command, is the row ok?"""
    [row] = doctor.check_bwrap()
    assert row.status == OK and row.fix == ""


def test_missing_bwrap_warns_with_the_apt_line(fresh_probe, monkeypatch, tmp_path):
    """Without bwrap on PATH, is the row a warn (grading still runs) naming apt-get?"""
    monkeypatch.setenv("PATH", str(tmp_path))
    [row] = doctor.check_bwrap()
    assert row.status == WARN and "no `bwrap`" in row.found
    assert "apt-get install bubblewrap" in row.fix


@pytest.mark.parametrize(
    "status, script",
    [
        (OK, "exit 0"),
        (WARN, "echo 'bwrap: No permissions to create new namespace' >&2; exit 1"),
    ],
)
def test_bwrap_row_follows_what_the_probe_runs(fresh_probe, monkeypatch, tmp_path, status, script):
    """With a `bwrap` on PATH that runs the command or is refused namespaces, is the row ok or
    a warn that names user namespaces and the refusal?"""
    fake = tmp_path / "bwrap"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    [row] = doctor.check_bwrap()
    assert row.status == status
    if status == WARN:
        assert "No permissions to create new namespace" in row.found
        assert "user namespaces" in row.fix and "apt-get" not in row.fix


def test_every_shipped_preset_loads():
    """Is the presets row ok and does it count every YAML file in labkit/presets/?"""
    shipped = list((Path(labkit.__file__).parent / "presets").glob("*.yaml"))
    [row] = doctor.check_presets()
    assert row.status == OK and f"all {len(shipped)} load" in row.found and len(shipped) > 20


def test_a_broken_or_empty_preset_folder_fails(monkeypatch, tmp_path):
    """Is a preset that does not load a FAIL naming it and its error, and no presets a FAIL?"""
    monkeypatch.setattr(labkit.config, "preset_dir", lambda: tmp_path)
    [row] = doctor.check_presets()
    assert row.status == FAIL and "no presets" in row.found
    (tmp_path / "good.yaml").write_text("model: unet\n")
    (tmp_path / "bad.yaml").write_text("model: unet\nepochs: -3\n")
    [row] = doctor.check_presets()
    assert row.status == FAIL and "1 of 2" in row.found
    assert "bad: ConfigError: epochs: expected at least 1; got -3." in row.found
    assert "good" not in row.found


def test_datasets_open_in_the_real_layouts(configs, monkeypatch, tmp_path):
    """With VOC and ADE20K under $LABKIT_DATA, are both ok with each split's image count?"""
    _write_voc(tmp_path)
    _write_ade(tmp_path)
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))
    rows = doctor.check_datasets(configs, profile="full")
    voc, ade = _row(rows, "dataset Pascal VOC"), _row(rows, "dataset ADE20K")
    assert voc.status == ade.status == OK
    assert f"train {len(VOC_SPLITS['train'])}, val {len(VOC_SPLITS['val'])} images" in voc.found
    assert (
        f"training {len(ADE_NAMES['training'])}, validation "
        f"{len(ADE_NAMES['validation'])} images" in ade.found
    )


def test_missing_datasets_fail_only_for_the_full_profile(configs, monkeypatch, tmp_path):
    """Is a missing ADE20K a FAIL under --profile full, a warn under quick, with the path?"""
    _write_voc(tmp_path)
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))
    full = doctor.check_datasets(configs, profile="full")
    assert _row(full, "dataset Pascal VOC").status == OK
    ade = _row(full, "dataset ADE20K")
    assert ade.status == FAIL and "DatasetNotFoundError" in ade.found
    assert str(tmp_path / "ADEChallengeData2016" / "images" / "training") in ade.found
    assert "ADEChallengeData2016/ under $LABKIT_DATA" in ade.fix
    assert _row(doctor.check_datasets(configs, profile="quick"), "dataset ADE20K").status == WARN


def test_a_dataset_with_a_missing_mask_fails(configs, monkeypatch, tmp_path):
    """Does a VOC tree with one mask gone fail, naming that file (as the lab would)?"""
    base = _write_voc(tmp_path)
    gone = base / "SegmentationClass" / f"{VOC_SPLITS['val'][0]}.png"
    gone.unlink()
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))
    voc = _row(doctor.check_datasets(configs, profile="full"), "dataset Pascal VOC")
    assert voc.status == FAIL and gone.name in voc.found
    monkeypatch.delenv("LABKIT_DATA")
    voc = _row(doctor.check_datasets(configs, profile="full"), "dataset Pascal VOC")
    assert voc.status == FAIL and "LABKIT_DATA" in voc.found


def test_a_shapes_set_in_place_of_voc_fails(configs, monkeypatch, tmp_path):
    """Is a Shapes set under $LABKIT_DATA (VOC's layout, other classes) refused as VOC?"""
    generate_shapes(tmp_path, num_train=2, num_val=1, size=32, num_classes=4)
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))
    voc = _row(doctor.check_datasets(configs, profile="full"), "dataset Pascal VOC")
    assert voc.status == FAIL and "of 4 classes" in voc.found and "Shapes" in voc.found


def _weights_file(enum) -> str:
    return os.path.basename(enum.IMAGENET1K_V1.url)  # torchvision's own file name


def test_weights_load_or_fail_by_file(configs, monkeypatch, tmp_path):
    """In a TORCH_HOME with a good, a corrupt, and a wrong network's file: ok, FAIL, FAIL?"""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, cache / _weights_file(torchvision.models.ResNet18_Weights))
    (cache / _weights_file(torchvision.models.ResNet50_Weights)).write_bytes(
        b"not a checkpoint, cut off by a failed copy"
    )
    torch.save(state, cache / _weights_file(torchvision.models.ResNet101_Weights))
    rows = doctor.check_weights(configs, profile="full")
    assert _row(rows, "weights resnet18").status == OK
    assert "resnet18_full" in _row(rows, "weights resnet18").found
    r50 = _row(rows, "weights resnet50")
    assert r50.status == FAIL and "does not load" in r50.found and "UnpicklingError" in r50.found
    users = sorted(
        n
        for n, c in configs.items()
        if c.model.endswith("resnet50") and c.model_options.get("pretrained_backbone")
    )
    assert f"needed by {', '.join(users[:3])} and {len(users) - 3} more" in r50.found
    r101 = _row(rows, "weights resnet101")  # a ResNet-18 state dict under ResNet-101's name
    assert r101.status == FAIL and "Missing key" in r101.found
    assert len(r101.found) < 800  # load_state_dict's list of every key, cut short
    assert doctor.exit_code(rows) == 1


def test_missing_weights_warn_for_quick_and_fail_for_full(configs, monkeypatch, tmp_path):
    """Is an empty hub cache a warn for the quick profile and a FAIL naming the file for full?"""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    name = _weights_file(torchvision.models.ResNet50_Weights)
    quick = _row(doctor.check_weights(configs, profile="quick"), "weights resnet50")
    assert quick.status == WARN and name in quick.fix
    full = _row(doctor.check_weights(configs, profile="full"), "weights resnet50")
    assert full.status == FAIL and str(tmp_path / "hub" / "checkpoints" / name) in full.found


def _course(root: Path, *, release: bool = True, text: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(
        text
        or (
            "c = get_config()\nc.CourseDirectory.source_directory = 'src_nb'\n"
            "c.CourseDirectory.release_directory = 'rel_nb'\n"
        )
    )
    for lab in ("lab01", "lab02"):
        (root / "src_nb" / lab).mkdir(parents=True, exist_ok=True)
        if release:
            (root / "rel_nb" / lab).mkdir(parents=True, exist_ok=True)
    return root


def test_course_config_names_folders_that_exist(tmp_path):
    """Is a course whose config names existing source and release folders ok, read from it?"""
    [row] = doctor.check_course(_course(tmp_path / "course"))
    assert row.status == OK and "source src_nb/ (2 labs)" in row.found
    assert "release rel_nb/ (2 labs)" in row.found


def test_course_problems_fail(monkeypatch, tmp_path):
    """Is a missing release folder, a config that raises, or no config at --root a FAIL?"""
    [row] = doctor.check_course(_course(tmp_path / "a", release=False))
    assert row.status == FAIL and str(tmp_path / "a" / "rel_nb") in row.found
    assert "labkit course release" in row.fix
    [row] = doctor.check_course(_course(tmp_path / "b", text="c = get_config(\n"))
    assert row.status == FAIL and "SyntaxError" in row.found
    [row] = doctor.check_course(tmp_path)
    assert row.status == FAIL and "no nbgrader_config.py" in row.found
    monkeypatch.chdir(tmp_path)  # no --root and no course here: nothing to say
    assert doctor.check_course() == []


def test_cli_exit_code_json_and_table(monkeypatch, tmp_path, capsys):
    """Does `labkit doctor` exit 0 with warnings only, 1 under --profile full without data or
    weights, and print JSON that parses and a table with one line per row?"""
    monkeypatch.delenv("LABKIT_DATA", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["doctor", "--json"]) == 0
    quick = json.loads(capsys.readouterr().out)
    assert quick["exit_code"] == 0 and {c["status"] for c in quick["checks"]} <= {OK, WARN}
    assert main(["doctor", "--profile", "full", "--root", str(_course(tmp_path / "c"))]) == 1
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0] == "| check | status | found | fix |"
    assert len(table) == 2 + len(quick["checks"]) + 1  # the course row is new
    failed = [line.split(" | ")[0][2:] for line in table[2:] if " | FAIL | " in line]
    assert failed and all(n.startswith(("weights ", "dataset ")) for n in failed)
    assert any(line.startswith("| nbgrader course | ok |") for line in table)


def test_a_check_that_raises_becomes_a_fail_row(monkeypatch, tmp_path):
    """Does a check that crashes give a FAIL row with its error and the deepest cause, while
    the other checks still report?"""

    def broken(**_):
        raise RuntimeError("driver confused") from OSError("no /dev/nvidia0")

    monkeypatch.setattr(doctor, "check_cuda", broken)
    monkeypatch.chdir(tmp_path)
    rows = doctor.run_checks(profile="quick")
    row = _row(rows, "CUDA")
    assert row.status == FAIL
    assert "RuntimeError: driver confused (caused by OSError: no /dev/nvidia0)" in row.found
    assert _row(rows, "presets").status == OK and _row(rows, "bubblewrap")
    with pytest.raises(ValueError, match="expected profile 'quick' or 'full'; got 'fast'"):
        doctor.run_checks(profile="fast")


def test_the_shapes_pretrained_encoder_is_checked_apart_from_imagenet(
    configs, monkeypatch, tmp_path
):
    """Is the Shapes-pretrained ResNet-18 one row of its own, a warn while not built (the
    first run builds it), a FAIL naming the file when damaged, and never a need for
    ImageNet's resnet18 file?"""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    from labkit.models.pretrain import shapes_pretrained_path

    rows = doctor.check_weights(configs, profile="quick")
    shapes = _row(rows, "weights resnet18 (shapes)")
    assert shapes.status == WARN and "labkit pretrain" in shapes.fix
    assert "lesson06_pretrained_quick" in shapes.found
    imagenet = [r for r in rows if r.name == "weights resnet18"]
    assert all("lesson06" not in r.found for r in imagenet)
    path = shapes_pretrained_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"cut off")
    shapes = _row(doctor.check_weights(configs, profile="quick"), "weights resnet18 (shapes)")
    assert shapes.status == FAIL and str(path) in shapes.found
