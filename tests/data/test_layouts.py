"""labkit.data.layouts: one table of where each dataset lives and which reader opens it."""

import pytest

from labkit.config import DATASETS
from labkit.data import ADE20K, VOCSegmentation
from labkit.data.layouts import LAYOUTS, detect_layout, open_split
from labkit.experiment import split_names
from labkit.labs import lab_config
from tests.data_trees import write_ade, write_voc


def test_every_config_dataset_has_a_layout():
    assert set(LAYOUTS) == set(DATASETS)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("trees")
    write_voc(root / "voc")
    write_ade(root / "ade")
    return root


def test_each_layout_is_detected_and_opened_by_its_reader(trees, tmp_path):
    """Is a VOC tree found as voc and an ADE20K tree as ade20k (an empty folder as neither),
    and does open_split give each its own reader, "train"/"val" turned into the layout's
    split names, with the same images the reader gives by itself?"""
    assert detect_layout(trees / "voc") == "voc" and detect_layout(trees / "ade") == "ade20k"
    assert detect_layout(tmp_path) is None
    voc = open_split("voc", trees / "voc", "val")
    ade = open_split("ade20k", trees / "ade", "val")
    assert type(voc) is VOCSegmentation and type(ade) is ADE20K
    direct = ADE20K(trees / "ade", split="validation")
    assert len(ade) == len(direct) and (ade[0][1] == direct[0][1]).all()
    assert len(voc) == len(VOCSegmentation(trees / "voc", split="val"))


def test_split_names_follow_the_layout_unless_the_config_names_them():
    assert split_names(lab_config("baseline")) == ("train", "val")
    cfg = lab_config("baseline")
    cfg.dataset = "ade20k"
    assert split_names(cfg) == ("training", "validation")
    cfg.val_split = "val2"
    assert split_names(cfg)[1] == "val2"
