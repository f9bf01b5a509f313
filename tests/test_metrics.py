"""Tests for labkit.metrics: torchmetrics, numpy and hand-computed cases are the oracles."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from labkit.metrics import (
    ConfusionMatrix,
    confusion_matrix,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
    scores_from_matrix,
)

IGNORE = 255


# The oracle is torchmetrics, imported on first use: the spawned all_reduce workers import
# this module too, and torchmetrics would double their start-up time.


def _tm_matrix(pred, target, num_classes, *, ignore_index=IGNORE) -> torch.Tensor:
    from torchmetrics.classification import MulticlassConfusionMatrix

    return MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index)(pred, target)


def _tm_jaccard(pred, target, num_classes, *, average, ignore_index=IGNORE) -> torch.Tensor:
    from torchmetrics.classification import MulticlassJaccardIndex

    metric = MulticlassJaccardIndex(num_classes, average=average, ignore_index=ignore_index)
    return metric(pred, target).double()


def _tm_accuracy(pred, target, num_classes, *, average, ignore_index=IGNORE) -> torch.Tensor:
    from torchmetrics.classification import MulticlassAccuracy

    metric = MulticlassAccuracy(num_classes, average=average, ignore_index=ignore_index)
    return metric(pred, target).double()


def _pick(classes: list[int], shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    return torch.tensor(classes)[torch.randint(len(classes), shape, generator=gen)]


def _batch(
    num_classes: int = 7,
    shape: tuple[int, ...] = (3, 24, 20),
    *,
    seed: int = 0,
    ignore_index: int | None = IGNORE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (pred, target): class C-1 absent from both, C-2 only predicted, C-3 only in
    the target, and about 10 % of the target set to ``ignore_index``."""
    gen = torch.Generator().manual_seed(seed)
    C = num_classes
    target = _pick([c for c in range(C) if c not in (C - 1, C - 2)], shape, gen)
    pred = _pick([c for c in range(C) if c not in (C - 1, C - 3)], shape, gen)
    if ignore_index is not None:
        target[torch.rand(shape, generator=gen) < 0.1] = ignore_index
    return pred, target


# ---------------------------------------------------------------- agreement with torchmetrics


@pytest.mark.parametrize("num_classes", [7, 21])
@pytest.mark.parametrize("ignore_index", [IGNORE, 0, -1, None])
def test_matrix_matches_torchmetrics(num_classes, ignore_index):
    """Does the confusion matrix equal torchmetrics' for several ignore labels?"""
    pred, target = _batch(num_classes, ignore_index=ignore_index)
    ref = _tm_matrix(pred, target, num_classes, ignore_index=ignore_index)
    assert torch.equal(confusion_matrix(pred, target, num_classes, ignore_index=ignore_index), ref)
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    cm.update(pred, target)
    assert cm.matrix.dtype == torch.int64 and torch.equal(cm.matrix, ref)


def test_matrix_rows_are_ground_truth():
    """Are rows the true class and columns the predicted class (a hand-made case)?"""
    target = torch.tensor([[[0, 0, 1, 255]]])
    pred = torch.tensor([[[0, 1, 1, 0]]])
    expected = torch.tensor([[1, 1, 0], [0, 1, 0], [0, 0, 0]])
    assert torch.equal(confusion_matrix(pred, target, 3), expected)


@pytest.mark.parametrize("ignore_index", [IGNORE, 0, 10**7])
def test_miou_matches_torchmetrics_macro(ignore_index):
    """Does mIoU equal torchmetrics' macro Jaccard index on data with ignored pixels and
    absent classes (including an ignore label far from the class ids)?"""
    C = 9
    pred, target = _batch(C, ignore_index=ignore_index)
    ref = _tm_jaccard(pred, target, C, average="macro", ignore_index=ignore_index)
    assert mean_iou(pred, target, C, ignore_index=ignore_index) == pytest.approx(
        ref.item(), abs=1e-6
    )
    cm = ConfusionMatrix(C, ignore_index=ignore_index)
    cm.update(pred, target)
    assert cm.compute()["miou"] == pytest.approx(ref.item(), abs=1e-6)


def test_iou_per_class_matches_torchmetrics_none():
    """Does per-class IoU equal torchmetrics' average="none", with NaN exactly where a class
    is in neither prediction nor target?

    torchmetrics 1.x returns 0 (its ``zero_division``) for such a class but leaves it out
    of the macro average (weight 0 where ``tp + fp + fn == 0``); labkit returns NaN and
    takes the nanmean, so the means agree and the per-class values agree off those classes.
    """
    C = 8
    pred, target = _batch(C)
    iou = iou_per_class(pred, target, C)
    ref = _tm_jaccard(pred, target, C, average="none")
    valid = target != IGNORE
    seen = torch.zeros(C, dtype=torch.bool)
    seen[target[valid]] = True
    seen[pred[valid]] = True
    assert not seen.all(), "the data must have a class with an empty union"
    assert torch.equal(torch.isnan(iou), ~seen)
    torch.testing.assert_close(iou[seen], ref[seen], atol=1e-6, rtol=0)
    assert ref[~seen].eq(0).all()
    macro = _tm_jaccard(pred, target, C, average="macro")
    assert iou.nanmean().item() == pytest.approx(macro.item(), abs=1e-6)
    assert iou.nan_to_num(0).mean().item() != pytest.approx(macro.item(), abs=1e-6)


def test_pixel_accuracy_matches_torchmetrics_micro():
    """Do pixel_accuracy and compute()['pixel_accuracy'] equal torchmetrics' micro accuracy?"""
    C = 6
    pred, target = _batch(C)
    ref = _tm_accuracy(pred, target, C, average="micro").item()
    assert pixel_accuracy(pred, target) == pytest.approx(ref, abs=1e-6)
    cm = ConfusionMatrix(C)
    cm.update(pred, target)
    assert cm.compute()["pixel_accuracy"] == pytest.approx(ref, abs=1e-6)


def test_mean_accuracy_matches_torchmetrics():
    """Does mean_accuracy equal torchmetrics' per-class recall averaged over the classes
    present in the target?

    torchmetrics' macro average also counts a class that is predicted but absent from the
    target (recall 0, weight 1), so on such data it is lower; labkit (like mmsegmentation)
    averages over classes present in the target only. Compared on that definition here.
    """
    C = 7
    pred, target = _batch(C)
    cm = ConfusionMatrix(C)
    cm.update(pred, target)
    scores = cm.compute()
    recall = _tm_accuracy(pred, target, C, average="none")
    present = torch.bincount(target[target != IGNORE], minlength=C) > 0
    assert scores["mean_accuracy"] == pytest.approx(recall[present].mean().item(), abs=1e-6)
    torch.testing.assert_close(
        scores["class_accuracy"][present], recall[present], atol=1e-6, rtol=0
    )
    assert torch.isnan(scores["class_accuracy"][~present]).all()


def test_mean_accuracy_equals_torchmetrics_macro_without_extra_predicted_classes():
    """Where every predicted class occurs in the target, is mean_accuracy torchmetrics'
    macro accuracy itself?"""
    C = 7
    pred, target = _batch(C)
    pred[pred == C - 2] = 0  # C-2 was the only class predicted but absent from the target
    cm = ConfusionMatrix(C)
    cm.update(pred, target)
    ref = _tm_accuracy(pred, target, C, average="macro")
    assert cm.compute()["mean_accuracy"] == pytest.approx(ref.item(), abs=1e-6)


def _fwiou_numpy(pred: np.ndarray, target: np.ndarray, num_classes: int) -> float:
    """Frequency-weighted IoU, written out class by class (Long et al., FCN, 2015)."""
    valid = target != IGNORE
    p, t = pred[valid], target[valid]
    total = 0.0
    for c in range(num_classes):
        freq = np.sum(t == c) / t.size
        union = np.sum((t == c) | (p == c))
        if freq > 0:
            total += freq * np.sum((t == c) & (p == c)) / union
    return total


def test_fwiou_matches_numpy_reference():
    """Does fwiou equal a slow class-by-class numpy computation?"""
    C = 9
    pred, target = _batch(C, seed=3)
    cm = ConfusionMatrix(C)
    cm.update(pred, target)
    ref = _fwiou_numpy(pred.numpy(), target.numpy(), C)
    assert cm.compute()["fwiou"] == pytest.approx(ref, abs=1e-12)


def test_scores_of_a_hand_computed_matrix():
    """Do the scores of a 3-class matrix equal the ones worked out by hand?"""
    m = torch.tensor([[3, 1, 0], [2, 4, 0], [0, 0, 0]])
    s = scores_from_matrix(m)
    assert s["pixel_accuracy"] == pytest.approx(7 / 10)
    assert s["mean_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert s["iou"][:2].tolist() == pytest.approx([3 / 6, 4 / 7]) and math.isnan(s["iou"][2])
    assert s["miou"] == pytest.approx((3 / 6 + 4 / 7) / 2)
    assert s["fwiou"] == pytest.approx(0.4 * 3 / 6 + 0.6 * 4 / 7)
    assert s["iou"].dtype == torch.float64


def test_scores_are_nan_when_nothing_was_counted():
    """Are all scores NaN (not an error, not zero) when every pixel is ignored?"""
    target = torch.full((1, 4, 4), IGNORE)
    pred = torch.zeros(1, 4, 4, dtype=torch.int64)
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    s = cm.compute()
    assert cm.matrix.sum() == 0
    assert all(math.isnan(s[k]) for k in ("pixel_accuracy", "mean_accuracy", "miou", "fwiou"))
    assert math.isnan(pixel_accuracy(pred, target))


# ---------------------------------------------------------------- inputs


def test_logits_equal_their_argmax_labels():
    """Do float logits [N, C, H, W] give the same matrix as their argmax labels?"""
    C = 5
    _, target = _batch(C)
    logits = torch.randn(target.shape[0], C, *target.shape[1:])
    labels = logits.argmax(1)
    assert torch.equal(confusion_matrix(logits, target, C), confusion_matrix(labels, target, C))
    assert pixel_accuracy(logits, target) == pixel_accuracy(labels, target)
    ref = _tm_matrix(logits, target, C)
    assert torch.equal(confusion_matrix(logits, target, C), ref)


def test_streaming_updates_equal_one_update_on_the_concatenation():
    """Do several update calls sum to the scores of one update on all batches at once?"""
    C = 6
    batches = [_batch(C, (2, 10, 12), seed=s) for s in range(4)]
    streamed, whole = ConfusionMatrix(C), ConfusionMatrix(C)
    for pred, target in batches:
        streamed.update(pred, target)
    whole.update(torch.cat([p for p, _ in batches]), torch.cat([t for _, t in batches]))
    assert torch.equal(streamed.matrix, whole.matrix)
    a, b = streamed.compute(), whole.compute()
    assert a["miou"] == b["miou"] and torch.equal(a["iou"].nan_to_num(-1), b["iou"].nan_to_num(-1))


def test_other_layouts_and_integer_dtypes_agree():
    """Do non-contiguous inputs and uint8/int32 labels give torchmetrics' matrix?"""
    C = 5
    pred, target = _batch(C, (2, 12, 14))
    ref = _tm_matrix(pred, target, C)
    pt, tt = pred.transpose(1, 2), target.transpose(1, 2)
    assert not pt.is_contiguous() and not tt.is_contiguous()
    assert torch.equal(confusion_matrix(pt, tt, C), ref)
    ps, ts = pred[:, ::2], target[:, ::2]
    assert torch.equal(confusion_matrix(ps, ts, C), _tm_matrix(ps, ts, C))
    assert torch.equal(confusion_matrix(pred.int(), target.to(torch.uint8), C), ref)


def test_matrix_made_in_inference_mode_works_outside_it():
    """Can a ConfusionMatrix built and updated under torch.inference_mode be updated, merged
    and reset outside it?"""
    pred, target = _batch(4)
    with torch.inference_mode():
        cm = ConfusionMatrix(4)
        cm.update(pred, target)
    cm.update(pred, target)
    cm.merge(cm + cm)
    assert torch.equal(cm.matrix, 6 * _tm_matrix(pred, target, 4))  # 2 updates, then + itself twice
    cm.reset()
    assert cm.matrix.sum() == 0


def test_empty_batch_counts_nothing():
    """Does a batch with no pixels leave the matrix at zero?"""
    cm = ConfusionMatrix(4)
    cm.update(torch.zeros(0, 5, 5, dtype=torch.int64), torch.zeros(0, 5, 5, dtype=torch.int64))
    assert torch.equal(cm.matrix, torch.zeros(4, 4, dtype=torch.int64))


BAD_INPUTS = [
    # (pred, target, words the message must contain)
    (
        torch.zeros(2, 4, 4, dtype=torch.long),
        torch.zeros(2, 4, 5, dtype=torch.long),
        ["[2, 4, 5]", "[2, 4, 4]"],
    ),
    (
        torch.zeros(2, 3, 4, 4),
        torch.zeros(2, 4, 5, dtype=torch.long),
        ["[2, C, 4, 5]", "[2, 3, 4, 4]", "Resize"],
    ),
    (
        torch.zeros(2, 4, 4, dtype=torch.long),
        torch.zeros(4, 4, dtype=torch.long),
        ["[N, H, W]", "[4, 4]", "unsqueeze(0)"],
    ),
    (
        torch.zeros(4, 4, dtype=torch.long),
        torch.zeros(1, 4, 4, dtype=torch.long),
        ["[N, C, H, W]", "[4, 4]"],
    ),
    (
        torch.zeros(1, 4, 4, dtype=torch.long),
        torch.zeros(1, 4, 4),
        ["integer", "torch.float32", ".long()"],
    ),
    (
        torch.zeros(1, 4, 4),
        torch.zeros(1, 4, 4, dtype=torch.long),
        ["integer", "torch.float32", "[N, C, H, W]"],
    ),
    (
        torch.zeros(1, 3, 4, 4, dtype=torch.long),
        torch.zeros(1, 4, 4, dtype=torch.long),
        ["float logits", "torch.int64"],
    ),
    (
        torch.zeros(1, 5, 4, 4),
        torch.zeros(1, 4, 4, dtype=torch.long),
        ["3 channels", "[1, 5, 4, 4]"],
    ),
    (torch.zeros(1, 4, 4, dtype=torch.long), torch.full((1, 4, 4), 300), ["[0, 3)", "255", "300"]),
    (
        torch.zeros(1, 1, 4, dtype=torch.long),
        torch.tensor([[[0, 1, 100, 255]]]),
        ["[0, 3)", "[100]"],
    ),
    (torch.zeros(1, 4, 4, dtype=torch.long), torch.full((1, 4, 4), -1), ["[0, 3)", "-1"]),
    (
        torch.full((1, 4, 4), 3),
        torch.zeros(1, 4, 4, dtype=torch.long),
        ["pred labels in [0, 3)", "3"],
    ),
    (
        torch.full((1, 4, 4), -2),
        torch.zeros(1, 4, 4, dtype=torch.long),
        ["pred labels in [0, 3)", "-2"],
    ),
    (torch.full((1, 4, 4), 255), torch.full((1, 4, 4), 255), ["pred labels in [0, 3)", "255"]),
]


@pytest.mark.parametrize("pred,target,words", BAD_INPUTS)
def test_bad_input_raises_value_error_saying_expected_and_got(pred, target, words):
    """Does every malformed input raise a ValueError naming what was expected and what came?"""
    for call in (
        lambda: confusion_matrix(pred, target, 3),
        lambda: ConfusionMatrix(3).update(pred, target),
    ):
        with pytest.raises(ValueError) as info:
            call()
        msg = str(info.value)
        assert "expected" in msg and "got" in msg
        for word in words:
            assert word in msg


def test_pixel_accuracy_rejects_bad_shapes_and_dtypes():
    """Does pixel_accuracy raise the same ValueErrors for mismatched shapes and float labels?"""
    with pytest.raises(ValueError, match=r"expected pred of shape \[1, 3, 4\]"):
        pixel_accuracy(
            torch.zeros(1, 3, 3, dtype=torch.long), torch.zeros(1, 3, 4, dtype=torch.long)
        )
    with pytest.raises(ValueError, match="integer dtype"):
        pixel_accuracy(torch.zeros(1, 3, 3, dtype=torch.long), torch.zeros(1, 3, 3))


def test_ignore_index_between_classes_and_void_is_still_checked():
    """Is a target label between num_classes and the ignore label caught, even though the
    min and max of the target are both allowed?"""
    target = torch.tensor([[[0, 1, 2, 255, 7]]])
    with pytest.raises(ValueError, match=r"\[7\]"):
        confusion_matrix(torch.zeros_like(target), target, 3)


# ---------------------------------------------------------------- combining matrices


def test_merge_add_sum_and_state_dict_round_trip():
    """Do merge, +, sum() and a state_dict round trip all give the matrix of all the data?"""
    C = 5
    (p1, t1), (p2, t2) = _batch(C, seed=1), _batch(C, seed=2)
    a, b = ConfusionMatrix(C), ConfusionMatrix(C)
    a.update(p1, t1)
    b.update(p2, t2)
    ref = _tm_matrix(torch.cat([p1, p2]), torch.cat([t1, t2]), C)
    assert torch.equal((a + b).matrix, ref)
    assert torch.equal(sum([a, b]).matrix, ref)
    restored = ConfusionMatrix(C)
    restored.load_state_dict(a.state_dict())
    assert torch.equal(restored.merge(b).matrix, ref)
    assert not torch.equal(a.matrix, ref)  # + and sum() left a alone
    a.reset()
    assert a.matrix.sum() == 0
    with pytest.raises(ValueError, match="num_classes=5"):
        a.merge(ConfusionMatrix(6))
    with pytest.raises(ValueError, match="num_classes=5"):
        ConfusionMatrix(6).load_state_dict(a.state_dict())


def test_all_reduce_without_process_group_is_a_no_op():
    """Does all_reduce leave the matrix alone when no process group is initialised?"""
    assert not dist.is_initialized()
    pred, target = _batch(4)
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    before = cm.matrix.clone()
    assert cm.all_reduce() is cm and torch.equal(cm.matrix, before)


def _all_reduce_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        pred, target = _batch(6, seed=rank)
        cm = ConfusionMatrix(6)
        cm.update(pred, target)
        cm.all_reduce()
        torch.save(cm.matrix, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two fresh interpreters import torch
def test_all_reduce_sums_over_two_gloo_processes(tmp_path):
    """Does all_reduce over two gloo processes give every rank the matrix of all the data?"""
    mp.spawn(_all_reduce_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    (p0, t0), (p1, t1) = _batch(6, seed=0), _batch(6, seed=1)
    ref = _tm_matrix(torch.cat([p0, p1]), torch.cat([t0, t1]), 6)
    for rank in range(2):
        assert torch.equal(torch.load(tmp_path / f"rank{rank}.pt"), ref)


# ---------------------------------------------------------------- benchmark script


def test_benchmark_smoke_run_writes_agreeing_results(tmp_path, capsys):
    """Does `benchmarks/bench_metrics.py --smoke` run, find labkit's mIoU equal to
    torchmetrics' and write a JSON file with a row per class count?"""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_metrics.py"
    spec = importlib.util.spec_from_file_location("bench_metrics", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--smoke", "--json", str(tmp_path / "out.json")]) == 0
    results = json.loads((tmp_path / "out.json").read_text())["results"]
    assert [r["classes"] for r in results] == [21, 150]
    assert all(r["miou_abs_diff"] <= 1e-6 and r["labkit_ms"] > 0 for r in results)
    assert "| classes | torchmetrics ms | labkit ms |" in capsys.readouterr().out


# ---------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_cuda_matches_cpu_and_matrix_follows_the_first_update():
    """On CUDA, is the matrix the CPU one, and does device=None adopt the inputs' device?"""
    C = 21
    pred, target = _batch(C, (2, 64, 64))
    logits = torch.randn(2, C, 64, 64)
    cm = ConfusionMatrix(C)
    cm.update(pred.cuda(), target.cuda())
    cm.update(logits.cuda(), target.cuda())
    assert cm.matrix.device.type == "cuda"
    ref = confusion_matrix(pred, target, C) + confusion_matrix(
        logits.cuda().argmax(1).cpu(), target, C
    )
    assert torch.equal(cm.matrix.cpu(), ref)
    assert cm.compute()["miou"] == pytest.approx(scores_from_matrix(ref)["miou"], abs=1e-12)
