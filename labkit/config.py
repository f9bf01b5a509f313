"""Experiment configurations: one dataclass, YAML/JSON files and named presets.

An experiment is an :class:`ExperimentConfig`; the labs' experiments are small YAML files in
``labkit/presets/`` (presets), most of which say only how they differ from another one::

    # labkit/presets/cosine_quick.yaml
    extends: baseline_quick
    description: PA3 step 2, the baseline with a cosine learning-rate schedule
    schedule: cosine

Loading is strict: an unknown key or a value of the wrong type or range raises
:class:`ConfigError` naming the key (``augment.hflip: expected a probability in [0, 1];
got 1.5``). Overrides from the command line use the same dotted keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.resources
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from labkit.errors import LabkitError

__all__ = [
    "AugmentOptions",
    "ConfigError",
    "ExperimentConfig",
    "ShapesOptions",
    "apply_overrides",
    "available_presets",
    "load_config",
    "load_preset",
    "parse_override",
    "preset_dir",
    "save_config",
]

DATASETS = ("shapes", "voc", "ade20k")
OPTIMIZERS = ("sgd", "adam", "adamw")
PROFILES = ("quick", "full")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class ConfigError(LabkitError, ValueError):
    """A configuration key is unknown or its value is out of type or range."""


@dataclass
class ShapesOptions:
    """How the Shapes set is drawn when ``dataset: shapes`` (see ``labkit data shapes``)."""

    num_train: int = 1000
    num_val: int = 200
    size: int = 128
    num_classes: int = 21
    deformation: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        _coerce_fields(self)


@dataclass
class AugmentOptions:
    """Training augmentation (see :func:`labkit.data.transforms.train_transforms`)."""

    scale: tuple[float, float] = (0.5, 2.0)
    hflip: float = 0.5
    rotate: float = 0.0
    blur: float = 0.0

    def __post_init__(self) -> None:
        _coerce_fields(self)


@dataclass
class ExperimentConfig:
    """Everything that defines one training run.

    Attributes:
        name: the run's name and folder (``runs/<name>``).
        description: one line on what the experiment tests.
        profile: ``quick`` (CPU, Shapes, minutes) or ``full`` (GPU, VOC/ADE20K).
        dataset: ``shapes``, ``voc`` or ``ade20k``.
        data_root: folder holding ``VOCdevkit`` / ``ADEChallengeData2016``; ``None`` uses
            ``$LABKIT_DATA`` (for Shapes: a set there, else one drawn into the runs folder).
        train_split, val_split: split names; ``None`` picks the dataset's usual ones.
        max_train_images, max_val_images: use only the first N images (``None``: all).
        shapes: how the Shapes set is drawn.
        model: a name from :func:`labkit.models.available_models`.
        model_options: keyword options of that model (``output_stride: 8``).
        crop_size: side of the square training crops.
        eval_size: resize validation images' short side to this (``None``: full size).
        batch_size, val_batch_size: images per batch and process (validation: ``None`` =
            ``batch_size`` on Shapes, 1 on VOC/ADE20K, whose images differ in size).
        epochs: passes over the training set.
        optimizer: ``sgd``, ``adam`` or ``adamw``; lr, momentum (SGD) and weight_decay.
        offset_lr_mult: learning-rate factor of deformable offset branches (``None``: each
            layer's own).
        schedule: ``poly``, ``step``, ``cosine`` or ``constant``, stepped per iteration;
            schedule_options (``power``, ``step_size``, ``gamma``, ``min_lr``) and
            warmup_epochs (linear warmup, may be fractional).
        augment: training augmentation.
        class_weighting: ``None``, ``inverse``, ``median_frequency``, ``sqrt_inverse`` or ``log``.
        loss: ``ce``, ``dice``, ``focal`` or ``ce+dice``; loss_options its options.
        seed: seeds data order, augmentation and initialisation.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        amp, channels_last: ``None`` = on for CUDA, off elsewhere.
        gpu_memory_gib: cap this process's GPU memory (shared servers).
        cpu_threads: threads torch uses on the CPU during the run (``None``: torch's default,
            one per core). Small networks gain little from more threads, and on a busy
            machine extra threads wait on each other, so the quick presets use 1.
        num_workers: data loader processes.
        checkpoint_every: also checkpoint every N iterations (0: per epoch only).
        tensorboard: write TensorBoard logs into the run folder.
    """

    name: str = "experiment"
    description: str = ""
    profile: str = "quick"
    dataset: str = "shapes"
    data_root: str | None = None
    train_split: str | None = None
    val_split: str | None = None
    max_train_images: int | None = None
    max_val_images: int | None = None
    shapes: ShapesOptions = field(default_factory=ShapesOptions)
    model: str = "baseline_fcn"
    model_options: dict[str, Any] = field(default_factory=dict)
    crop_size: int = 128
    eval_size: int | None = None
    batch_size: int = 16
    val_batch_size: int | None = None
    epochs: int = 10
    optimizer: str = "adamw"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    offset_lr_mult: float | None = None
    schedule: str = "poly"
    schedule_options: dict[str, Any] = field(default_factory=dict)
    warmup_epochs: float = 0.0
    augment: AugmentOptions = field(default_factory=AugmentOptions)
    class_weighting: str | None = None
    loss: str = "ce"
    loss_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None
    channels_last: bool | None = None
    gpu_memory_gib: float | None = None
    cpu_threads: int | None = None
    num_workers: int = 0
    checkpoint_every: int = 0
    tensorboard: bool = False

    def __post_init__(self) -> None:
        _coerce_fields(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (tuples as lists), ready for YAML or JSON."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        """Build a config from a mapping, strictly (see :class:`ConfigError`)."""
        return _build(cls, data, prefix="")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if origin is tuple:
        return f"a list of {len(args)} {_describe(args[0])}s"
    if origin is dict or hint is dict:
        return "a mapping"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[hint]


def _coerce(key: str, value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    bad = ConfigError(f"{key}: expected {_describe(hint)}; got {value!r}.")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(key, value, arg)
            except ConfigError:
                pass
        raise bad
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise bad
        return _build(hint, value, prefix=f"{key}.")
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise bad
        return tuple(_coerce(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict or hint is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise bad
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # PyYAML reads 1e-4 (no dot) as a string, a trap in every config that has an lr.
        if isinstance(value, str) and _FLOAT.match(value.strip()):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    raise bad


def _build(cls: type, data: Any, *, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{prefix.rstrip('.') or 'config'}: expected a mapping of keys to values; got {data!r}."
        )
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise _unknown_key(f"{prefix}{unknown[0]}", unknown[0], names)
    try:
        return cls(**data)
    except ConfigError as err:
        if prefix and not str(err).startswith(prefix):
            raise ConfigError(f"{prefix}{err}") from None
        raise


def _unknown_key(key: str, name: str, names: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name.lower().replace("-", "_"), names, n=1, cutoff=0.7)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{key}: unknown key; expected one of {names}.{hint}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce_fields(obj: Any) -> None:
    """Check every field's type (converting int to float, list to tuple), then its range."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        setattr(obj, f.name, _coerce(f.name, getattr(obj, f.name), hints[f.name]))
    _validate(obj)


def _check(ok: bool, key: str, expected: str, got: Any) -> None:
    if not ok:
        raise ConfigError(f"{key}: expected {expected}; got {got!r}.")


def _validate(cfg: Any) -> None:
    if isinstance(cfg, ShapesOptions):
        _validate_shapes(cfg)
    elif isinstance(cfg, AugmentOptions):
        _validate_augment(cfg)
    else:
        _validate_experiment(cfg)


def _validate_shapes(cfg: ShapesOptions) -> None:
    _check(cfg.num_train >= 1, "num_train", "at least 1 image", cfg.num_train)
    _check(cfg.num_val >= 1, "num_val", "at least 1 image", cfg.num_val)
    _check(cfg.size >= 32, "size", "a side of at least 32 pixels", cfg.size)
    _check(2 <= cfg.num_classes <= 255, "num_classes", "2 to 255 classes", cfg.num_classes)
    _check(0.0 <= cfg.deformation <= 1.0, "deformation", "a number in [0, 1]", cfg.deformation)
    _check(cfg.seed >= 0, "seed", "a seed >= 0", cfg.seed)


def _validate_augment(cfg: AugmentOptions) -> None:
    lo, hi = cfg.scale
    _check(0 < lo <= hi, "scale", "(low, high) with 0 < low <= high", list(cfg.scale))
    _check(0.0 <= cfg.hflip <= 1.0, "hflip", "a probability in [0, 1]", cfg.hflip)
    _check(0.0 <= cfg.blur <= 1.0, "blur", "a probability in [0, 1]", cfg.blur)
    _check(cfg.rotate >= 0, "rotate", "an angle >= 0 degrees", cfg.rotate)


def _validate_experiment(cfg: ExperimentConfig) -> None:
    # Each group raises at its first bad key; their order decides which error a config with
    # several bad keys gets, so it stays as it was.
    _validate_names(cfg)
    _validate_counts(cfg)
    _validate_optimization(cfg)
    _validate_loss(cfg)
    _check(bool(_DEVICE.match(cfg.device)), "device", "auto, cpu, mps, cuda or cuda:N", cfg.device)
    _check(
        cfg.gpu_memory_gib is None or cfg.gpu_memory_gib > 0,
        "gpu_memory_gib",
        "null or a number of GiB > 0",
        cfg.gpu_memory_gib,
    )


def _validate_names(cfg: ExperimentConfig) -> None:
    """The run's name, profile, dataset, model and the model's options."""
    from labkit.models import available_models, model_options

    _check(
        bool(_NAME.match(cfg.name)),
        "name",
        "a folder name of letters, digits, '.', '_' and '-'",
        cfg.name,
    )
    _check(cfg.profile in PROFILES, "profile", f"one of {list(PROFILES)}", cfg.profile)
    _check(cfg.dataset in DATASETS, "dataset", f"one of {list(DATASETS)}", cfg.dataset)
    _check(cfg.model in available_models(), "model", f"one of {available_models()}", cfg.model)
    options = model_options(cfg.model)
    for key in cfg.model_options:
        _check(
            key in options,
            f"model_options.{key}",
            f"an option of model {cfg.model!r}: one of {sorted(options)}",
            key,
        )
    pretrained = cfg.model_options.get("pretrained_backbone", False)
    _check(
        pretrained is True or pretrained is False or pretrained == "shapes",
        "model_options.pretrained_backbone",
        "true (ImageNet weights), false (from scratch) or shapes (pretrained on generated "
        "Shapes images, ResNet-18 models)",
        pretrained,
    )


def _validate_counts(cfg: ExperimentConfig) -> None:
    """Image counts and sizes, batch sizes, epochs, workers, threads and the seed."""
    for key in ("max_train_images", "max_val_images", "eval_size", "val_batch_size", "cpu_threads"):
        value = getattr(cfg, key)
        _check(value is None or value >= 1, key, "null or at least 1", value)
    for key in ("crop_size", "batch_size", "epochs"):
        _check(getattr(cfg, key) >= 1, key, "at least 1", getattr(cfg, key))
    for key in ("num_workers", "checkpoint_every", "seed"):
        _check(getattr(cfg, key) >= 0, key, "at least 0", getattr(cfg, key))


def _validate_optimization(cfg: ExperimentConfig) -> None:
    """The optimizer and its settings, the schedule, its options and the warm-up."""
    from labkit.schedules import SCHEDULERS

    _check(cfg.optimizer in OPTIMIZERS, "optimizer", f"one of {list(OPTIMIZERS)}", cfg.optimizer)
    _check(cfg.lr > 0, "lr", "a learning rate > 0", cfg.lr)
    _check(0 <= cfg.momentum < 1, "momentum", "a number in [0, 1)", cfg.momentum)
    _check(cfg.weight_decay >= 0, "weight_decay", "a number >= 0", cfg.weight_decay)
    _check(
        cfg.offset_lr_mult is None or cfg.offset_lr_mult > 0,
        "offset_lr_mult",
        "null or a factor > 0",
        cfg.offset_lr_mult,
    )
    _check(cfg.schedule in SCHEDULERS, "schedule", f"one of {sorted(SCHEDULERS)}", cfg.schedule)
    for key in cfg.schedule_options:
        _check(
            key in SCHEDULERS[cfg.schedule],
            f"schedule_options.{key}",
            f"an option of schedule {cfg.schedule!r}: one of {list(SCHEDULERS[cfg.schedule])}",
            key,
        )
    _check(cfg.warmup_epochs >= 0, "warmup_epochs", "a number >= 0", cfg.warmup_epochs)
    _check(
        cfg.warmup_epochs < cfg.epochs,
        "warmup_epochs",
        f"fewer than epochs={cfg.epochs}",
        cfg.warmup_epochs,
    )


def _validate_loss(cfg: ExperimentConfig) -> None:
    """The class weighting, the loss and the loss's options."""
    from labkit.losses import CLASS_WEIGHT_METHODS, LOSS_OPTIONS, LOSSES

    _check(
        cfg.class_weighting is None or cfg.class_weighting in CLASS_WEIGHT_METHODS,
        "class_weighting",
        f"null or one of {list(CLASS_WEIGHT_METHODS)}",
        cfg.class_weighting,
    )
    _check(cfg.loss in LOSSES, "loss", f"one of {list(LOSSES)}", cfg.loss)
    allowed = LOSS_OPTIONS[cfg.loss]
    for key in cfg.loss_options:
        _check(
            key in allowed,
            f"loss_options.{key}",
            f"an option of loss {cfg.loss!r}: one of {list(allowed)}",
            key,
        )


def preset_dir() -> Path:
    """The folder of the named presets: ``labkit/presets/``, shipped inside the package (so an
    installed wheel has them as well as a source checkout)."""
    return Path(str(importlib.resources.files("labkit") / "presets"))


def available_presets() -> list[str]:
    """Names of the presets in :func:`preset_dir`, sorted."""
    return sorted(p.stem for p in preset_dir().glob("*.yaml"))


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}.") from err
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise ConfigError(
            f"config file {path} is not valid {kind}: {str(err).splitlines()[0]}"
        ) from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of keys to values; got {type(data).__name__}."
        )
    return data


# The options of a choice belong to that choice: a config that picks another model, schedule
# or loss than its base starts its options afresh; one that keeps the choice changes only the
# options it names.
_OPTIONS_OF = {"model_options": "model", "schedule_options": "schedule", "loss_options": "loss"}


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: mappings merged key by key (``*_options`` only while their
    choice stays the same), every other value replaced."""
    fresh = {
        key
        for key, owner in _OPTIONS_OF.items()
        if top.get(owner, base.get(owner)) != base.get(owner)
    }
    out = {k: v for k, v in base.items() if k not in fresh}
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _resolve(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if path in seen:
        chain = " -> ".join(p.stem for p in (*seen, path))
        raise ConfigError(f"extends: the configs extend each other in a circle ({chain}).")
    data = _read_mapping(path)
    parent = data.pop("extends", None)
    data.setdefault("name", path.stem)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError(
            f"extends: expected the name of a preset or a config file; got {parent!r} in {path}."
        )
    candidates = [
        path.parent / parent,
        path.parent / f"{parent}.yaml",
        preset_dir() / f"{parent}.yaml",
    ]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise ConfigError(
            f"extends: no config {parent!r} next to {path} or among the presets "
            f"({', '.join(available_presets())})."
        )
    base = _resolve(found.resolve(), (*seen, path))
    for key in ("name", "description"):  # these describe one file, not its descendants
        base.pop(key, None)
    return _merge(base, data)


def load_config(path: str | Path) -> ExperimentConfig:
    """Read a config from a YAML or JSON file, following ``extends:``.

    ``extends: NAME`` takes another config (a file next to this one, or a preset) as the
    base; keys here replace its keys, and mappings (``augment``, ``shapes``, the
    ``*_options``) are merged key by key, save that a config choosing another model,
    schedule or loss than its base starts that choice's options afresh.
    ``name`` defaults to the file name without extension.

    Raises:
        ConfigError: if the file is missing or malformed, or a key or value is bad.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"no config file {path}; pass a YAML/JSON file or --preset NAME "
            f"(presets: {', '.join(available_presets())})."
        )
    return ExperimentConfig.from_dict(_resolve(path.resolve(), ()))


def load_preset(name: str) -> ExperimentConfig:
    """Load the preset ``labkit/presets/<name>.yaml`` (see :func:`available_presets`).

    Raises:
        ConfigError: if there is no such preset.
    """
    path = preset_dir() / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; expected one of {available_presets()}.")
    return load_config(path)


def save_config(cfg: ExperimentConfig, path: str | Path) -> Path:
    """Write ``cfg`` as YAML (or JSON for a ``.json`` path), every key spelled out."""
    path = Path(path)
    data = cfg.to_dict()
    text = (
        json.dumps(data, indent=2)
        if path.suffix == ".json"
        else yaml.safe_dump(data, sort_keys=False)
    )
    path.write_text(text)
    return path


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``"key=value"`` into the key and the YAML-parsed value (``"lr=0.01"`` → 0.01).

    Raises:
        ConfigError: if there is no ``=``.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"expected an override of the form KEY=VALUE (e.g. augment.rotate=10); got {text!r}."
        )
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


def apply_overrides(cfg: ExperimentConfig, overrides: dict[str, Any]) -> ExperimentConfig:
    """A copy of ``cfg`` with dotted keys replaced (``{"augment.rotate": 10, "lr": 0.01}``).

    Raises:
        ConfigError: on an unknown key or a bad value.
    """
    data = cfg.to_dict()
    for key, value in overrides.items():
        parts = key.split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            where = ".".join(parts[: i + 1])
            if part not in node:
                raise _unknown_key(where, part, list(node))
            if not isinstance(node[part], dict):
                raise ConfigError(f"{where}: not a section with keys; cannot set {key!r}.")
            node = node[part]
        node[parts[-1]] = value
    return ExperimentConfig.from_dict(data)
