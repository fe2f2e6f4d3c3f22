"""The one-call GPU training script (training/gpu_train.py): its ranking, its file splitting for the device's
16 MiB limit, and (slow) its whole dry run on the CPU."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "training" / "gpu_train.py"


@pytest.fixture(scope="module")
def gpu_train():
    spec = importlib.util.spec_from_file_location("gpu_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(identity: float, accuracy: float) -> dict:
    cf = {"identity": {"psnr": identity}, "Male": {"psnr": 20.0}, "Young": {"psnr": 24.0}}
    cf |= {h: {"psnr": 23.0, "psnr_outside": 27.0} for h in ("Black_Hair", "Blond_Hair", "Brown_Hair")}
    return {"counterfactual": cf, "mean_target_accuracy": accuracy}


def test_the_score_is_the_mean_psnr_and_inaccurate_models_rank_last(gpu_train) -> None:
    assert gpu_train.score(_report(27.0, 0.99)) == pytest.approx((27 + 3 * 23 + 3 * 27 + 20 + 24) / 9)
    assert gpu_train.score(_report(28.0, 0.99)) > gpu_train.score(_report(27.0, 0.99))
    assert gpu_train.score(_report(40.0, 0.90)) < gpu_train.score(_report(20.0, 0.95))


def test_large_files_are_split_under_the_device_limit_and_join_back(gpu_train, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(gpu_train, "PART_BYTES", 1000)
    src, out = tmp_path / "w.safetensors", tmp_path / "out"
    out.mkdir()
    data = bytes(range(256)) * 10  # 2,560 bytes: three parts
    src.write_bytes(data)
    names = gpu_train.split_into(src, out, "G.safetensors")
    assert names == ["G.safetensors.part00", "G.safetensors.part01", "G.safetensors.part02"]
    assert all((out / n).stat().st_size <= 1000 for n in names)
    assert b"".join((out / n).read_bytes() for n in sorted(names)) == data
    small = tmp_path / "small"
    small.write_bytes(b"x" * 1000)
    assert gpu_train.split_into(small, out, "D.safetensors") == ["D.safetensors"]


@pytest.mark.slow
def test_the_dry_run_trains_evaluates_and_returns_the_winner(tmp_path: Path) -> None:
    import subprocess

    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--dry-run", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "candidates.json").read_text())
    winner = summary["winner"]["name"]
    assert set(summary["candidates"]) == {"g8r1", "g8r2-bf16"}
    assert all("score" in c and c["iterations"] >= 10 for c in summary["candidates"].values())
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "candidates.json",
            "train.log",
            f"{winner}-G.safetensors",
            f"{winner}-D.safetensors",
            f"{winner}-config.json",
            f"{winner}-samples.png",
        ]
    )
    assert len(list(out.iterdir())) <= 8 and all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())
