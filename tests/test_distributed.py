"""Does data-parallel training on 2 CPU processes (gloo) keep the replicas equal and score honestly?"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from labkit import distributed
from labkit.distributed import DistributedContext, init_distributed
from labkit.sampling import ResumableSampler

C = 3


def _data(n, seed, ignore=False):
    g = torch.Generator().manual_seed(seed)
    masks = torch.randint(0, C, (n, 6, 6), generator=g)
    onehot = nn.functional.one_hot(masks, C).permute(0, 3, 1, 2)  # (n, C, 6, 6)
    images = torch.rand(n, 3, 6, 6, generator=g) + onehot
    if ignore:
        masks[:, 0, :2] = 255
    return TensorDataset(images, masks)


def _model():
    torch.manual_seed(0)
    return nn.Conv2d(3, C, 1)


def _worker(rank, world, port, out):
    """One rank: a one-step epoch of DDP training, then an evaluation; results to a file."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    import labkit.train as train

    saves = []
    real_save = train.save_atomic
    train.save_atomic = lambda obj, path: (saves.append(str(path)), real_save(obj, path))
    ctx = init_distributed()
    model = _model()
    train_set, val_set = _data(8, 0), _data(7, 1, ignore=True)
    loader = DataLoader(
        train_set,
        batch_size=4,
        sampler=ResumableSampler(8, shuffle=False, num_replicas=world, rank=rank),
    )
    val = DataLoader(
        val_set,
        batch_size=2,
        sampler=ResumableSampler(7, shuffle=False, num_replicas=world, rank=rank, pad=False),
    )
    loss_fn = nn.CrossEntropyLoss(ignore_index=255)
    history = train.fit(
        model,
        loader,
        val,
        epochs=1,
        loss_fn=loss_fn,
        num_classes=C,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
        device="cpu",
        progress=False,
        checkpoint_dir=os.path.join(out, "ckpt"),
    )
    scores = train.evaluate(model, val, num_classes=C, device="cpu", loss_fn=loss_fn)
    first_saves = list(saves)
    resumed = _stop_and_resume(rank, world, out)
    torch.save(
        {
            "ctx": (ctx.rank, ctx.world_size, ctx.is_main),
            "weights": model.state_dict(),
            "row": history.rows[0],
            "matrix": scores["matrix"],
            "miou": scores["miou"],
            "loss": scores["loss"],
            "saves": first_saves,
            **resumed,
        },
        os.path.join(out, f"rank{rank}.pt"),
    )
    distributed.shutdown()


class _Stop(Exception):
    """Stands in for a kill of every rank at the same iteration."""


def _stop_and_resume(rank, world, out):
    """Train 2 epochs straight, and again stopped inside epoch 2 and resumed; both histories."""
    import labkit.train as train

    def run(folder, stop_after=None, resume=False):
        model = _model()
        sampler = ResumableSampler(8, shuffle=True, seed=1, num_replicas=world, rank=rank)
        loader = DataLoader(_data(8, 2), batch_size=2, sampler=sampler)
        val = DataLoader(
            _data(7, 1, ignore=True),
            batch_size=2,
            sampler=ResumableSampler(7, shuffle=False, num_replicas=world, rank=rank, pad=False),
        )
        ce, calls = nn.CrossEntropyLoss(ignore_index=255), [0]

        def loss(logits, target):
            if torch.is_grad_enabled():
                calls[0] += 1
                if stop_after is not None and calls[0] > stop_after:
                    raise _Stop
            return ce(logits, target)

        return train.fit(
            model,
            loader,
            val,
            epochs=2,
            loss_fn=loss,
            num_classes=C,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9),
            device="cpu",
            progress=False,
            checkpoint_every=1,
            resume=resume,
            checkpoint_dir=os.path.join(out, folder),
        ), model

    straight, model_a = run("straight")
    try:
        run("cut", stop_after=3)
    except _Stop:
        pass
    resumed, model_b = run("cut", resume=True)
    return {
        "straight": straight.rows,
        "resumed": resumed.rows,
        "same_weights": all(
            torch.equal(a, b) for a, b in zip(model_a.parameters(), model_b.parameters())
        ),
    }


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    ctx = mp.get_context("fork")
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, str(out))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=90)
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
    assert codes == [0, 0], f"ranks exited with {codes}"
    return out, [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


def test_ranks_hold_identical_weights_equal_to_one_big_batch(two_ranks):
    """After a DDP step on 2 x 4 images, are both replicas equal to one step on all 8 images?"""
    _, (r0, r1) = two_ranks
    for k in r0["weights"]:
        assert torch.equal(r0["weights"][k], r1["weights"][k])
    model = _model()
    images, masks = _data(8, 0).tensors
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    nn.CrossEntropyLoss()(model(images), masks).backward()
    opt.step()
    for k, v in model.state_dict().items():
        assert torch.allclose(r0["weights"][k], v, atol=1e-6)
    assert not torch.allclose(_model().weight, v)  # the step did change something


def test_metrics_equal_a_single_process_evaluation(two_ranks):
    """Do the summed confusion matrix, mIoU and loss equal one process scoring all 7 images?"""
    from labkit.train import evaluate

    _, (r0, r1) = two_ranks
    model = _model()
    model.load_state_dict(r0["weights"])
    single = evaluate(
        model,
        DataLoader(_data(7, 1, ignore=True), batch_size=3),
        num_classes=C,
        device="cpu",
        loss_fn=nn.CrossEntropyLoss(ignore_index=255),
    )
    for r in (r0, r1):
        assert torch.equal(r["matrix"], single["matrix"])
        assert r["miou"] == pytest.approx(single["miou"], abs=1e-12)
        assert r["loss"] == pytest.approx(single["loss"], rel=1e-6)
        assert r["row"]["miou"] == pytest.approx(single["miou"], abs=1e-12)
    assert int(single["matrix"].sum()) == 7 * (36 - 2)  # every unignored pixel counted once


def test_a_stopped_ddp_run_resumes_exactly(two_ranks):
    """Stopped inside epoch 2 on both ranks and resumed, are weights and history (train loss
    and train mIoU summed over ranks included) those of a run that never stopped?"""
    _, ranks = two_ranks
    for r in ranks:
        assert r["same_weights"]
        strip = [
            [{k: v for k, v in row.items() if k != "seconds" and v == v} for row in rows]
            for rows in (r["straight"], r["resumed"])
        ]
        assert strip[0] == strip[1] and len(strip[0]) == 2


def test_only_rank_zero_writes(two_ranks):
    """Does rank 0 alone write the checkpoints?"""
    out, (r0, r1) = two_ranks
    assert r0["ctx"] == (0, 2, True) and r1["ctx"] == (1, 2, False)
    assert r1["saves"] == [] and sorted(os.path.basename(p) for p in r0["saves"]) == [
        "best.pt",
        "last.pt",
    ]
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == ["best.pt", "last.pt"]


def test_single_process_is_a_no_op(monkeypatch):
    """Without torchrun, is everything a single process with rank 0, and the helpers no-ops?"""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed()
    assert ctx == DistributedContext() and ctx.is_main and not ctx.enabled
    t = torch.tensor([1.0, 2.0])
    assert distributed.all_reduce_sum(t) is t and t.tolist() == [1.0, 2.0]
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    model = nn.Linear(2, 2)
    assert distributed.wrap_model(model, torch.device("cpu")) is model
    distributed.barrier()
    distributed.shutdown()


def test_half_set_environment_is_an_error(monkeypatch):
    """Does WORLD_SIZE > 1 without RANK/MASTER_ADDR say to launch with torchrun?"""
    monkeypatch.setenv("WORLD_SIZE", "2")
    for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ValueError, match="torchrun"):
        init_distributed()
