"""Does the labkit command explain itself, fail in one line, and run train → evaluate → compare → predict?"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from labkit.cli import build_parser, main

SHAPES = {
    "num_train": 32,
    "num_val": 8,
    "size": 32,
    "num_classes": 4,
    "deformation": 0.5,
    "seed": 0,
}


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    from labkit.data.shapes import generate_shapes

    return generate_shapes(tmp_path_factory.mktemp("data"), **SHAPES)


@pytest.fixture
def config_file(tmp_path, shapes_root):
    data = dict(
        description="cli test",
        dataset="shapes",
        data_root=str(shapes_root),
        shapes=SHAPES,
        model="baseline_fcn",
        model_options={"widths": [4, 8, 8, 8, 8]},
        crop_size=32,
        batch_size=4,
        epochs=2,
        lr=0.01,
        device="cpu",
    )
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for sub_name, sub_sub in _subparsers(sub):
                    yield f"{name} {sub_name}", sub_sub


def test_every_option_of_every_subcommand_is_explained(capsys):
    """Does `--help` of every subcommand work and describe every one of its options?"""
    names = []
    for name, sub in _subparsers(build_parser()):
        names.append(name)
        with pytest.raises(SystemExit) as info:
            main([*name.split(), "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"{name}: {action.dest} has no help"
            label = action.option_strings[0] if action.option_strings else action.metavar
            assert label in out, f"{name}: {label} missing from --help"
    assert {"demo", "data shapes", "data check", "train", "evaluate", "compare", "predict"} <= set(
        names
    )


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "--preset", "no_such_preset"], "unknown preset"),
        (["train", "--preset", "baseline_quick", "--set", "augmnt.rotate=3"], "augmnt"),
        (["train", "--preset", "baseline_quick", "--epochs", "0"], "epochs"),
        (["train"], "one of the arguments"),
        (["train", "--preset", "baseline_quick", "--lr", "fast"], "invalid float"),
        (["evaluate", "."], "not a run folder"),
        (["data", "check", "."], "neither VOCdevkit"),
        (["train", "--preset", "baseline_full", "--epochs", "1"], "LABKIT_DATA"),  # no VOC
        (["train", "--preset", "baseline_quick", "--set", "lr=0.5", "--lr", "0.1"], "set twice"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(capsys, monkeypatch, tmp_path, argv, needle):
    """Does each user error print one line on stderr and return (or exit with) code 2?"""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LABKIT_DATA", raising=False)
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err, err


def test_verbose_shows_a_user_errors_traceback_and_still_exits_2(capsys, tmp_path):
    """With -v, is a user error's traceback shown above its one line, exit code still 2?"""
    assert main(["-v", "data", "check", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "UsageError" in err
    assert err.strip().splitlines()[-1].startswith("labkit data: error:")


def test_an_unexpected_error_is_a_traceback_not_a_one_liner(monkeypatch, capsys):
    """Is an exception that is no LabkitError (a bug, even a ValueError) let through with its
    traceback, so the command ends with exit code 1, instead of being worded as the user's
    mistake?"""
    import labkit.cli

    def buggy(args):
        raise ValueError("an index the code got wrong")

    monkeypatch.setattr(labkit.cli, "_cmd_data_check", buggy)
    with pytest.raises(ValueError, match="an index the code got wrong"):
        main(["data", "check", "."])
    assert "error:" not in capsys.readouterr().err
    code = (
        "import sys, labkit.cli\n"
        "def buggy(args): raise ValueError('an index the code got wrong')\n"
        "labkit.cli._cmd_data_check = buggy\n"
        "sys.exit(labkit.cli.main(['data', 'check', '.']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "ValueError: an index the code got wrong"


def test_a_course_command_answers_without_loading_torch(tmp_path):
    """Does `labkit course status` on a folder that is no course answer with one line, exit
    code 2, in a fresh interpreter that never imports torch (seconds per command)?"""
    code = (
        "import sys; from labkit.cli import main; "
        "code = main(['course', 'status', '--root', sys.argv[1]]); "
        "print(code, 'torch' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.split() == ["2", "False"], proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "gradebook.db" in proc.stderr, proc.stderr


def test_list_presets(capsys):
    """Does `train --list-presets` list the presets with their descriptions?"""
    assert main(["train", "--list-presets"]) == 0
    out = capsys.readouterr().out
    assert "baseline_quick" in out and "PA3 baseline" in out


def test_train_evaluate_compare_predict(tmp_path, config_file, shapes_root, capsys):
    """On a tiny Shapes run, do the four commands work on the run folder and report its figures?"""
    runs = tmp_path / "runs"
    assert (
        main(
            [
                "train",
                "--config",
                str(config_file),
                "--runs-dir",
                str(runs),
                "--no-progress",
                "--set",
                "augment.hflip=0.0",
            ]
        )
        == 0
    )
    run = runs / "tiny"
    metrics = json.loads((run / "metrics.json").read_text())
    out = capsys.readouterr().out
    assert f"val mIoU {100 * metrics['val']['miou']:.2f} %" in out
    assert yaml.safe_load((run / "config.yaml").read_text())["augment"]["hflip"] == 0.0

    assert (
        main(
            [
                "train",
                "--config",
                str(config_file),
                "--runs-dir",
                str(runs),
                "--name",
                "b",
                "--lr",
                "0.02",
                "--epochs",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()

    assert main(["evaluate", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"| miou | {100 * metrics['val']['miou']:.2f} % |" in out
    assert (run / "eval-val" / "confusion_matrix.png").is_file()
    saved = json.loads((run / "eval-val" / "metrics.json").read_text())
    assert saved["miou"] == pytest.approx(metrics["val"]["miou"])

    assert main(["compare", str(run), str(runs / "b")]) == 0
    out = capsys.readouterr().out
    assert out.count("| tiny |") == 1 and out.count("| b |") == 1
    assert (runs / "compare.png").is_file()

    images = shapes_root / "VOCdevkit" / "VOC2012" / "JPEGImages"
    assert main(["predict", str(run), "--in", str(images), "--out", str(tmp_path / "pred")]) == 0
    assert len(list((tmp_path / "pred").glob("*_mask.png"))) == 40

    assert main(["data", "check", str(shapes_root)]) == 0
    out = capsys.readouterr().out
    assert "voc layout, 4 classes, train 32 images, val 8 images" in out
    assert "| background |" in out


def _train_cmd(config, runs, name, *extra):
    return [
        "train",
        "--config",
        str(config),
        "--runs-dir",
        str(runs),
        "--name",
        name,
        "--no-progress",
        *extra,
    ]


# Loading is slowed down (results are unchanged) so that the kill lands inside an epoch.
_SLOW = (
    "import sys, time, labkit.sampling as s; get = s.SeededDataset.__getitem__; "
    "s.SeededDataset.__getitem__ = lambda self, i: (time.sleep(0.03), get(self, i))[1]; "
    "from labkit.cli import main; raise SystemExit(main(sys.argv[1:]))"
)


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, config_file):
    """Killed with SIGKILL mid-epoch and resumed, does training end with the uninterrupted run's
    weights and history?"""
    runs = tmp_path / "runs"
    extra = ("--epochs", "3", "--checkpoint-every", "3")
    env = {k: v for k, v in os.environ.items() if k != "LABKIT_DATA"}
    env["OMP_NUM_THREADS"] = "1"  # the same in all three processes, so results can match
    py = [sys.executable]
    ref = subprocess.Popen(
        [*py, "-m", "labkit", *_train_cmd(config_file, runs, "ref", *extra)],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
    )
    victim = subprocess.Popen(
        [*py, "-c", _SLOW, *_train_cmd(config_file, runs, "cut", *extra)],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
    )
    last = runs / "cut" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL, victim.stderr.read().decode()
    progress = torch.load(last, weights_only=True)["progress"]
    assert progress["epoch"] < 3  # killed before the end
    assert not (runs / "cut" / "metrics.json").exists()

    done = subprocess.run(
        [*py, "-m", "labkit", *_train_cmd(config_file, runs, "cut", *extra), "--resume"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert ref.wait() == 0, ref.stderr.read().decode()
    a = torch.load(runs / "ref" / "last.pt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    rows = [
        [
            {k: "nan" if v != v else v for k, v in r.items() if k != "seconds"}
            for r in x["progress"]["history"]
        ]
        for x in (a, b)
    ]
    assert rows[0] == rows[1] and len(rows[0]) == 3


def test_torchrun_two_processes(tmp_path, config_file):
    """Under `torchrun --nproc_per_node=2 -m labkit train`, does one run folder come out whose
    scores a single-process evaluation reproduces?"""
    from labkit.runs import evaluate_run

    runs = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if k != "LABKIT_DATA"}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "labkit",
            *_train_cmd(config_file, runs, "ddp"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert done.stdout.decode().count("labkit train: ddp") == 1  # rank 0 alone reports
    metrics = json.loads((runs / "ddp" / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    single = evaluate_run(runs / "ddp", device="cpu")
    assert single["miou"] == pytest.approx(metrics["val"]["miou"], abs=1e-12)


def test_the_choices_the_parser_offers_are_the_librarys():
    """Are the names ``--schedule`` and ``data check --dataset`` accept (written out, so that
    the parser loads no torch) exactly the schedules and the readable layouts labkit has?"""
    from labkit.data.layouts import LAYOUTS
    from labkit.schedules import SCHEDULERS

    def choices(parser, *path, dest):
        for name in path:
            sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            parser = sub.choices[name]
        return next(a.choices for a in parser._actions if a.dest == dest)

    parser = build_parser()
    assert set(choices(parser, "train", dest="schedule")) == set(SCHEDULERS)
    readable = {name for name, layout in LAYOUTS.items() if name != "shapes"}
    assert set(choices(parser, "data", "check", dest="dataset")) == {"auto", *readable}


def test_a_key_given_by_set_and_by_its_flag_alike_is_taken_once():
    """Do ``--set lr=0.1`` and ``--lr 0.1`` together give lr 0.1 (the two spellings agree;
    when they do not, the command says so: see test_user_errors_are_one_line_and_exit_2)?"""
    from labkit.cli import _build_config

    args = build_parser().parse_args(
        [
            "train",
            "--preset",
            "baseline_quick",
            "--set",
            "lr=0.1",
            "--lr",
            "0.1",
            "--set",
            "augment.rotate=7",
        ]
    )
    cfg = _build_config(args)
    assert cfg.lr == 0.1 and cfg.augment.rotate == 7


def test_pretrain_builds_the_cache_once(capsys, monkeypatch, tmp_path):
    """Does `labkit pretrain` write the Shapes-pretrained encoder into $TORCH_HOME's hub
    cache, and a second call only check it?"""
    import labkit.models.pretrain as pretrain

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    tiny = pretrain.PretrainOptions(
        num_images=24, held_out=0, size=32, crop=32, epochs=1, batch_size=16
    )
    monkeypatch.setattr(pretrain, "DEFAULT_OPTIONS", tiny)
    assert main(["pretrain", "--cpu-threads", "1"]) == 0
    path = pretrain.shapes_pretrained_path()
    assert path.is_file() and str(tmp_path / "hub" / "checkpoints") in str(path.parent)
    assert "pretrained in" in capsys.readouterr().out
    assert main(["pretrain"]) == 0
    assert f"already cached, checked: {path}" in capsys.readouterr().out
