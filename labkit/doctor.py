"""``labkit doctor``: is this machine ready for a course?

Each check opens what a lab or the grader opens, with the same functions, so it cannot pass a
machine on which a lab then fails for one of these reasons: pins from the installed labkit's
metadata, datasets through :func:`labkit.experiment.build_datasets` for every full preset, weights
through :func:`labkit.models.backbones.load_pretrained_resnet`, bubblewrap through the grader's own
probe, ``nbgrader_config.py`` into nbgrader's ``CourseDirectory``. Rows are ``ok``, ``warn`` (works,
not as the course expects) or ``FAIL`` (a lab or the grader lacks something); data and weights only
full runs use FAIL under ``profile="full"`` and warn under ``"quick"``. The fixes cite the steps of
``docs/deploy.md``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from packaging.requirements import Requirement

from labkit.config import ExperimentConfig, available_presets, load_preset
from labkit.data.layouts import LAYOUTS
from labkit.errors import UsageError, innermost
from labkit.tables import markdown_table

log = logging.getLogger(__name__)

__all__ = [
    "FAIL",
    "OK",
    "WARN",
    "Check",
    "check_bwrap",
    "check_course",
    "check_cuda",
    "check_datasets",
    "check_presets",
    "check_versions",
    "check_weights",
    "exit_code",
    "format_table",
    "run_checks",
]

OK, WARN, FAIL = "ok", "warn", "FAIL"
_GIB = 1 << 30
_MAX_ERROR = 300
# DeepLab v3-R50, 512² crops, batch 8 (the lab 07 runs) peaks at 4.9 GiB in float32, 3.1
# with AMP (benchmarks/bench_gpu.py); with less free memory a full run is likely to OOM.
MIN_FREE_GIB = 5.0
# Pinned packages get a row of their own; other requirements share one.
_OWN_ROW = ("torch", "torchvision", "nbgrader")
# The datasets a full preset reads from $LABKIT_DATA (the Shapes set is drawn, not read).
_DATASETS = {name: (LAYOUTS[name].title, LAYOUTS[name].folder) for name in ("voc", "ade20k")}


@dataclass(frozen=True)
class Check:
    """One row of the doctor's table.

    Attributes:
        name: what was checked (``torch``, ``CUDA cuda:0``, ``dataset Pascal VOC``).
        status: :data:`OK`, :data:`WARN` or :data:`FAIL`.
        found: what the check saw, with the deepest error's type and message on a problem.
        fix: what to do (empty when ``ok``).
    """

    name: str
    status: str
    found: str
    fix: str = ""


def _error(exc: BaseException) -> str:
    """``Type: message``, then the deepest cause's, which says what really went wrong."""

    def short(e: BaseException) -> str:
        # load_state_dict lists every missing key: the first few say enough in a table cell
        text = " ".join(f"{type(e).__name__}: {e}".split())
        return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"

    deepest = innermost(exc)
    return short(exc) + (f" (caused by {short(deepest)})" if deepest is not exc else "")


def _requirements() -> list[Requirement]:
    reqs = [Requirement(r) for r in importlib.metadata.requires("labkit") or []]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def check_versions(*, requirements: Sequence[str] | None = None) -> list[Check]:
    """torch, torchvision and nbgrader against labkit's pins, then every other requirement.

    Args:
        requirements (Sequence[str] | None): requirement strings (``"torch==2.14.1"``); ``None``
            reads those of the installed labkit (``importlib.metadata.requires("labkit")``), extras
            left out.

    Returns:
        A row each for torch, torchvision, nbgrader (FAIL: not importable or off the pin),
        one ``other requirements`` row (FAIL: one missing; warn: one out of its range).
    """
    if requirements is None:
        try:
            reqs = _requirements()
        except importlib.metadata.PackageNotFoundError as exc:
            return [
                Check(
                    "labkit",
                    FAIL,
                    f"not installed as a package, no pins ({_error(exc)})",
                    "pip install labkit (docs/deploy.md, step 1)",
                )
            ]
    else:
        reqs = [Requirement(r) for r in requirements]
    rows, missing, off = [], [], []
    for req in reqs:
        if req.name in _OWN_ROW:
            try:
                version = importlib.import_module(req.name).__version__
            except Exception as exc:  # a broken install raises anything on import
                rows.append(
                    Check(
                        req.name,
                        FAIL,
                        f"cannot import {req.name}: {_error(exc)}",
                        f'pip install "{req}"',
                    )
                )
                continue
            good = req.specifier.contains(version, prereleases=True)
            rows.append(
                Check(
                    req.name,
                    OK if good else FAIL,
                    f"{version} (labkit asks for {req})",
                    "" if good else f'pip install "{req}" (docs/deploy.md, step 1)',
                )
            )
            continue
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(str(req))
            continue
        if not req.specifier.contains(version, prereleases=True):
            off.append(f"{req.name} {version} (asks {req.specifier})")
    found = "; ".join(
        [f"missing: {', '.join(missing)}"] * bool(missing)
        + [f"outside labkit's range: {', '.join(off)}"] * bool(off)
    )
    status = FAIL if missing else WARN if off else OK
    fix = (
        "pip install " + " ".join(f'"{r}"' for r in missing)
        if missing
        else "pip install labkit again, for the versions it was tested with"
        if off
        else ""
    )
    return [
        *rows,
        Check(
            "other requirements",
            status,
            found or f"all {len(reqs) - len(rows)} present in range",
            fix,
        ),
    ]


def check_cuda(*, min_free_gib: float = MIN_FREE_GIB) -> list[Check]:
    """Every visible CUDA device and its free memory (``torch.cuda.mem_get_info``).

    Args:
        min_free_gib (float): less free memory than this on a device is a ``warn``.

    Returns:
        A row per device; one warn row when there is none (quick runs and grading use the CPU).
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    where = f"CUDA_VISIBLE_DEVICES={visible}" if visible is not None else "all devices visible"
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        return [
            Check(
                "CUDA",
                WARN,
                f"no CUDA device ({where}; torch {torch.__version__} is {build})",
                "the quick profile and grading run on the CPU; the full "
                "profile needs a GPU server with an NVIDIA driver (docs/deploy.md, step 4)",
            )
        ]
    rows = []
    for i in range(torch.cuda.device_count()):
        try:
            free, total = torch.cuda.mem_get_info(i)
        except Exception as exc:  # a device the driver lists but cannot open
            rows.append(
                Check(
                    f"CUDA cuda:{i}",
                    WARN,
                    f"cannot query: {_error(exc)}",
                    "check nvidia-smi; pick other devices with CUDA_VISIBLE_DEVICES",
                )
            )
            continue
        found = (
            f"{torch.cuda.get_device_name(i)}: {free / _GIB:.1f} of {total / _GIB:.1f} GiB "
            f"free ({where})"
        )
        low = free < min_free_gib * _GIB
        rows.append(
            Check(
                f"CUDA cuda:{i}",
                WARN if low else OK,
                found,
                f"a full run needs about {min_free_gib:g} GiB free: give each user "
                "their own GPU with CUDA_VISIBLE_DEVICES (docs/deploy.md, step 4)"
                if low
                else "",
            )
        )
    return rows


def check_bwrap() -> list[Check]:
    """Whether bubblewrap isolates student code here (the grader's probe, run once).

    Returns:
        One row: ok, or warn (grading then runs with resource limits alone).
    """
    # The probe runs the real sandbox command; calling it (not a copy) keeps the doctor and
    # the grader in agreement, and it gives the reason, which bwrap_available() drops.
    from labkit.grading.bwrap import probe

    works, sized, why = probe()
    if works:
        return [
            Check(
                "bubblewrap",
                OK,
                "the sandbox command runs"
                + (
                    ""
                    if sized
                    else " (without --size, so the scratch folder, /tmp and /dev/shm have no total "
                    "size cap; each file is still capped)"
                ),
            )
        ]
    fix = (
        "apt-get install bubblewrap"
        if shutil.which("bwrap") is None
        else "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; "
        "Ubuntu 24.04: kernel.apparmor_restrict_unprivileged_userns=0)"
    )
    return [
        Check(
            "bubblewrap",
            WARN,
            f"{why}; grading runs with limits alone, not sandboxed",
            f"{fix} (docs/deploy.md, step 5)",
        )
    ]


def _load_all() -> tuple[dict[str, ExperimentConfig], dict[str, str]]:
    configs, errors = {}, {}
    for name in available_presets():
        try:
            configs[name] = load_preset(name)
        except Exception as exc:  # any failure is the row's finding, not the doctor's crash
            errors[name] = _error(exc)
    return configs, errors


def check_presets() -> list[Check]:
    """Every preset loads (:func:`labkit.config.load_preset`).

    Returns:
        One row: FAIL when there are none or one does not load.
    """
    from labkit.config import preset_dir

    configs, errors = _load_all()
    if errors:
        return [
            Check(
                "presets",
                FAIL,
                f"{len(errors)} of {len(configs) + len(errors)} do not "
                "load: " + "; ".join(f"{n}: {e}" for n, e in errors.items()),
                "reinstall labkit (pip install --force-reinstall --no-deps labkit)",
            )
        ]
    if not configs:
        return [
            Check(
                "presets",
                FAIL,
                f"no presets in {preset_dir()}",
                "reinstall labkit from a wheel that ships labkit/presets/*.yaml",
            )
        ]
    return [Check("presets", OK, f"all {len(configs)} load from {preset_dir()}")]


def _users(names: Iterable[str]) -> str:
    names = sorted(names)
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def check_datasets(
    configs: Mapping[str, ExperimentConfig] | None = None, *, profile: str = "quick"
) -> list[Check]:
    """Open the VOC and ADE20K trees the full presets train on, as a lab does.

    Args:
        configs (Mapping[str, ExperimentConfig] | None): presets by name (``None``: load them all).
        profile (str): a dataset that does not open is FAIL under ``"full"``, else warn.

    Returns:
        One row per dataset a full preset uses, with the image count of each split.
    """
    from labkit.data import VOC_CLASSES, DatasetNotFoundError
    from labkit.experiment import build_datasets, resolve_data_root, split_names

    configs = _load_all()[0] if configs is None else configs
    groups: dict[tuple, list[str]] = {}
    for name, cfg in configs.items():
        if cfg.profile == "full" and cfg.dataset in _DATASETS:
            groups.setdefault((cfg.dataset, cfg.data_root, split_names(cfg)), []).append(name)
    bad = FAIL if profile == "full" else WARN
    rows = []
    for (dataset, _, splits), names in sorted(groups.items(), key=str):
        title, folder = _DATASETS[dataset]
        cfg = configs[names[0]]
        fix = (
            f"put {folder}/ under $LABKIT_DATA and export it for every user "
            "(docs/deploy.md, step 3)"
        )
        try:
            root = resolve_data_root(cfg)
            train, val, classes = build_datasets(cfg, root=root)
        except (DatasetNotFoundError, OSError, ValueError) as exc:
            rows.append(
                Check(f"dataset {title}", bad, f"{_error(exc)} (needed by {_users(names)})", fix)
            )
            continue
        found = f"{root / folder}: {splits[0]} {len(train)}, {splits[1]} {len(val)} images"
        if dataset == "voc" and tuple(classes) != VOC_CLASSES:  # a Shapes set in VOC's layout
            rows.append(
                Check(
                    f"dataset {title}",
                    bad,
                    f"{found} of {len(classes)} classes "
                    f"({', '.join(classes[:3])}, ...), not VOC's 21: the generated "
                    f"Shapes set, which full runs would train on",
                    fix,
                )
            )
            continue
        rows.append(Check(f"dataset {title}", OK, f"{found} (for {_users(names)})"))
    return rows


def check_weights(
    configs: Mapping[str, ExperimentConfig] | None = None, *, profile: str = "quick"
) -> list[Check]:
    """Load each ImageNet backbone file a preset asks for from the torch hub cache.

    Args:
        configs (Mapping[str, ExperimentConfig] | None): presets by name (``None``: load them all).
        profile (str): a file missing or unloadable is FAIL under ``"full"`` (or when a quick
            preset needs it), else warn.

    Returns:
        One row per file (``$TORCH_HOME/hub/checkpoints/<torchvision's file name>``).
    """
    import torchvision

    from labkit.models.backbones import load_pretrained_resnet, pretrained_weights_path

    configs = _load_all()[0] if configs is None else configs
    needed: dict[str, list[ExperimentConfig]] = {}
    for cfg in configs.values():
        arch = re.search(r"resnet\d+", cfg.model)  # the backbone is in every such model's name
        if cfg.model_options.get("pretrained_backbone") is True and arch:
            needed.setdefault(arch.group(0), []).append(cfg)
    rows = _check_shapes_weights(configs)
    for arch, cfgs in sorted(needed.items(), key=lambda item: int(item[0][6:])):
        path = pretrained_weights_path(arch)
        bad = FAIL if profile == "full" or any(c.profile == "quick" for c in cfgs) else WARN
        users = _users(c.name for c in cfgs)
        try:
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing")
            # The same loader the models use: a file of the wrong network fails here too.
            load_pretrained_resnet(torchvision.models.get_model(arch), arch)
        except Exception as exc:  # missing, truncated, not a state dict, wrong keys
            found = str(exc) if not path.is_file() else f"{path} does not load: {_error(exc)}"
            rows.append(
                Check(
                    f"weights {arch}",
                    bad,
                    f"{found} (needed by {users})",
                    f"copy torchvision's {path.name} into {path.parent}, or set "
                    "TORCH_HOME to the folder holding hub/checkpoints/ "
                    "(docs/deploy.md, step 2)",
                )
            )
            continue
        rows.append(Check(f"weights {arch}", OK, f"{path} loads (for {users})"))
    return rows


def _check_shapes_weights(configs: Mapping[str, ExperimentConfig]) -> list[Check]:
    """One row for the Shapes-pretrained ResNet-18 if a preset asks for it: OK if the cached
    file loads, warn if it is not built yet (the first run builds it), FAIL if it is damaged."""
    from labkit.models.pretrain import load_shapes_pretrained, shapes_pretrained_path

    users = [
        c.name for c in configs.values() if c.model_options.get("pretrained_backbone") == "shapes"
    ]
    if not users:
        return []
    path, name = shapes_pretrained_path(), "weights resnet18 (shapes)"
    fix = "run `labkit pretrain` where TORCH_HOME points (about 3.5 minutes of one CPU core)"
    if not path.is_file():
        found = f"{path} is not built yet; the first run of {_users(users)} builds it"
        return [Check(name, WARN, found, fix)]
    try:
        load_shapes_pretrained()
    except Exception as exc:  # truncated, corrupt, another version's
        return [Check(name, FAIL, f"{path} does not load: {_error(exc)}", f"delete it, then {fix}")]
    return [Check(name, OK, f"{path} loads (for {_users(users)})")]


def check_course(root: str | os.PathLike | None = None) -> list[Check]:
    """nbgrader's config of a course directory loads and names folders that exist.

    Args:
        root (str | os.PathLike | None): the course directory; ``None`` checks the working directory
            if it holds an ``nbgrader_config.py`` and gives no row otherwise.

    Returns:
        One row, FAIL when the config is absent (at an explicit root), does not load, or
        names a source or release folder that does not exist.
    """
    folder = Path(root if root is not None else Path.cwd()).resolve()
    config = folder / "nbgrader_config.py"
    if not config.is_file():
        if root is None:
            return []
        return [
            Check(
                "nbgrader course",
                FAIL,
                f"no nbgrader_config.py in {folder}",
                "pass --root the course made by `labkit course init` (docs/deploy.md, step 5)",
            )
        ]
    try:
        from nbgrader.coursedir import CourseDirectory
        from traitlets.config.loader import PyFileConfigLoader

        loaded = PyFileConfigLoader(config.name, path=str(folder)).load_config()
        course = CourseDirectory(config=loaded, root=str(folder))
    except Exception as exc:  # a config file can raise anything it likes
        return [
            Check(
                "nbgrader course",
                FAIL,
                f"{config} does not load: {_error(exc)}",
                "fix the file, or copy it again from `labkit course init`",
            )
        ]
    found, absent = [], []
    for kind in ("source", "release"):
        path = folder / getattr(course, f"{kind}_directory")
        if path.is_dir():
            labs = sum(1 for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
            found.append(f"{kind} {path.name}/ ({labs} labs)")
        else:
            absent.append(f"{kind} folder {path}")
    if absent:
        return [
            Check(
                "nbgrader course",
                FAIL,
                f"{config} names a missing " + " and a missing ".join(absent),
                "run `labkit course release` for the release folder; make the course "
                "with `labkit course init` (docs/deploy.md, step 5)",
            )
        ]
    return [Check("nbgrader course", OK, f"{folder}: " + ", ".join(found))]


def run_checks(*, profile: str = "quick", root: str | os.PathLike | None = None) -> list[Check]:
    """Every check, in the order of docs/deploy.md's steps.

    Args:
        profile (str): ``"quick"`` or ``"full"`` (see :func:`check_datasets`,
            :func:`check_weights`).
        root (str | os.PathLike | None): the course directory for :func:`check_course`.

    Returns:
        The rows of every check.

    Raises:
        ValueError: an unknown profile.
    """
    if profile not in ("quick", "full"):
        raise UsageError(f"expected profile 'quick' or 'full'; got {profile!r}.")
    configs = _load_all()[0]
    checks = [
        ("versions", check_versions),
        ("presets", check_presets),
        ("weights", lambda: check_weights(configs, profile=profile)),
        ("datasets", lambda: check_datasets(configs, profile=profile)),
        ("CUDA", check_cuda),
        ("bubblewrap", check_bwrap),
        ("nbgrader course", lambda: check_course(root)),
    ]
    rows = []
    for name, check in checks:
        try:
            rows += check()
        except Exception as exc:  # one broken check must not hide what the others found
            log.exception("the %s check raised", name)
            rows.append(
                Check(
                    name,
                    FAIL,
                    f"the check itself raised {_error(exc)}",
                    "report it as a labkit bug, with the output of `labkit -v doctor`",
                )
            )
    return rows


def exit_code(checks: Iterable[Check]) -> int:
    """1 when a row is ``FAIL``, else 0 (``warn`` rows pass)."""
    return int(any(c.status == FAIL for c in checks))


def format_table(checks: Sequence[Check]) -> str:
    """The rows as a markdown table: check, status, found, fix."""
    rows = [[t.replace("|", "\\|") for t in (c.name, c.status, c.found, c.fix)] for c in checks]
    return markdown_table(["check", "status", "found", "fix"], rows)
