"""Resume is exact with DataLoader workers too (the default `--num-workers 1`): every random draw of the data
path (the flip) is a function of the seed, the epoch and the image, whichever process draws it."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch
from test_resume import _assert_same_state
from test_trainer import tiny_config

from stargan_train.checkpoint import load_checkpoint
from stargan_train.config import DataConfig
from stargan_train.data.toyfaces import generate_toyfaces
from stargan_train.trainer import Trainer


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_toyfaces(tmp_path_factory.mktemp("toy"), 20, seed=3, width=36, height=44, progress=False)


def _config(toy: Path, workers: int):
    # 16 training images, batch 2: 8 batches an epoch, so the checkpoint at 9 is in the middle of an epoch and
    # 7 batches (14 flips) come before the next epoch
    cfg = tiny_config(
        toy,
        batch_size=2,
        num_iters=16,
        num_iters_decay=8,
        model_save_step=3,
        sample_step=100,
        keep_checkpoints=0,
        log_step=3,
    )
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, num_workers=workers))


def test_default_workers_resume_bit_for_bit(toy: Path, tmp_path: Path) -> None:
    assert DataConfig().num_workers == 1  # the default this test is about
    cfg = _config(toy, DataConfig().num_workers)
    Trainer(cfg, tmp_path / "straight", progress=False).fit()
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "straight", resumed)
    for p in (resumed / "checkpoints").glob("0000[1][2-6]*"):
        p.unlink()  # as if the run had stopped after its checkpoint at 9
    trainer = Trainer(cfg, resumed, resume=True, progress=False)
    assert trainer.start == 9
    trainer.fit()
    _assert_same_state(tmp_path / "straight/checkpoints/000016.ckpt", resumed / "checkpoints/000016.ckpt")


def test_the_worker_count_does_not_change_the_run(toy: Path, tmp_path: Path) -> None:
    for workers in (0, 2):
        Trainer(_config(toy, workers), tmp_path / f"w{workers}", progress=False).fit()
    _assert_same_state(tmp_path / "w0/checkpoints/000016.ckpt", tmp_path / "w2/checkpoints/000016.ckpt")
    assert not torch.equal(
        load_checkpoint(tmp_path / "w0/checkpoints/000003.ckpt").G["main.0.weight"],
        load_checkpoint(tmp_path / "w0/checkpoints/000016.ckpt").G["main.0.weight"],
    )
