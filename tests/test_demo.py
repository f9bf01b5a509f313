"""Does the demo generate, train, evaluate and write what it promises?"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from labkit.demo import DemoConfig, run_demo
from labkit.metrics import scores_from_matrix
from labkit.models import build_model


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    cfg = DemoConfig(num_train=16, num_val=8, size=48, epochs=2, batch_size=8)
    return run_demo(tmp_path_factory.mktemp("demo"), config=cfg, progress=False)


def test_demo_writes_every_file(tiny_demo):
    """Are the figures real PNGs and the history one row per epoch?"""
    for key in ("figure", "curves"):
        with Image.open(tiny_demo.files[key]) as img:
            assert img.format == "PNG" and img.size[0] > 100
    lines = tiny_demo.files["history"].read_text().strip().splitlines()
    assert len(lines) == 1 + tiny_demo.config.epochs


def test_demo_metrics_match_the_matrix(tiny_demo):
    """Do the saved metrics agree with scores recomputed from the saved confusion matrix?"""
    saved = json.loads(tiny_demo.files["metrics"].read_text())
    recomputed = scores_from_matrix(tiny_demo.scores["matrix"])
    assert saved["miou"] == pytest.approx(recomputed["miou"])
    assert saved["pixel_accuracy"] == pytest.approx(recomputed["pixel_accuracy"])
    # 8 val images of 48² minus void pixels were all counted.
    counted = int(tiny_demo.scores["matrix"].sum())
    assert 0.8 * 8 * 48 * 48 < counted < 8 * 48 * 48
    assert list(saved["iou"]) == list(tiny_demo.classes)


def test_demo_trained_the_model(tiny_demo):
    """Did training lower the loss, as a run that learns anything must?"""
    rows = tiny_demo.history.rows
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    model = build_model(tiny_demo.config.model, num_classes=tiny_demo.config.num_classes)
    assert tiny_demo.parameters == sum(p.numel() for p in model.parameters())
