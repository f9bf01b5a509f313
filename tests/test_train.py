"""Does the training loop train, evaluate honestly and record what happened?"""

from __future__ import annotations

import csv
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from labkit.train import History, evaluate, fit

C = 3


def _colour_task(n=24, size=8, seed=0):
    """Images whose dominant channel is the class: a 1×1 conv can learn it."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.randint(0, C, (n, size, size), generator=g)
    images = torch.rand(n, 3, size, size, generator=g) * 0.2
    images += nn.functional.one_hot(masks, 3).permute(0, 3, 1, 2).float()
    masks[:, 0, 0] = 255  # ignored pixels must not matter
    return TensorDataset(images, masks)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Conv2d(3, C, 1)


def _fit(seed=0, epochs=3, scheduler=True):
    model = _model(seed)
    loader = DataLoader(
        _colour_task(), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = (
        torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=epochs * len(loader))
        if scheduler
        else None
    )
    history = fit(
        model,
        loader,
        DataLoader(_colour_task(seed=1), batch_size=8),
        epochs=epochs,
        optimizer=opt,
        loss_fn=nn.CrossEntropyLoss(ignore_index=255),
        scheduler=sched,
        num_classes=C,
        device="cpu",
        progress=False,
    )
    return model, history, opt, len(loader)


def _fit_simply(model, train, val, *, lr=0.1, **options):
    """fit() as most tests here call it: one epoch of SGD at ``lr`` on cross-entropy (255
    ignored) on the CPU, without progress bars; ``options`` replace or add to these."""
    return fit(
        model,
        train,
        val,
        **{
            "epochs": 1,
            "optimizer": torch.optim.SGD(model.parameters(), lr=lr),
            "loss_fn": nn.CrossEntropyLoss(ignore_index=255),
            "num_classes": C,
            "device": "cpu",
            "progress": False,
            **options,
        },
    )


def test_fit_learns_an_easy_task():
    """Does fit drive the training loss down and the validation mIoU up on a learnable task?"""
    _, history, _, _ = _fit(epochs=4)
    assert len(history) == 4
    assert history.rows[-1]["train_loss"] < history.rows[0]["train_loss"]
    assert history.rows[-1]["miou"] > 0.9


def test_scheduler_steps_once_per_iteration():
    """Is the scheduler stepped per iteration, so a poly schedule has reached zero at the end?"""
    _, history, opt, steps_per_epoch = _fit(epochs=2)
    # PolynomialLR over epochs*steps iterations reaches exactly 0 after the last step.
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    reference = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.5)
    sched = torch.optim.lr_scheduler.PolynomialLR(reference, total_iters=2 * steps_per_epoch)
    for _ in range(steps_per_epoch):
        reference.step()
        sched.step()
    assert history.rows[0]["lr"] == pytest.approx(reference.param_groups[0]["lr"])


def test_every_step_is_recorded_with_the_rate_it_was_taken_with():
    """Does the per-step record hold one row per optimizer step, each with the learning rate
    the real scheduler gave that step and a loss whose mean is the epoch's training loss?"""
    from labkit.schedules import lr_curve

    _, history, _, steps_per_epoch = _fit(epochs=3)
    total = 3 * steps_per_epoch
    its = history.iterations
    assert [r["step"] for r in its] == list(range(1, total + 1))
    assert [r["epoch"] for r in its] == [e for e in (1, 2, 3) for _ in range(steps_per_epoch)]
    # PolynomialLR(power=1) over the run is labkit's "poly" schedule at power 1.
    expected = lr_curve("poly", base_lr=0.5, total_steps=total, power=1.0)
    assert [r["lr"] for r in its] == pytest.approx(expected)
    # 24 images in batches of 8: equal batches, so the epoch's loss is the steps' mean.
    for epoch, row in enumerate(history.rows, start=1):
        losses = [r["loss"] for r in its if r["epoch"] == epoch]
        assert sum(losses) / len(losses) == pytest.approx(row["train_loss"], rel=1e-5)


def test_seeded_runs_are_repeatable():
    """Do two runs with the same seed on CPU give the same history and weights, bit for bit?"""
    m1, h1, _, _ = _fit(seed=3)
    m2, h2, _, _ = _fit(seed=3)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in h1.rows]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in h2.rows]
    assert torch.equal(m1.weight, m2.weight)


def test_evaluate_agrees_with_torchmetrics():
    """Does evaluate report the mIoU and pixel accuracy torchmetrics computes on the same predictions?"""
    model = _model(1)
    data = _colour_task(seed=2)
    scores = evaluate(model, DataLoader(data, batch_size=5), num_classes=C, device="cpu")
    images, masks = data.tensors
    with torch.no_grad():
        preds = model(images).argmax(1)
    jaccard = MulticlassJaccardIndex(C, average="macro", ignore_index=255)
    acc = MulticlassAccuracy(C, average="micro", ignore_index=255)
    assert scores["miou"] == pytest.approx(float(jaccard(preds, masks)), abs=1e-6)
    assert scores["pixel_accuracy"] == pytest.approx(float(acc(preds, masks)), abs=1e-6)
    assert math.isnan(scores["loss"])


def test_evaluate_restores_training_mode():
    """Does evaluate leave a model in training mode if it found it there?"""
    model = nn.Sequential(nn.Conv2d(3, C, 1), nn.BatchNorm2d(C)).train()
    evaluate(model, DataLoader(_colour_task(), batch_size=8), num_classes=C, device="cpu")
    assert model.training


def test_history_csv_round_trip(tmp_path):
    """Does to_csv write one row per epoch with every recorded field?"""
    _, history, _, _ = _fit(epochs=2)
    with history.to_csv(tmp_path / "h.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2
    assert float(rows[1]["miou"]) == pytest.approx(history.rows[1]["miou"])
    assert {"train_loss", "val_loss", "pixel_accuracy", "lr", "iou_0", "iou_2"} <= set(rows[0])
    assert history.best["miou"] == max(history.column("miou"))
    assert len(history.plot().axes) == 3


def test_diverging_loss_is_reported():
    """Does a non-finite loss stop training with a message that says what to do?"""
    model = _model()
    loader = DataLoader(_colour_task(), batch_size=8)
    with pytest.raises(FloatingPointError, match="learning rate"):
        _fit_simply(model, loader, loader, loss_fn=lambda logits, target: logits.sum() * math.inf)


def test_empty_history_has_no_best():
    """Is asking an empty History for its best epoch an error, not a crash deep inside max()?"""
    with pytest.raises(ValueError, match="empty"):
        _ = History().best


# --------------------------------------------------------------------------------------------
# Checkpoints and exact resume
# --------------------------------------------------------------------------------------------


class _Noisy(torch.utils.data.Dataset):
    """The colour task with random noise drawn at load time, as random augmentation draws."""

    def __init__(self, n=24, seed=0):
        self.images, self.masks = _colour_task(n=n, seed=seed).tensors

    def __len__(self):
        return len(self.masks)

    def __getitem__(self, i):
        return self.images[i] + 0.1 * torch.rand(1, 8, 8), self.masks[i]


class _Stop(Exception):
    """Stands in for a kill: leaves fit half-way through."""


def _loss_that_stops(after):
    ce = nn.CrossEntropyLoss(ignore_index=255)
    calls = [0]

    def loss(logits, target):
        if torch.is_grad_enabled():  # training calls only, not evaluation
            calls[0] += 1
            if after is not None and calls[0] > after:
                raise _Stop
        return ce(logits, target)

    return loss


def _resumable_run(ckpt, *, stop_after=None, resume=False, mid_epoch=False, epochs=3):
    from labkit.sampling import ResumableSampler, SeededDataset

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.3), nn.Conv2d(8, C, 1)
    )
    if mid_epoch:
        data = SeededDataset(_Noisy(), seed=0)
        loader = DataLoader(
            data,
            batch_size=8,
            sampler=ResumableSampler(len(data), seed=0),
            generator=torch.Generator().manual_seed(0),
        )
    else:
        loader = DataLoader(
            _Noisy(), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0)
        )
    opt = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    sched = torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=epochs * len(loader))
    history = fit(
        model,
        loader,
        DataLoader(_colour_task(seed=1), batch_size=8),
        epochs=epochs,
        optimizer=opt,
        loss_fn=_loss_that_stops(stop_after),
        scheduler=sched,
        num_classes=C,
        device="cpu",
        progress=False,
        checkpoint_dir=ckpt,
        resume=resume,
        checkpoint_every=1 if mid_epoch else 0,
    )
    return model, history


def _rows(history):
    """Rows without the wall time, NaN as a string (NaN != NaN would fail any comparison)."""
    return [
        {k: "nan" if v != v else v for k, v in r.items() if k != "seconds"} for r in history.rows
    ]


@pytest.mark.parametrize("mid_epoch", [False, True])
def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path, mid_epoch):
    """Stopped mid-epoch 2 and resumed, does training end with the same weights and history?"""
    ref_model, ref_history = _resumable_run(tmp_path / "ref", mid_epoch=mid_epoch)
    with pytest.raises(_Stop):
        _resumable_run(tmp_path / "run", stop_after=5, mid_epoch=mid_epoch)
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["progress"]
    # Per-epoch checkpoints resume from the end of epoch 1; per-iteration ones from inside epoch 2.
    assert (saved["epoch"], saved["samples"]) == ((1, 16) if mid_epoch else (1, 0))
    torch.rand(100)  # a new process would start from other random states
    model, history = _resumable_run(tmp_path / "run", resume=True, mid_epoch=mid_epoch)
    for a, b in zip(ref_model.parameters(), model.parameters()):
        assert torch.equal(a, b)
    assert _rows(history) == _rows(ref_history)
    # the steps before the crash come back from the checkpoint, none twice or missing
    assert history.iterations == ref_history.iterations


def test_resuming_a_finished_run_trains_no_more(tmp_path):
    """Does resume=True on a completed run return its history without another step?"""
    model, history = _resumable_run(tmp_path, epochs=2)
    again, history2 = _resumable_run(tmp_path, epochs=2, resume=True)
    assert _rows(history2) == _rows(history)
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_best_checkpoint_holds_the_best_epoch(tmp_path):
    """Does best.pt hold the epoch with the highest validation mIoU, and last.pt the last one?"""
    model, history = _resumable_run(tmp_path, epochs=3)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert best["epoch"] == history.best["epoch"] and best["miou"] == max(history.column("miou"))
    assert last["progress"]["epoch"] == 3
    assert all(torch.equal(last["model"][k], v) for k, v in model.state_dict().items())


def test_options_that_need_a_checkpoint_folder_say_so():
    """Are resume / checkpoint_every without checkpoint_dir, and checkpoint_every with a plain
    shuffling loader, errors that say what is needed?"""
    model = _model()
    loader = DataLoader(_colour_task(), batch_size=8, shuffle=True)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        _fit_simply(model, loader, loader, resume=True)
    with pytest.raises(ValueError, match="ResumableSampler"):
        _fit_simply(model, loader, loader, checkpoint_dir="unused", checkpoint_every=2)


def test_train_scores_count_the_training_batches():
    """With lr=0 (nothing changes), is the history's train mIoU torchmetrics' on the training set?"""
    model = _model(4)
    data = _colour_task(seed=5)
    loader = DataLoader(
        data, batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    history = _fit_simply(model, loader, loader, lr=0.0)
    images, masks = data.tensors
    with torch.no_grad():
        preds = model(images).argmax(1)
    jaccard = MulticlassJaccardIndex(C, average="macro", ignore_index=255)
    assert history.rows[0]["train_miou"] == pytest.approx(float(jaccard(preds, masks)), abs=1e-6)
    assert history.rows[0]["train_miou"] == pytest.approx(history.rows[0]["miou"], abs=1e-12)


def test_cuda_out_of_memory_names_batch_and_crop():
    """Does an out-of-memory error in the forward pass come out as one message with batch and crop?"""
    from labkit.devices import GPUOutOfMemoryError

    class Hungry(nn.Conv2d):
        def forward(self, x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    model = Hungry(3, C, 1)
    loader = DataLoader(_colour_task(), batch_size=8)
    with pytest.raises(GPUOutOfMemoryError, match=r"batch size 8 and 8×8"):
        _fit_simply(model, loader, loader)


@pytest.mark.parametrize("autograde", [False, True])
def test_progress_bars_are_silent_while_autograding(monkeypatch, capsys, autograde):
    """Do progress bars appear with progress=True, but not while nbgrader autogrades?"""
    if autograde:
        monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    else:
        monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    model = _model()
    loader = DataLoader(_colour_task(), batch_size=8)
    _fit_simply(model, loader, loader, progress=True)
    err = capsys.readouterr().err
    assert ("epoch 1/1" in err) != autograde


def test_tensorboard_logs_or_says_how_to_install(tmp_path):
    """Does tensorboard=True write event files, or (without the package) say `pip install tensorboard`?"""
    import importlib.util

    model = _model()
    loader = DataLoader(_colour_task(), batch_size=8)
    kw = dict(checkpoint_dir=tmp_path, tensorboard=True, log_every=1)
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(ModuleNotFoundError, match="pip install tensorboard"):
            _fit_simply(model, loader, loader, **kw)
    else:
        _fit_simply(model, loader, loader, **kw)
        assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.gpu
def test_amp_and_channels_last_train_on_cuda():
    """On CUDA, does fit train with AMP and channels_last and score like a float32 evaluation?"""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, C, 1)
    )
    loader = DataLoader(_colour_task(), batch_size=8)
    history = _fit_simply(model, loader, loader, lr=0.5, epochs=3, device="cuda")
    assert next(model.parameters()).dtype == torch.float32
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert history.rows[-1]["miou"] > 0.9
    fp32 = evaluate(model, loader, num_classes=C, device="cuda", amp=False, channels_last=False)
    mixed = evaluate(model, loader, num_classes=C, device="cuda")
    assert mixed["miou"] == pytest.approx(fp32["miou"], abs=0.02)


def test_on_epoch_end_gets_each_epochs_validation_scores():
    """Is on_epoch_end called once per epoch with the scores of that epoch's history row,
    the same as scoring the final model afresh?"""
    seen = []
    model = _model(0)
    loader = DataLoader(_colour_task(), batch_size=8)
    val = DataLoader(_colour_task(seed=1), batch_size=8)
    history = _fit_simply(
        model,
        loader,
        val,
        lr=0.5,
        epochs=2,
        on_epoch_end=lambda epoch, scores: seen.append((epoch, scores)),
    )
    assert [epoch for epoch, _ in seen] == [1, 2]
    for (_, scores), row in zip(seen, history.rows):
        assert scores["miou"] == row["miou"] and scores["pixel_accuracy"] == row["pixel_accuracy"]
    again = evaluate(model, val, num_classes=C, device="cpu")
    assert torch.equal(seen[-1][1]["matrix"], again["matrix"])


class _CountingLoader(DataLoader):
    passes = 0

    def __iter__(self):
        self.passes += 1
        return super().__iter__()


@pytest.mark.parametrize("progress", [True, False])
def test_each_epoch_starts_one_pass_of_each_loader(progress, monkeypatch):
    """Does an epoch with its progress bars start exactly one pass of each loader? tqdm.auto
    calls iter() when a bar is built and again when it is looped over; a second pass of a
    loader with workers forks workers that prefetch unread batches and are then waited for."""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    model = _model()
    train = _CountingLoader(_colour_task(), batch_size=8)
    val = _CountingLoader(_colour_task(seed=1), batch_size=8)
    _fit_simply(model, train, val, epochs=2, progress=progress)
    assert (train.passes, val.passes) == (2, 2)
