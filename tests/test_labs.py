"""Tests for labkit.labs: profile, data, training and results table of the lab notebooks."""

import dataclasses
import logging
import math
import re
from pathlib import Path

import nbformat
import pytest
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

import labkit.experiment
import labkit.train
from labkit.config import ConfigError, apply_overrides, load_preset
from labkit.labs import QUICK_BUDGETS, lab_config, lab_data, results_table, run_folder, train_model
from labkit.models import build_model

TINY = {
    "shapes.num_train": 16,
    "shapes.num_val": 8,
    "shapes.size": 32,
    "crop_size": 32,
    "batch_size": 4,
    "epochs": 1,
}


def test_quick_profile_is_the_preset_shrunk_to_the_lab_budget():
    """Does quick load <preset>_quick and apply the default budget, then the cell's overrides?"""
    cfg = lab_config("baseline", overrides={"epochs": 2, "augment.hflip": 0.5})
    preset = load_preset("baseline_quick")
    default = QUICK_BUDGETS["default"]
    assert cfg.model == preset.model and cfg.lr == preset.lr
    assert (cfg.shapes.size, cfg.shapes.num_train) == (
        default["shapes.size"],
        default["shapes.num_train"],
    )
    assert cfg.epochs == 2 and cfg.augment.hflip == 0.5


@pytest.mark.parametrize("name", sorted(QUICK_BUDGETS))
def test_a_named_quick_budget_is_applied_whole_in_quick_only(name, monkeypatch):
    """Does every named budget hold in the quick config key by key, each one a valid config
    change, and does the full profile ignore it?"""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("LABKIT_BUDGET", raising=False)
    preset = "unet" if "model_options.base_width" in QUICK_BUDGETS[name] else "baseline"
    got = lab_config(preset, quick_budget=name).to_dict()
    for key, value in QUICK_BUDGETS[name].items():
        node = got
        for part in key.split("."):
            node = node[part]
        assert node == value, (name, key)
    assert lab_config(preset, profile="full", quick_budget=name) == load_preset(f"{preset}_full")


def test_the_labs_ask_for_their_budgets_by_name():
    """Does each named budget serve a lab notebook that asks for it, and does no notebook
    keep a budget of its own (a QUICK_BUDGET helper, a second quick lab_config)?"""
    root = Path(__file__).resolve().parents[1] / "solutions"
    sources = {
        p.parent.name: "\n".join(c.source for c in nbformat.read(p, as_version=4).cells)
        for p in root.glob("*/*.ipynb")
    }
    asked = {n for n in QUICK_BUDGETS for s in sources.values() if f'quick_budget="{n}"' in s}
    assert asked == set(QUICK_BUDGETS) - {"default"}
    for lab, text in sources.items():
        assert not re.search(r"\bQUICK_BUDGET\b", text), lab  # a budget of its own
        assert 'profile="quick"' not in text, lab  # a second, quick-only lab_config


def test_full_profile_is_the_preset_as_written(monkeypatch):
    """Does full leave the preset alone, and does nbgrader always get quick?"""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert lab_config("baseline", profile="full") == load_preset("baseline_full")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert lab_config("baseline", profile="full").profile == "quick"


def test_cpu_profile_is_the_lessons_measured_preset(monkeypatch):
    """Does PROFILE = "cpu" train the lesson's preset as written (no quick budget), the same
    config make ablations measured (the arm with its overrides), does a lab without one say
    so, and does nbgrader still get quick?"""
    from labkit.config import apply_overrides
    from labkit.lessons import LESSONS

    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("LABKIT_BUDGET", raising=False)
    for lesson in (x for x in LESSONS if x.cpu_preset):  # the others are too long to run live
        cfg = lab_config("baseline", profile="cpu", cpu_preset=lesson.cpu_preset)
        assert cfg == load_preset(lesson.cpu_preset)
        measured = [
            apply_overrides(load_preset(arm.preset), arm.overrides)
            for arm in (lesson.low, lesson.high)
        ]
        # the cpu preset is one of the measured rows, up to what the notebook itself varies
        varied = {"schedule", "class_weighting", "model", "model_options", "description", "name"}
        assert any(
            {k: v for k, v in m.to_dict().items() if k not in varied}
            == {k: v for k, v in cfg.to_dict().items() if k not in varied}
            for m in measured
        ), lesson.lab
    with pytest.raises(ConfigError, match='PROFILE = "cpu": this lab has no measured CPU'):
        lab_config("baseline", profile="cpu")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    cfg = lab_config("baseline", profile="cpu", cpu_preset="lesson02_constant_quick")
    assert cfg.shapes.num_train == QUICK_BUDGETS["default"]["shapes.num_train"]


def test_bad_profile_and_key_are_named():
    """Do a wrong PROFILE and an unknown override say what was expected?"""
    with pytest.raises(ConfigError, match="PROFILE: expected one of"):
        lab_config("baseline", profile="fast")
    with pytest.raises(ConfigError, match="epoch"):
        lab_config("baseline", overrides={"epoch": 3})
    with pytest.raises(
        ConfigError, match=r"quick_budget: expected one of \[.*'deeplab_v3'.*got 'lab7'"
    ):
        lab_config("baseline", quick_budget="lab7")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("labs")
    return lab_data(lab_config("baseline", overrides=TINY), runs_root=root)


def test_lab_data_draws_shapes_and_builds_loaders(tiny):
    """Are the loaders batched as configured, masks long with the ignore label kept?"""
    images, masks = next(iter(tiny.train_loader))
    assert images.shape == (4, 3, 32, 32) and masks.dtype == torch.long
    assert len(tiny.val_set) == 8 and tiny.num_classes == len(tiny.classes) == 6
    assert (tiny.root / "VOCdevkit" / "VOC2012" / "shapes.json").is_file()


def test_lab_data_builds_no_pipeline_until_a_set_is_used(tiny, monkeypatch):
    """Are root and classes read without building the training or evaluation pipeline (a
    lab 03 cell under the referee, where labkit's pipelines are switched off), and is the
    pipeline built, once, when a set is first used?"""
    import labkit.data.transforms as transforms

    built = []

    def counting(real):
        def build(**options):
            built.append(real.__name__)
            return real(**options)

        return build

    for name in ("train_transforms", "eval_transforms"):
        monkeypatch.setattr(transforms, name, counting(getattr(transforms, name)))
    data = lab_data(tiny.config, runs_root=tiny.runs_root)
    assert data.classes == tiny.classes and data.root == tiny.root and not built
    assert len(data.train_set) == len(tiny.train_set)
    next(iter(data.val_loader))
    assert sorted(built) == ["eval_transforms", "train_transforms"]


def test_lab_data_uses_the_students_transform(tiny, tmp_path):
    """Does train_transforms replace the pipeline (and only for training)?"""
    seen = []

    def mine(image, mask):
        seen.append(1)
        from labkit.data import eval_transforms

        return eval_transforms()(image, mask)

    data = lab_data(tiny.config, runs_root=tiny.root.parent.parent, train_transforms=mine)
    next(iter(data.train_loader))
    assert len(seen) == 4


def test_train_model_scores_agree_with_torchmetrics(tiny):
    """Are the reported scores those torchmetrics computes on the model's predictions?"""
    model = build_model("baseline_fcn", num_classes=6, widths=(8, 8, 8, 8, 8))
    run = train_model(model, tiny, name="tiny", progress=False)
    assert len(run.history) == 1 and run.parameters == sum(p.numel() for p in model.parameters())
    jac = MulticlassJaccardIndex(6, average="none", ignore_index=255)
    acc = MulticlassAccuracy(6, average="micro", ignore_index=255)
    with torch.no_grad():
        for images, masks in tiny.val_loader:
            pred = model(images).argmax(1)
            jac.update(pred, masks)
            acc.update(pred, masks)
    assert run.scores["pixel_accuracy"] == pytest.approx(acc.compute().item(), abs=1e-6)
    ours = torch.as_tensor(run.scores["iou"], dtype=torch.float64)
    theirs = jac.compute().double()
    present = ~ours.isnan()
    assert torch.allclose(ours[present], theirs[present], atol=1e-6)


def test_train_model_is_repeatable_and_takes_the_students_parts(tiny):
    """Do two runs agree exactly, and are a given loss and schedule the ones used?"""
    calls = {"loss": 0, "sched": 0}

    def loss_fn(logits, target):
        calls["loss"] += 1
        return torch.nn.functional.cross_entropy(logits, target, ignore_index=255)

    def schedule(optimizer, total_steps):
        calls["sched"] = total_steps
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / total_steps)

    runs = []
    for _ in range(2):
        torch.manual_seed(123)  # model init
        model = build_model("baseline_fcn", num_classes=6, widths=(8, 8, 8, 8, 8))
        runs.append(
            train_model(model, tiny, loss_fn=loss_fn, scheduler=schedule, epochs=2, progress=False)
        )
    assert calls["sched"] == 2 * len(tiny.train_loader)
    assert calls["loss"] >= 2 * 2 * len(tiny.train_loader)
    assert runs[0].history.column("train_loss") == runs[1].history.column("train_loss")
    assert runs[0].history.column("lr")[-1] < runs[0].history.column("lr")[0]


def test_results_table_has_a_row_per_run_and_a_column_per_class(tiny):
    """Does the markdown table hold each run's numbers, with a dash for absent classes?"""
    model = build_model("baseline_fcn", num_classes=6, widths=(8, 8, 8, 8, 8))
    run = train_model(model, tiny, name="tiny run", progress=False)
    run.scores["iou"][1] = math.nan
    lines = results_table([run, run], classes=tiny.classes).splitlines()
    assert len(lines) == 4 and lines[0].count("|") == 5 + 6 + 1
    assert lines[2].startswith("| tiny run |") and "| — |" in lines[2]
    assert f"{100 * run.scores['miou']:.1f}" in lines[2]


def test_train_model_warms_up_as_the_config_says(tiny):
    """Does warmup_epochs change the first epoch's training, as in run_experiment?"""
    from labkit.config import apply_overrides

    losses = []
    for warmup in (0.0, 1.0):
        data = dataclasses.replace(
            tiny,
            config=apply_overrides(
                tiny.config, {"epochs": 2, "warmup_epochs": warmup, "schedule": "poly"}
            ),
        )
        torch.manual_seed(5)
        model = build_model("baseline_fcn", num_classes=6, widths=(8, 8, 8, 8, 8))
        losses.append(
            train_model(model, data, epochs=2, progress=False).history.column("train_loss")
        )
    assert losses[0][0] != losses[1][0]


# ---------------------------------------------------------------- LABKIT_BUDGET=smoke


def _differences(a, b):
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


@pytest.mark.parametrize("preset", ["baseline", "deeplab_r50_lr_high", "dcn_v2"])
def test_smoke_budget_shrinks_only_the_budget(preset, monkeypatch):
    """Does LABKIT_BUDGET=smoke change epochs, image counts, crop, eval size and warm-up only,
    to one batch of training, at most 4 validation images and 64-pixel crops?"""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv("LABKIT_BUDGET", "smoke")
    full = load_preset(f"{preset}_full")
    smoke = lab_config(preset, profile="full")
    changed = _differences(full.to_dict(), smoke.to_dict())
    assert set(changed) <= {
        "epochs",
        "max_train_images",
        "max_val_images",
        "crop_size",
        "eval_size",
        "warmup_epochs",
        "num_workers",
    }, changed
    assert smoke.num_workers == min(full.num_workers, 1)
    assert smoke.epochs == 1 and smoke.max_train_images == full.batch_size
    assert smoke.max_val_images == 4 and smoke.crop_size == 64
    assert smoke.eval_size == (None if full.eval_size is None else 64)
    assert smoke.warmup_epochs == pytest.approx(full.warmup_epochs / full.epochs)
    assert (smoke.batch_size, smoke.val_batch_size, smoke.dataset, smoke.model) == (
        full.batch_size,
        full.val_batch_size,
        full.dataset,
        full.model,
    )


def test_smoke_caps_the_quick_profile_over_a_cells_own_budget(monkeypatch, tmp_path):
    """Does smoke cap the quick profile too, and hold over a cell's overrides, a config changed
    afterwards (lab_data caps it) and train_model's own epochs?"""
    monkeypatch.delenv("LABKIT_BUDGET", raising=False)
    small = {"shapes.num_train": 16, "shapes.num_val": 8, "shapes.size": 32, "crop_size": 32}
    quick = lab_config("baseline", overrides=small)
    monkeypatch.setenv("LABKIT_BUDGET", "smoke")
    smoke = lab_config("baseline", overrides={"epochs": 8, "max_train_images": 64, **small})
    assert (smoke.epochs, smoke.max_train_images, smoke.max_val_images) == (1, quick.batch_size, 4)
    assert (smoke.shapes, smoke.batch_size, smoke.model) == (
        quick.shapes,
        quick.batch_size,
        quick.model,
    )
    widened = apply_overrides(smoke, {"epochs": 3, "max_train_images": 32})
    data = lab_data(widened, runs_root=tmp_path)
    assert data.config == smoke
    assert (len(data.train_set), len(data.val_set)) == (quick.batch_size, 4)
    model = build_model("baseline_fcn", num_classes=6, widths=(8, 8, 8, 8, 8))
    run = train_model(model, data, epochs=5, progress=False)
    assert len(run.history) == 1


def test_a_misspelt_budget_says_what_to_set(monkeypatch):
    """Does a misspelt budget say what to set, and is an explicit full the preset as written?"""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)  # it would force quick
    monkeypatch.setenv("LABKIT_BUDGET", "tiny")
    with pytest.raises(
        ConfigError,
        match=r"LABKIT_BUDGET: expected one of \('full', 'smoke'\)"
        r".*got 'tiny'",
    ):
        lab_config("baseline", profile="full")
    with pytest.raises(ConfigError, match=r"LABKIT_BUDGET"):
        lab_config("baseline")
    monkeypatch.setenv("LABKIT_BUDGET", "full")
    assert lab_config("baseline", profile="full") == load_preset("baseline_full")


# ------------------------------------------------------- checkpoints, resume, one scoring


class _Loss(nn.Module):
    """Cross-entropy that counts its training calls and can stop the run at one of them
    (as a kernel restart would)."""

    def __init__(self, stop_at: int | None = None) -> None:
        super().__init__()
        self.stop_at, self.calls = stop_at, 0

    def forward(self, logits, target):
        if torch.is_grad_enabled():  # training, not validation
            self.calls += 1
            if self.calls == self.stop_at:
                raise KeyboardInterrupt("kernel interrupted")
        return nn.functional.cross_entropy(logits, target, ignore_index=255)


def _tiny_model(seed):
    torch.manual_seed(seed)
    return build_model("baseline_fcn", num_classes=6, widths=(8, 8, 8, 8, 8))


def test_a_run_resumes_after_an_interruption_with_the_same_weights(tiny, tmp_path):
    """Does a run stopped in epoch 2 of 3 continue at epoch 2 on the next call and end with
    exactly the weights and scores of an uninterrupted run, and is a finished run then only
    scored (once), not trained again?"""
    steps = len(tiny.train_loader)
    whole = dataclasses.replace(tiny, runs_root=tmp_path / "a")
    stopped = dataclasses.replace(tiny, runs_root=tmp_path / "b")
    reference = train_model(
        _tiny_model(1),
        whole,
        name="run",
        epochs=3,
        loss_fn=_Loss(),
        checkpoints=True,
        progress=False,
    )
    with pytest.raises(KeyboardInterrupt):
        train_model(
            _tiny_model(1),
            stopped,
            name="run",
            epochs=3,
            loss_fn=_Loss(stop_at=steps + 2),
            checkpoints=True,
            progress=False,
        )
    assert (run_folder(stopped, "run") / "last.pt").is_file()
    loss = _Loss()
    # other initial weights: whatever is resumed must come from the checkpoint
    resumed = train_model(
        _tiny_model(2),
        stopped,
        name="run",
        epochs=3,
        loss_fn=loss,
        checkpoints=True,
        progress=False,
    )
    assert loss.calls == 2 * steps, "expected only epochs 2 and 3 to be trained again"
    assert [r["epoch"] for r in resumed.history.rows] == [1, 2, 3]
    assert resumed.history.column("train_loss") == reference.history.column("train_loss")
    for (key, a), b in zip(
        reference.model.state_dict().items(), resumed.model.state_dict().values()
    ):
        assert torch.equal(a, b), key
    assert resumed.scores["miou"] == reference.scores["miou"]

    again = _Loss()
    finished = train_model(
        _tiny_model(3),
        stopped,
        name="run",
        epochs=3,
        loss_fn=again,
        checkpoints=True,
        progress=False,
    )
    assert again.calls == 0 and len(finished.history) == 3
    assert torch.equal(finished.scores["matrix"], reference.scores["matrix"])


def test_a_checkpoint_of_another_run_is_not_resumed(tiny, tmp_path, caplog):
    """Does a changed model under the same name train from the start, with a warning?"""
    data = dataclasses.replace(tiny, runs_root=tmp_path)
    train_model(_tiny_model(1), data, name="run", epochs=1, checkpoints=True, progress=False)
    torch.manual_seed(1)
    wider = build_model("baseline_fcn", num_classes=6, widths=(8, 8, 8, 8, 16))
    loss = _Loss()
    with caplog.at_level(logging.WARNING, logger="labkit.labs"):
        run = train_model(
            wider, data, name="run", epochs=1, loss_fn=loss, checkpoints=True, progress=False
        )
    assert loss.calls == len(tiny.train_loader) and len(run.history) == 1
    assert "belongs to another run" in caplog.text


def test_quick_and_grading_keep_no_checkpoints(tiny, tmp_path, monkeypatch):
    """Does train_model write nothing on the quick profile, nor on the full one while
    nbgrader runs the notebook, but checkpoint a full-profile run otherwise?"""
    data = dataclasses.replace(tiny, runs_root=tmp_path)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    train_model(_tiny_model(1), data, name="quick", progress=False)
    full = dataclasses.replace(data, config=apply_overrides(tiny.config, {"profile": "full"}))
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    train_model(_tiny_model(1), full, name="graded", progress=False)
    assert not list(tmp_path.rglob("*.pt"))
    monkeypatch.delenv("NBGRADER_EXECUTION")
    train_model(_tiny_model(1), full, name="full", progress=False)
    assert [p.relative_to(tmp_path).as_posix() for p in sorted(tmp_path.rglob("*.pt"))] == [
        f"{tiny.config.name}/full/best.pt",
        f"{tiny.config.name}/full/last.pt",
    ]


def test_the_validation_set_is_scored_once_per_epoch(tiny, monkeypatch):
    """Are the run's scores the last epoch's validation, with no extra pass afterwards?"""
    calls = []
    real = labkit.train.evaluate

    def counting(*args, **kwargs):
        calls.append(kwargs.get("device"))
        return real(*args, **kwargs)

    monkeypatch.setattr(labkit.train, "evaluate", counting)
    run = train_model(_tiny_model(1), tiny, epochs=2, progress=False)
    assert calls == [torch.device("cpu")] * 2
    assert run.scores["miou"] == run.history.rows[-1]["miou"]
    assert run.scores["pixel_accuracy"] == run.history.rows[-1]["pixel_accuracy"]


def test_device_memory_cap_and_precision_reach_fit(tiny, monkeypatch):
    """Do the config's device, gpu_memory_gib, amp and channels_last get to the device choice,
    the memory cap and fit, as labkit train passes them?"""
    seen = {}

    class Stop(Exception):
        pass

    def pick(device):
        seen["asked"] = device
        return torch.device("cpu")

    def fit(model, *args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(labkit.experiment, "pick_device", pick)
    monkeypatch.setattr(
        labkit.experiment, "cap_memory", lambda device, *, gib: seen.update(cap=(device, gib))
    )
    monkeypatch.setattr(labkit.train, "fit", fit)
    cfg = apply_overrides(
        tiny.config,
        {"device": "cuda:1", "gpu_memory_gib": 3.5, "amp": True, "channels_last": False},
    )
    with pytest.raises(Stop):
        train_model(_tiny_model(1), dataclasses.replace(tiny, config=cfg), progress=False)
    assert seen["asked"] == "cuda:1" and seen["cap"] == (torch.device("cpu"), 3.5)
    assert (seen["device"], seen["amp"], seen["channels_last"]) == (
        torch.device("cpu"),
        True,
        False,
    )
