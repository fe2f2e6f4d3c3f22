"""Checkpoint and bundle weight files get the umask's mode like every other file (safetensors' writer makes
its own 0600 file), and the shipped bundle records its source checkpoint by name and sha256 only."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from stargan_export.torch_weights import torch_to_safetensors
from stargan_train.checkpoint import TrainState, capture_rng, save_checkpoint
from stargan_train.config import RunConfig
from stargan_train.model import Generator

BUNDLE = Path(__file__).resolve().parents[2] / "models" / "toyfaces-64"


@pytest.fixture(params=[0o022, 0o002, 0o027])
def mask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _tiny_state() -> TrainState:
    sd = {"w": torch.ones(2, 2)}
    return TrainState(
        iteration=3, config=RunConfig(), G=dict(sd), D=dict(sd), g_optim={}, d_optim={}, rng=capture_rng()
    )


def test_checkpoint_files_follow_the_umask(tmp_path: Path, mask: int) -> None:
    save_checkpoint(tmp_path, _tiny_state())
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert {p.name for p in files} >= {"000003.ckpt", "000003-G.safetensors", "000003-D.safetensors"}
    for p in files:
        assert oct(p.stat().st_mode & 0o777) == oct(0o666 & ~mask), p.name


def test_bundle_weights_follow_the_umask(tmp_path: Path, mask: int) -> None:
    path = tmp_path / "generator.safetensors"
    torch_to_safetensors(Generator(conv_dim=8, c_dim=5, repeat_num=1), path)
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~mask)


def test_shipped_bundle_names_its_source_without_a_path() -> None:
    source = json.loads((BUNDLE / "manifest.json").read_text(encoding="utf-8"))["source"]
    assert source["checkpoint"] == "008500.ckpt" and re.fullmatch(r"[0-9a-f]{64}", source["sha256"])
    for value in source.values():
        assert "/" not in value and "\\" not in value, value
    card = (BUNDLE / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"`008500.ckpt` (sha256 `{source['sha256']}`)" in card
    assert "/work/" not in card  # no path of the machine that trained or built it
