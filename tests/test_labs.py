"""Tests for labkit.labs: profile, data, training and results table of the lab notebooks."""

import math

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from labkit.config import ConfigError, load_preset
from labkit.labs import LAB_QUICK, lab_config, lab_data, results_table, train_model
from labkit.models import build_model

TINY = dict(shapes__num_train=16, shapes__num_val=8, shapes__size=32, crop_size=32,
            batch_size=4, epochs=1)


def test_quick_profile_is_the_preset_shrunk_to_the_lab_budget():
    """Does quick load <preset>_quick and apply LAB_QUICK, then the cell's overrides?"""
    cfg = lab_config("baseline", epochs=2, augment__hflip=0.5)
    preset = load_preset("baseline_quick")
    assert cfg.model == preset.model and cfg.lr == preset.lr
    assert (cfg.shapes.size, cfg.shapes.num_train) == (LAB_QUICK["shapes.size"],
                                                     LAB_QUICK["shapes.num_train"])
    assert cfg.epochs == 2 and cfg.augment.hflip == 0.5


def test_full_profile_is_the_preset_as_written(monkeypatch):
    """Does full leave the preset alone, and does nbgrader always get quick?"""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert lab_config("baseline", profile="full") == load_preset("baseline_full")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert lab_config("baseline", profile="full").profile == "quick"


def test_bad_profile_and_key_are_named():
    """Do a wrong PROFILE and an unknown override say what was expected?"""
    with pytest.raises(ConfigError, match="PROFILE: expected one of"):
        lab_config("baseline", profile="fast")
    with pytest.raises(ConfigError, match="epoch"):
        lab_config("baseline", epoch=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("labs")
    return lab_data(lab_config("baseline", **TINY), runs_root=root)


def test_lab_data_draws_shapes_and_builds_loaders(tiny):
    """Are the loaders batched as configured, masks long with the ignore label kept?"""
    images, masks = next(iter(tiny.train_loader))
    assert images.shape == (4, 3, 32, 32) and masks.dtype == torch.long
    assert len(tiny.val_set) == 8 and tiny.num_classes == len(tiny.classes) == 6
    assert (tiny.root / "VOCdevkit" / "VOC2012" / "shapes.json").is_file()


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
        runs.append(train_model(model, tiny, loss_fn=loss_fn, scheduler=schedule, epochs=2,
                                progress=False))
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
        data = tiny.__class__(**{**tiny.__dict__, "config": apply_overrides(
            tiny.config, {"epochs": 2, "warmup_epochs": warmup, "schedule": "poly"})})
        torch.manual_seed(5)
        model = build_model("baseline_fcn", num_classes=6, widths=(8, 8, 8, 8, 8))
        losses.append(train_model(model, data, epochs=2, progress=False)
                      .history.column("train_loss"))
    assert losses[0][0] != losses[1][0]
