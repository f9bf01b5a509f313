"""Do configs load strictly, name the bad key, and do the presets cover every lab experiment?"""

from __future__ import annotations

import json

import pytest
import yaml

from labkit.config import (
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    available_presets,
    load_config,
    load_preset,
    parse_override,
    preset_dir,
    save_config,
)


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_and_load_round_trip(tmp_path, suffix):
    """Does a config written to YAML or JSON load back equal, every key spelled out?"""
    cfg = ExperimentConfig(
        name="x",
        lr=0.05,
        augment={"scale": (0.5, 1.5), "hflip": 0.0},
        model_options={"widths": [8, 16, 16, 32, 32]},
    )
    path = save_config(cfg, tmp_path / f"c{suffix}")
    assert load_config(path) == cfg
    data = json.loads(path.read_text()) if suffix == ".json" else yaml.safe_load(path.read_text())
    assert set(data) == {f for f in ExperimentConfig.__dataclass_fields__}


@pytest.mark.parametrize(
    "data,key",
    [
        ({"epochz": 3}, "epochz"),
        ({"augment": {"flip": 0.5}}, "augment.flip"),
        ({"shapes": {"size": 16}}, "shapes.size"),
        ({"augment": {"hflip": 1.5}}, "augment.hflip"),
        ({"augment": {"scale": [2.0, 1.0]}}, "augment.scale"),
        ({"lr": -0.1}, "lr"),
        ({"epochs": "ten"}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"model": "resnet9000"}, "model"),
        ({"model": "unet", "model_options": {"widths": [1]}}, "model_options.widths"),
        ({"schedule": "cosine", "schedule_options": {"power": 2}}, "schedule_options.power"),
        ({"loss": "focal", "loss_options": {"smooth": 1}}, "loss_options.smooth"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"dataset": "coco"}, "dataset"),
        ({"class_weighting": "sqrt"}, "class_weighting"),
        ({"device": "gpu0"}, "device"),
        ({"name": "../escape"}, "name"),
        ({"warmup_epochs": 5, "epochs": 5}, "warmup_epochs"),
        ({"max_train_images": 0}, "max_train_images"),
    ],
)
def test_bad_keys_and_values_name_the_key(data, key):
    """Does an unknown key or a bad value raise ConfigError whose message starts with the key?"""
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.from_dict(data)
    assert str(info.value).startswith(f"{key}:"), str(info.value)


def test_near_miss_keys_get_a_suggestion():
    """Does a misspelt key suggest the right one?"""
    with pytest.raises(ConfigError, match="Did you mean 'batch_size'"):
        ExperimentConfig.from_dict({"batchsize": 8})


def test_numbers_are_coerced_only_where_safe():
    """Is an int accepted for a float (lr: 1), but a float not for an int (epochs: 2.5)?"""
    assert ExperimentConfig.from_dict({"lr": 1}).lr == 1.0
    with pytest.raises(ConfigError, match="epochs"):
        ExperimentConfig.from_dict({"epochs": 2.5})
    assert ExperimentConfig.from_dict({"augment": {"scale": [1, 2]}}).augment.scale == (1.0, 2.0)


def test_extends_merges_sections_and_names_by_file(tmp_path):
    """Does extends take the base's keys, merge augment key by key, and name the run after its file?"""
    _write(
        tmp_path / "base.yaml",
        {"description": "base", "epochs": 7, "lr": 0.1, "augment": {"hflip": 0.0, "rotate": 5.0}},
    )
    child = _write(
        tmp_path / "child.yaml", {"extends": "base", "lr": 0.2, "augment": {"rotate": 10.0}}
    )
    cfg = load_config(child)
    assert (cfg.name, cfg.epochs, cfg.lr) == ("child", 7, 0.2)
    assert (cfg.augment.hflip, cfg.augment.rotate) == (0.0, 10.0)
    assert cfg.description == ""


def test_extends_merges_options_while_their_choice_stays(tmp_path):
    """Does a child that keeps the base's model change only the model options it names, and
    one that picks another schedule start that schedule's options afresh (the base's
    ``power`` is no option of cosine)?"""
    _write(
        tmp_path / "base.yaml",
        {
            "model": "deeplabv3_resnet50",
            "model_options": {"output_stride": 16, "pretrained_backbone": False},
            "schedule": "poly",
            "schedule_options": {"power": 0.9},
        },
    )
    same = load_config(
        _write(
            tmp_path / "deformable.yaml",
            {"extends": "base", "model_options": {"deformable": "v1"}},
        )
    )
    assert same.model_options == {
        "output_stride": 16,
        "pretrained_backbone": False,
        "deformable": "v1",
    }
    assert same.schedule_options == {"power": 0.9}
    other = load_config(_write(tmp_path / "cosine.yaml", {"extends": "base", "schedule": "cosine"}))
    assert other.schedule == "cosine" and other.schedule_options == {}
    assert other.model_options == {"output_stride": 16, "pretrained_backbone": False}


def test_extends_cycles_and_missing_bases_are_errors(tmp_path):
    """Are a circle of extends and an unknown base reported as ConfigError?"""
    _write(tmp_path / "a.yaml", {"extends": "b"})
    _write(tmp_path / "b.yaml", {"extends": "a"})
    with pytest.raises(ConfigError, match="circle"):
        load_config(tmp_path / "a.yaml")
    _write(tmp_path / "c.yaml", {"extends": "nowhere"})
    with pytest.raises(ConfigError, match="no config 'nowhere'"):
        load_config(tmp_path / "c.yaml")


def test_malformed_files_are_errors(tmp_path):
    """Are a missing file, broken YAML and a non-mapping file reported as ConfigError?"""
    with pytest.raises(ConfigError, match="no config file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("lr: [0.1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")


def test_overrides_use_dotted_keys_and_yaml_values():
    """Do overrides like augment.rotate=10 and model_options.output_stride=8 land where they say?"""
    cfg = load_preset("baseline_quick")
    items = ["epochs=2", "augment.rotate=10", "lr=1e-2", "class_weighting=null"]
    new = apply_overrides(cfg, dict(parse_override(t) for t in items))
    assert (new.epochs, new.augment.rotate, new.lr, new.class_weighting) == (2, 10.0, 0.01, None)
    assert cfg.epochs != 2  # the original is untouched
    deeplab = apply_overrides(load_preset("deeplab_r50_quick"), {"model_options.output_stride": 8})
    assert deeplab.model_options["output_stride"] == 8
    with pytest.raises(ConfigError, match="^augmnt: unknown key"):
        apply_overrides(cfg, {"augmnt.rotate": 3})
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("epochs")


def test_every_preset_loads():
    """Does every file in labkit/presets/ load and validate, with a description?"""
    names = available_presets()
    assert "baseline_quick" in names
    for name in names:
        cfg = load_preset(name)
        assert cfg.name == name and cfg.description, name
        assert cfg.profile == ("quick" if name.endswith("_quick") else "full"), name
        assert (cfg.dataset == "shapes") == (cfg.profile == "quick"), name
    with pytest.raises(ConfigError, match="unknown preset"):
        load_preset("nope")


def test_presets_cover_the_labs_experiments():
    """Are the PA3 chain, the DeepLab experiments and the DCN trio all there, in both profiles?"""
    names = set(available_presets())
    for step in ("baseline", "cosine", "augment", "weighted", "improved", "resnet18", "unet"):
        assert {f"{step}_quick", f"{step}_full"} <= names, step
    r50 = {n for n in names if n.startswith("deeplab_r50_") and n.endswith("_full")}
    assert len(r50 - {"deeplab_r50_full"}) >= 4  # at least four schedule/lr/crop/optimizer runs
    assert {"deeplab_r101_pretrained_full", "deeplab_r101_scratch_full"} <= names
    for kind in ("conv", "v1", "v2"):
        assert {f"dcn_{kind}_quick", f"dcn_{kind}_full"} <= names
    assert load_preset("deeplab_r101_pretrained_full").model_options["pretrained_backbone"]
    assert not load_preset("deeplab_r101_scratch_full").model_options["pretrained_backbone"]
    dcn = [load_preset(f"dcn_{k}_full").model_options["deformable"] for k in ("conv", "v1", "v2")]
    assert dcn == [None, "v1", "v2"]


def test_pretrained_backbone_is_true_false_or_shapes():
    """Does the config take true, false and "shapes" for pretrained_backbone, and name the
    three when given anything else (a typo, a number)?"""
    base = load_preset("resnet18_quick")
    for value in (True, False, "shapes"):
        cfg = apply_overrides(base, {"model_options.pretrained_backbone": value})
        assert cfg.model_options["pretrained_backbone"] == value
    for bad in ("Shapes", "imagenet", 1):
        with pytest.raises(ConfigError, match="model_options.pretrained_backbone: expected true"):
            apply_overrides(base, {"model_options.pretrained_backbone": bad})


def test_pa3_chain_changes_one_thing_per_step():
    """Does each PA3 step differ from the one before in exactly the ingredient it adds?"""
    chain = ["baseline", "cosine", "augment", "weighted"]
    for profile in ("quick", "full"):
        dicts = [load_preset(f"{s}_{profile}").to_dict() for s in chain]
        changed = [
            sorted(k for k in b if a[k] != b[k] and k not in ("name", "description"))
            for a, b in zip(dicts, dicts[1:])
        ]
        assert changed == [["schedule"], ["augment"], ["class_weighting"]], profile


def test_quick_presets_build_their_models():
    """Does every quick preset's model build with its options (no weights needed)?"""
    from labkit.models import build_model

    seen = set()
    for name in available_presets():
        cfg = load_preset(name)
        key = (cfg.model, json.dumps(cfg.model_options, sort_keys=True))
        if cfg.profile != "quick" or key in seen:
            continue
        seen.add(key)
        # never ImageNet's weights; the Shapes-pretrained encoder (built on first use, minutes)
        # is tested in tests/models/test_pretrain.py, so here the same network is built bare
        pretrained = cfg.model_options.get("pretrained_backbone")
        assert pretrained is None or pretrained is False or pretrained == "shapes", name
        options = {**cfg.model_options, "pretrained_backbone": False} if pretrained else {}
        build_model(
            cfg.model, num_classes=cfg.shapes.num_classes, **{**cfg.model_options, **options}
        )
    assert preset_dir().name == "presets"
