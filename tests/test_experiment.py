"""Does a config become the run folder it describes, reproducibly, reading data without writing there?"""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassJaccardIndex

from labkit.config import ConfigError, ExperimentConfig, load_config
from labkit.experiment import (
    RunExistsError,
    build_datasets,
    build_loaders,
    build_loss_fn,
    build_optimizer,
    resolve_data_root,
    run_experiment,
)
from labkit.history import History

SHAPES = {
    "num_train": 16,
    "num_val": 8,
    "size": 32,
    "num_classes": 4,
    "deformation": 0.5,
    "seed": 0,
}


def tiny(**kw) -> ExperimentConfig:
    """A config that trains in about a second: 16 Shapes images of 32 px, a narrow FCN."""
    data = dict(
        name="tiny",
        description="test",
        dataset="shapes",
        shapes=SHAPES,
        model="baseline_fcn",
        model_options={"widths": [4, 8, 8, 8, 8]},
        crop_size=32,
        batch_size=4,
        epochs=2,
        optimizer="adamw",
        lr=0.01,
        schedule="poly",
        augment={"scale": [0.75, 1.25], "hflip": 0.5},
        device="cpu",
    )
    data.update(kw)
    return ExperimentConfig.from_dict(data)


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    from labkit.data.shapes import generate_shapes

    return generate_shapes(tmp_path_factory.mktemp("data"), **SHAPES)


@pytest.fixture(autouse=True)
def _no_labkit_data(monkeypatch):
    monkeypatch.delenv("LABKIT_DATA", raising=False)


def _strip(history):
    """Rows without the wall time, NaN as a string (NaN != NaN would fail any comparison)."""
    return [
        {k: "nan" if v != v else v for k, v in r.items() if k != "seconds"} for r in history.rows
    ]


def test_run_writes_a_complete_run_folder(tmp_path, shapes_root):
    """Does a run write config, checkpoints, history, metrics and curves, with metrics that
    torchmetrics confirms on the best checkpoint's predictions?"""
    from labkit.data.transforms import eval_transforms
    from labkit.data.voc import VOCSegmentation
    from labkit.models import build_model

    cfg = tiny(data_root=str(shapes_root))
    result = run_experiment(cfg, runs_root=tmp_path, progress=False)
    run = tmp_path / "tiny"
    for name in (
        "config.yaml",
        "last.pt",
        "best.pt",
        "history.csv",
        "iterations.csv",
        "metrics.json",
        "learning_curves.png",
    ):
        assert (run / name).is_file(), name
    assert load_config(run / "config.yaml") == cfg
    assert _strip(History.from_csv(run / "history.csv")) == _strip(result.history)
    back = History.from_csv(run / "history.csv", iterations=run / "iterations.csv")
    assert back.iterations == result.history.iterations  # floats written as repr: exact
    assert [r["step"] for r in back.iterations] == list(range(1, len(back.iterations) + 1))
    assert {r["epoch"] for r in back.iterations} == {1, 2}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val"]["miou"] == result.history.best["miou"]
    assert metrics["epochs"] == 2 and metrics["data_root"] == str(shapes_root)

    model = build_model("baseline_fcn", num_classes=4, widths=[4, 8, 8, 8, 8])
    model.load_state_dict(torch.load(run / "best.pt", weights_only=True)["model"])
    model.eval()
    val = VOCSegmentation(shapes_root, split="val", transforms=eval_transforms())
    images, masks = next(iter(DataLoader(val, batch_size=len(val))))
    with torch.no_grad():
        preds = model(images).argmax(1)
    jaccard = MulticlassJaccardIndex(4, average="macro", ignore_index=255)
    assert metrics["val"]["miou"] == pytest.approx(float(jaccard(preds, masks)), abs=1e-6)


def test_same_config_same_run(tmp_path, shapes_root):
    """Do two runs of one config give the same history and weights, bit for bit?"""
    a = run_experiment(
        tiny(name="a", data_root=str(shapes_root)), runs_root=tmp_path, progress=False
    )
    b = run_experiment(
        tiny(name="b", data_root=str(shapes_root)), runs_root=tmp_path, progress=False
    )
    assert _strip(a.history) == _strip(b.history)
    wa = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    wb = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_an_existing_run_is_not_silently_replaced(tmp_path, shapes_root):
    """Is training into a used folder an error unless resume or overwrite says what to do, and
    does resume refuse a changed config, naming the key?"""
    cfg = tiny(data_root=str(shapes_root), epochs=1)
    run_experiment(cfg, runs_root=tmp_path, progress=False)
    with pytest.raises(RunExistsError, match="--resume"):
        run_experiment(cfg, runs_root=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="lr: 0.01 -> 0.02"):
        run_experiment(
            tiny(data_root=str(shapes_root), epochs=1, lr=0.02),
            runs_root=tmp_path,
            resume=True,
            progress=False,
        )
    again = run_experiment(
        tiny(data_root=str(shapes_root), epochs=1, num_workers=0),
        runs_root=tmp_path,
        resume=True,
        progress=False,
    )
    assert len(again.history) == 1
    fresh = run_experiment(cfg, runs_root=tmp_path, overwrite=True, progress=False)
    assert _strip(fresh.history) == _strip(again.history)


def test_shapes_root_given_empty_is_drawn_there(tmp_path):
    """Is an empty data_root filled with the config's Shapes set?"""
    root = resolve_data_root(tiny(data_root=str(tmp_path / "mine")), runs_root=tmp_path / "runs")
    assert root == tmp_path / "mine"
    meta = json.loads((root / "VOCdevkit" / "VOC2012" / "shapes.json").read_text())
    assert {k: meta["arguments"][k] for k in SHAPES} == SHAPES


def test_shapes_from_labkit_data_are_only_read(tmp_path, shapes_root, monkeypatch):
    """Is a Shapes set in $LABKIT_DATA drawn with the config's options used as it is (nothing
    rewritten), and one drawn with other options passed over for the config's own set?"""
    monkeypatch.setenv("LABKIT_DATA", str(shapes_root))
    marker = shapes_root / "VOCdevkit" / "VOC2012" / "shapes.json"
    before = marker.stat().st_mtime_ns
    assert resolve_data_root(tiny(), runs_root=tmp_path) == shapes_root
    assert not (tmp_path / ".data").exists()
    other = resolve_data_root(tiny(shapes={**SHAPES, "num_train": 3}), runs_root=tmp_path)
    assert other.parent == tmp_path / ".data"
    meta = json.loads((other / "VOCdevkit" / "VOC2012" / "shapes.json").read_text())
    assert meta["arguments"]["num_train"] == 3
    assert marker.stat().st_mtime_ns == before


def test_an_explicit_shapes_root_is_used_as_it_is(tmp_path, shapes_root, caplog):
    """Is a data_root holding a Shapes set used even if drawn with other options, with a warning?"""
    with caplog.at_level("WARNING"):
        cfg = tiny(data_root=str(shapes_root), shapes={**SHAPES, "num_train": 99})
        assert resolve_data_root(cfg, runs_root=tmp_path) == shapes_root
    assert "num_train" in caplog.text


def test_shapes_without_a_root_are_cached_under_the_runs_folder(tmp_path):
    """Without data_root or $LABKIT_DATA, is the set drawn once into <runs>/.data and reused?"""
    root = resolve_data_root(tiny(), runs_root=tmp_path)
    assert root.parent == tmp_path / ".data" and root.name.startswith("shapes-")
    stamp = (root / "VOCdevkit" / "VOC2012" / "shapes.json").stat().st_mtime_ns
    assert resolve_data_root(tiny(), runs_root=tmp_path) == root
    assert (root / "VOCdevkit" / "VOC2012" / "shapes.json").stat().st_mtime_ns == stamp


def test_voc_without_a_root_says_where_to_put_it(tmp_path):
    """Does a VOC config with no root and no $LABKIT_DATA fail with a DatasetNotFoundError?"""
    from labkit.data import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match="LABKIT_DATA"):
        resolve_data_root(tiny(dataset="voc"), runs_root=tmp_path)


def test_loaders_and_datasets(shapes_root):
    """Are the loaders' batches the configured size and crop, and the subset limits honoured?"""
    cfg = tiny(data_root=str(shapes_root), crop_size=24, max_train_images=12, max_val_images=5)
    train, val, classes = build_datasets(cfg, root=shapes_root)
    assert (len(train), len(val), len(classes)) == (12, 5, 4)
    train_loader, val_loader = build_loaders(cfg, train, val)
    images, masks = next(iter(train_loader))
    assert images.shape == (4, 3, 24, 24) and masks.dtype == torch.int64
    assert len(train_loader) == 3 and sum(len(m) for _, m in val_loader) == 5
    with pytest.raises(ConfigError, match="batch_size"):
        build_loaders(tiny(batch_size=64), train, val)


def test_optimizer_groups_and_offset_learning_rate():
    """Does each optimizer get every trainable parameter once, offsets at lr x offset_lr_mult?"""
    from labkit.models import build_model

    model = build_model("resnet18_transfer", num_classes=3, deformable="v1", freeze_encoder=False)
    for name, kind in (
        ("sgd", torch.optim.SGD),
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
    ):
        opt = build_optimizer(tiny(optimizer=name, lr=0.1, offset_lr_mult=0.1), model)
        assert type(opt) is kind
        params = [p for g in opt.param_groups for p in g["params"]]
        assert (
            len(params)
            == len({id(p) for p in params})
            == sum(1 for p in model.parameters() if p.requires_grad)
        )
        lrs = sorted(g["lr"] for g in opt.param_groups)
        assert lrs == pytest.approx([0.01, 0.1])
    assert opt.param_groups[0]["weight_decay"] == tiny().weight_decay


def test_class_weights_come_from_the_training_masks(tmp_path, shapes_root):
    """Are the loss's class weights median-frequency weights of pixel counts counted by hand?"""
    import numpy as np
    from PIL import Image

    from labkit.losses import class_weights

    cfg = tiny(data_root=str(shapes_root), class_weighting="median_frequency")
    cache = tmp_path / "counts.json"
    loss = build_loss_fn(cfg, root=shapes_root, num_classes=4, cache=cache)
    voc = shapes_root / "VOCdevkit" / "VOC2012"
    ids = (voc / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    counts = np.zeros(256, np.int64)
    for i in ids:
        counts += np.bincount(
            np.array(Image.open(voc / "SegmentationClass" / f"{i}.png")).ravel(), minlength=256
        )
    expected = class_weights(torch.tensor(counts[:4]), method="median_frequency")
    assert torch.allclose(loss.weight, expected)
    assert json.loads(cache.read_text())["counts"] == counts[:4].tolist()
    assert build_loss_fn(tiny(), root=shapes_root, num_classes=4).weight is None


def test_cpu_threads_apply_during_the_run_only(tmp_path, shapes_root, monkeypatch):
    """Does cpu_threads set torch's thread count while training, and give the old one back?"""
    import labkit.train

    seen = []
    real_fit = labkit.train.fit

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(labkit.train, "fit", spy)
    torch.set_num_threads(2)
    try:
        run_experiment(
            tiny(data_root=str(shapes_root), epochs=1, cpu_threads=1),
            runs_root=tmp_path,
            progress=False,
        )
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_shapes_go_to_the_user_cache_when_the_runs_folder_cannot_be_written(
    tmp_path, monkeypatch, caplog
):
    """When <runs>/.data cannot be made, is the set drawn into $XDG_CACHE_HOME/labkit (with a
    warning naming the folder it could not write) and reused from there on the next call?"""
    blocked = tmp_path / "runs"
    blocked.write_text("a file where the runs folder would go\n")  # root ignores mode bits
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with caplog.at_level("WARNING", logger="labkit.experiment"):
        root = resolve_data_root(tiny(), runs_root=blocked)
    assert root.parent == tmp_path / "cache" / "labkit"
    assert str(blocked / ".data") in caplog.text
    meta = json.loads((root / "VOCdevkit" / "VOC2012" / "shapes.json").read_text())
    assert {k: meta["arguments"][k] for k in SHAPES} == SHAPES
    stamp = (root / "VOCdevkit" / "VOC2012" / "shapes.json").stat().st_mtime_ns
    assert resolve_data_root(tiny(), runs_root=blocked) == root
    assert (root / "VOCdevkit" / "VOC2012" / "shapes.json").stat().st_mtime_ns == stamp


def test_nowhere_to_draw_the_shapes_set_names_every_place_tried(tmp_path, monkeypatch):
    """With neither the runs folder nor the user cache writable, is one DatasetNotFoundError
    raised that names both places, says what to set, and keeps the OS error as its cause?"""
    from labkit.data import DatasetNotFoundError

    (tmp_path / "runs").write_text("not a folder\n")
    (tmp_path / "cache").write_text("not a folder either\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError) as info:
        resolve_data_root(tiny(), runs_root=tmp_path / "runs")
    message = str(info.value)
    assert str(tmp_path / "runs" / ".data") in message
    assert str(tmp_path / "cache" / "labkit") in message
    assert "LABKIT_DATA" in message and "XDG_CACHE_HOME" in message
    assert isinstance(info.value.__cause__, OSError)
