"""Resume is exact (bit-for-bit weights and optimizer state) and a killed run leaves no corrupt file behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from test_trainer import tiny_config

from stargan_train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from stargan_train.data.toyfaces import generate_toyfaces
from stargan_train.trainer import Trainer


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 10 images, 4 for test: 6 training images = 1 batch of 4 per epoch, so 12 iterations cross 12 epochs.
    return generate_toyfaces(tmp_path_factory.mktemp("toy"), 10, seed=3, width=36, height=44, progress=False)


class Killed(Exception):
    pass


def _assert_same_state(a: Path, b: Path) -> None:
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    assert sa.iteration == sb.iteration
    for part in ("G", "D"):
        for key, value in getattr(sa, part).items():
            assert torch.equal(value, getattr(sb, part)[key]), f"{part} {key}"
    for opt in ("g_optim", "d_optim"):
        for pid, state in getattr(sa, opt)["state"].items():
            for key, value in state.items():
                assert torch.equal(value, getattr(sb, opt)["state"][pid][key]), f"{opt} {pid} {key}"
    assert torch.equal(sa.rng["torch"], sb.rng["torch"])


@pytest.mark.parametrize("augment", [(), ("translation", "cutout")])
def test_resumed_run_matches_an_uninterrupted_one_bit_for_bit(
    toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, augment: tuple[str, ...]
) -> None:
    # With DiffAugment the random shifts and holes are part of what the checkpoint's RNG state must cover.
    cfg = tiny_config(
        toy,
        batch_size=3,
        num_iters=12,
        num_iters_decay=6,
        model_save_step=4,
        sample_step=100,
        log_step=4,
        augment=augment,
    )
    Trainer(cfg, tmp_path / "straight", progress=False).fit()

    d_step, calls = Trainer.d_step, [0]

    def dying_d_step(self: Trainer, batch: object) -> dict:
        calls[0] += 1
        if calls[0] == 11:  # iterations 1-10 ran; the last checkpoint is at 8
            raise Killed
        return d_step(self, batch)

    monkeypatch.setattr(Trainer, "d_step", dying_d_step)
    with pytest.raises(Killed):
        Trainer(cfg, tmp_path / "resumed", progress=False).fit()
    monkeypatch.setattr(Trainer, "d_step", d_step)
    assert latest_checkpoint(tmp_path / "resumed").name == "000008.ckpt"

    resumed = Trainer(cfg, tmp_path / "resumed", resume=True, progress=False)
    assert resumed.start == 8
    summary = resumed.fit()
    assert summary["start_iteration"] == 8
    _assert_same_state(tmp_path / "straight/checkpoints/000012.ckpt", tmp_path / "resumed/checkpoints/000012.ckpt")
    # The comparison has teeth: the state changed between the resume point and the end.
    before, after = (
        load_checkpoint(tmp_path / "resumed/checkpoints/000008.ckpt"),
        load_checkpoint(tmp_path / "resumed/checkpoints/000012.ckpt"),
    )
    assert not torch.equal(before.G["main.0.weight"], after.G["main.0.weight"])


def test_resume_may_extend_the_schedule_and_cleans_stale_temp_files(toy: Path, tmp_path: Path) -> None:
    cfg = tiny_config(toy, batch_size=3, num_iters=2, num_iters_decay=0, model_save_step=1, sample_step=1)
    Trainer(cfg, tmp_path, progress=False).fit()
    stale = tmp_path / "checkpoints" / ".000003.ckpt.x1y2.tmp"
    stale.write_bytes(b"half a checkpoint")
    longer = tiny_config(toy, batch_size=3, num_iters=3, num_iters_decay=0, model_save_step=1, sample_step=1)
    Trainer(longer, tmp_path, resume=True, progress=False).fit()
    assert not stale.exists()
    assert load_checkpoint(latest_checkpoint(tmp_path)).iteration == 3
    assert json.loads((tmp_path / "config.json").read_text())["train"]["num_iters"] == 3


def _check_every_file(run_dir: Path) -> None:
    """Everything visible in the run dir is complete: configs parse, checkpoints and images load."""
    json.loads((run_dir / "config.json").read_text())
    for _, path in list_checkpoints(run_dir):
        state = load_checkpoint(path)
        for part in ("G", "D"):
            weights = load_file(str(path.with_name(f"{path.stem}-{part}.safetensors")))
            assert all(torch.equal(weights[k], v) for k, v in getattr(state, part).items())
    for png in (run_dir / "samples").glob("[0-9]*.png"):
        with Image.open(png) as img:
            img.load()


def test_sigkill_between_checkpoints_leaves_no_corrupt_file_and_resumes(toy: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "stargan_train",
        "train",
        "--dataset",
        "toyfaces",
        "--data-dir",
        str(toy),
        "--run-dir",
        str(run_dir),
        "--image-size",
        "32",
        "--celeba-crop-size",
        "36",
        "--test-count",
        "4",
        "--g-conv-dim",
        "8",
        "--d-conv-dim",
        "8",
        "--g-repeat-num",
        "1",
        "--d-repeat-num",
        "3",
        "--batch-size",
        "3",
        "--num-iters",
        "100000",
        "--num-iters-decay",
        "0",
        "--num-workers",
        "0",
        "--model-save-step",
        "1",
        "--sample-step",
        "1",
        "--log-step",
        "1",
        "--keep-checkpoints",
        "2",
        "--device",
        "cpu",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(list_checkpoints(run_dir)) < 2 or latest_checkpoint(run_dir).name < "000004.ckpt":
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "training subprocess made no progress"
            time.sleep(0.05)
        time.sleep(0.13)  # land somewhere inside the next iteration's writes
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _check_every_file(run_dir)
    last = load_checkpoint(latest_checkpoint(run_dir)).iteration
    cfg = load_checkpoint(latest_checkpoint(run_dir)).config
    longer = tiny_config(
        toy, batch_size=3, num_iters=last + 2, num_iters_decay=0, model_save_step=1, sample_step=1, log_step=1
    )
    assert longer.data.celeba_image_dir == cfg.data.celeba_image_dir
    Trainer(longer, run_dir, resume=True, progress=False).fit()
    _check_every_file(run_dir)
    assert load_checkpoint(latest_checkpoint(run_dir)).iteration == last + 2
    assert not list(run_dir.rglob("*.tmp"))
