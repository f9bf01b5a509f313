"""Does the demo generate, train, evaluate and write what it promises?"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from labkit.cli import main
from labkit.demo import run_demo
from labkit.metrics import scores_from_matrix
from labkit.models import build_model

TINY = {
    "epochs": 2,
    "shapes.num_train": 16,
    "shapes.num_val": 8,
    "shapes.size": 48,
    "crop_size": 48,
    "batch_size": 8,
}


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    return run_demo(tmp_path_factory.mktemp("demo"), overrides=TINY, progress=False)


def test_demo_writes_every_file(tiny_demo):
    """Are the figures real PNGs and the history one row per epoch?"""
    for key in ("predictions", "curves", "confusion"):
        with Image.open(tiny_demo.files[key]) as img:
            assert img.format == "PNG" and img.size[0] > 100
    lines = tiny_demo.files["history"].read_text().strip().splitlines()
    assert len(lines) == 1 + tiny_demo.config.epochs


def test_demo_scores_match_the_matrix(tiny_demo):
    """Do the reported scores follow from the confusion matrix of every validation pixel?"""
    recomputed = scores_from_matrix(tiny_demo.scores["matrix"])
    assert tiny_demo.scores["miou"] == pytest.approx(recomputed["miou"])
    counted = int(tiny_demo.scores["matrix"].sum())
    assert 0.7 * 8 * 48 * 48 < counted < 8 * 48 * 48  # all but the void band
    saved = json.loads(tiny_demo.files["metrics"].read_text())
    assert saved["epochs"] == 2


def test_demo_trained_the_model(tiny_demo):
    """Did training lower the loss, and is the reported size the model's real parameter count?"""
    rows = tiny_demo.history.rows
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    model = build_model(
        tiny_demo.config.model, num_classes=len(tiny_demo.classes), **tiny_demo.config.model_options
    )
    assert tiny_demo.parameters == sum(p.numel() for p in model.parameters())


def test_demo_command_prints_the_table(tmp_path, capsys):
    """Does `labkit demo` print the metrics table with every class named?"""
    args = ["demo", "--out", str(tmp_path), "--no-progress", "--epochs", "1"]
    for key, value in TINY.items():
        if key != "epochs":
            args += ["--set", f"{key}={value}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| miou |" in out and "| background |" in out
