"""DDP with two gloo processes on CPU: gradients are synchronised (identical weights), data is sharded, only rank 0
writes."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from test_trainer import tiny_config

from procs import free_ports
from stargan_train.checkpoint import latest_checkpoint, load_checkpoint
from stargan_train.data.toyfaces import generate_toyfaces


def _worker(rank: int, world: int, port: int, toy: str, out: str) -> None:
    """One torchrun-like rank: the env variables torchrun would set, then the same entry the CLI uses."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    import stargan_train.checkpoint as ckpt
    import stargan_train.rundir as rundir
    from stargan_train import trainer as trainer_mod

    writes: list[str] = []
    atomic_write = ckpt.atomic_write

    def counting_write(path, write):  # type: ignore[no-untyped-def]
        writes.append(str(path))
        return atomic_write(path, write)

    ckpt.atomic_write = counting_write  # every file the run writes goes through it (checkpoints, config, samples)
    import stargan_train.samples as samples

    samples.atomic_write = counting_write
    enter = rundir.TrainLog.__enter__

    def counting_enter(self):  # type: ignore[no-untyped-def]
        result = enter(self)
        writes.extend(["tensorboard"] if self.writer is not None else [])
        return result

    rundir.TrainLog.__enter__ = counting_enter
    first_batches: list[torch.Tensor] = []
    make_batch = trainer_mod.Trainer.make_batch

    def recording_make_batch(self, x, label, part):  # type: ignore[no-untyped-def]
        first_batches.append(x.clone())
        return make_batch(self, x, label, part)

    trainer_mod.Trainer.make_batch = recording_make_batch
    cfg = tiny_config(
        Path(toy), batch_size=2, num_iters=6, num_iters_decay=0, model_save_step=3, sample_step=3, log_step=3
    )
    ctx = trainer_mod.init_distributed("cpu")
    try:
        trainer = trainer_mod.Trainer(cfg, Path(out) / "run", ctx=ctx, progress=False)
        initial = {k: v.clone() for k, v in trainer.G.state_dict().items()}
        trainer.fit()
        result = {
            "G": trainer.G.state_dict(),
            "D": trainer.D.state_dict(),
            "G0": initial,
            "writes": list(writes),
            "first": first_batches[0],
        }
        # Every rank resumes from the checkpoint rank 0 wrote, then keeps training in step.
        longer = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, num_iters=8))
        resumed = trainer_mod.Trainer(longer, Path(out) / "run", ctx=ctx, resume=True, progress=False)
        result["resumed_start"] = resumed.start
        resumed.fit()
        result["D_resumed"] = resumed.D.state_dict()  # iterations 7-8 update D only (G every 5th)
        torch.save(result, Path(out) / f"rank{rank}.pt")
    finally:
        trainer_mod.shutdown_distributed(ctx)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    toy = generate_toyfaces(tmp_path_factory.mktemp("toy"), 16, seed=2, width=36, height=44, progress=False)
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, free_ports(1)[0], str(toy), str(out)), nprocs=2, join=True)
    return out


def test_both_ranks_end_with_identical_trained_weights(ddp_run: Path) -> None:
    r0, r1 = (torch.load(ddp_run / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert not torch.equal(r0["first"], r1["first"]), "each rank must read its own shard"
    for part in ("G", "D"):
        for key, value in r0[part].items():
            assert torch.equal(value, r1[part][key]), f"{part} {key} differs between ranks"
    assert not torch.equal(r0["G0"]["main.0.weight"], r0["G"]["main.0.weight"])


def test_only_rank_zero_writes_and_checkpoints_hold_plain_modules(ddp_run: Path) -> None:
    r0, r1 = (torch.load(ddp_run / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r1["writes"] == []
    assert "tensorboard" in r0["writes"] and any(w.endswith("000006.ckpt") for w in r0["writes"])
    assert any(w.endswith("samples/000006.png") for w in r0["writes"])
    state = load_checkpoint(ddp_run / "run" / "checkpoints" / "000006.ckpt")
    assert not any(k.startswith("module.") for k in list(state.G) + list(state.D))
    for key, value in r0["G"].items():
        assert torch.equal(state.G[key], value)


def test_every_rank_resumes_from_rank_zeros_checkpoint(ddp_run: Path) -> None:
    r0, r1 = (torch.load(ddp_run / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["resumed_start"] == r1["resumed_start"] == 6
    for key, value in r0["D_resumed"].items():
        assert torch.equal(value, r1["D_resumed"][key]), key
    assert not torch.equal(r0["D_resumed"]["conv1.weight"], r0["D"]["conv1.weight"])
    assert load_checkpoint(latest_checkpoint(ddp_run / "run")).iteration == 8
