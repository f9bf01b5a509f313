"""Can a finished run folder be reloaded, evaluated, compared and used to segment new images?"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassJaccardIndex

from labkit.checkpoint import CheckpointError
from labkit.runs import compare_runs, confusion_figure, evaluate_run, load_run, predict_images

SHAPES = {
    "num_train": 16,
    "num_val": 8,
    "size": 32,
    "num_classes": 4,
    "deformation": 0.5,
    "seed": 0,
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from labkit.config import ExperimentConfig
    from labkit.experiment import run_experiment

    tmp = tmp_path_factory.mktemp("runs")
    cfg = ExperimentConfig.from_dict(
        dict(
            name="tiny",
            description="test",
            shapes=SHAPES,
            data_root=str(tmp / "data"),
            model="baseline_fcn",
            model_options={"widths": [4, 8, 8, 8, 8]},
            crop_size=32,
            batch_size=4,
            epochs=2,
            lr=0.01,
            device="cpu",
        )
    )
    return run_experiment(cfg, runs_root=tmp, progress=False).run_dir


def _predictions(model, dataset):
    images, masks = next(iter(DataLoader(dataset, batch_size=len(dataset))))
    with torch.no_grad():
        return model(images).argmax(1), masks


def test_evaluate_reproduces_the_training_scores(run_dir):
    """Does evaluating best.pt on val give the mIoU and pixel accuracy metrics.json recorded?"""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    scores = evaluate_run(run_dir, device="cpu")
    assert scores["miou"] == pytest.approx(metrics["val"]["miou"], abs=1e-12)
    assert scores["pixel_accuracy"] == pytest.approx(metrics["val"]["pixel_accuracy"], abs=1e-12)
    assert scores["checkpoint_epoch"] == metrics["best_epoch"] and scores["split"] == "val"
    assert len(scores["classes"]) == 4


def test_evaluate_on_train_agrees_with_torchmetrics(run_dir):
    """On the train split, does evaluate_run's mIoU equal torchmetrics on the model's predictions?"""
    from labkit.data.transforms import eval_transforms
    from labkit.data.voc import VOCSegmentation

    run = load_run(run_dir, checkpoint="last")
    scores = evaluate_run(run_dir, split="train", checkpoint="last", device="cpu")
    preds, masks = _predictions(
        run.model, VOCSegmentation(run.data_root, split="train", transforms=eval_transforms())
    )
    jaccard = MulticlassJaccardIndex(4, average="macro", ignore_index=255)
    assert scores["miou"] == pytest.approx(float(jaccard(preds, masks)), abs=1e-6)


def test_confusion_heatmap_shows_row_normalised_counts():
    """Does the heatmap hold each row of the matrix divided by its total, labelled by class?"""
    matrix = torch.tensor([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    fig = confusion_figure(matrix, ["a", "b", "c"])
    ax = fig.axes[0]
    shown = np.asarray(ax.images[0].get_array()).reshape(3, 3)
    np.testing.assert_allclose(shown, [[0.8, 0.2, 0], [0.25, 0.75, 0], [0, 0, 0]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert sorted(t.get_text() for t in ax.texts) == sorted(
        ["0.80", "0.20", "0.00", "0.25", "0.75", "0.00", "0.00", "0.00", "0.00"]
    )


def test_confusion_heatmap_of_ade20k_classes_renders(tmp_path):
    """Does a 150-class matrix (ADE20K, lab 08's full profile) render to a PNG with every class
    labelled and no per-cell text (seaborn's heatmap of it once took 19 GB and killed the
    kernel)?"""
    classes = [f"class {i}" for i in range(150)]
    matrix = torch.randint(0, 50, (150, 150))
    fig = confusion_figure(matrix, classes, normalize=False)
    fig.savefig(tmp_path / "cm.png", dpi=50)
    ax = fig.axes[0]
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), matrix.numpy())
    assert [t.get_text() for t in ax.get_xticklabels()] == classes
    assert not ax.texts
    assert (tmp_path / "cm.png").stat().st_size > 0


def test_compare_makes_one_table_with_deltas(run_dir, tmp_path):
    """Does compare list every run with its scores and the mIoU difference to the first in points?"""
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    metrics = json.loads((other / "metrics.json").read_text())
    base = metrics["val"]["miou"]
    metrics["val"]["miou"] = base + 0.0141
    (other / "metrics.json").write_text(json.dumps(metrics))
    table, fig = compare_runs([run_dir, other])
    lines = table.splitlines()
    assert lines[0].startswith("| run | model | val mIoU | train mIoU | pixel acc")
    assert len(lines) == 4
    assert lines[2].startswith(f"| tiny | baseline_fcn | {100 * base:.2f} % |")
    assert lines[2].endswith("| — |") and lines[3].endswith("| +1.41 |")
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2
    with pytest.raises(ValueError, match="at least one"):
        compare_runs([])


def test_predict_writes_masks_equal_to_the_models_argmax(run_dir, tmp_path):
    """For images of any size, is each mask PNG the model's argmax, with an overlay beside it?"""
    from labkit.data.transforms import eval_transforms

    images = tmp_path / "in"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(images / "a.png")
    Image.fromarray(rng.integers(0, 255, (33, 50, 3), dtype=np.uint8)).save(images / "b.jpg")
    (images / "notes.txt").write_text("not an image")
    written = predict_images(run_dir, images, tmp_path / "out", device="cpu")
    assert [p.name for p in written] == [
        "a_mask.png",
        "a_overlay.png",
        "b_mask.png",
        "b_overlay.png",
    ]
    run = load_run(run_dir)
    for name in ("a.png", "b.jpg"):
        rgb = np.array(Image.open(images / name).convert("RGB"))
        x, _ = eval_transforms()(rgb, np.zeros(rgb.shape[:2], np.uint8))
        with torch.no_grad():
            expected = run.model(x[None]).argmax(1)[0].numpy()
        stem = name.split(".")[0]
        mask = Image.open(tmp_path / "out" / f"{stem}_mask.png")
        assert mask.mode == "P"
        np.testing.assert_array_equal(np.array(mask), expected)
        assert Image.open(tmp_path / "out" / f"{stem}_overlay.png").size == mask.size


def test_bad_folders_are_explained(tmp_path, run_dir):
    """Are a folder that is not a run, an image folder without images and a bad checkpoint name errors?"""
    with pytest.raises(CheckpointError, match="not a run folder"):
        load_run(tmp_path)
    with pytest.raises(ValueError, match="found none"):
        predict_images(run_dir, tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="'best' or 'last'"):
        load_run(run_dir, checkpoint="first")
