"""stargan translate FOLDER through the pipeline: a kill mid-run then --skip-existing, Ctrl-C, the --json summary.

Usage: pytest -q tests/sdk/test_pipeline_cli.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from procs import descendants

STARGAN = str(Path(sys.executable).with_name("stargan"))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(5)
    for i in range(300):
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(src / f"{i:04d}.png")
    return src


def _cmd(bundle: Path, src: Path, out: Path, *extra: str) -> list[str]:
    return [
        STARGAN,
        "translate",
        str(src),
        "--bundle",
        str(bundle),
        "-o",
        str(out),
        "--set",
        "Blond_Hair=1",
        "--crop",
        "--backend",
        "onnxruntime",
        "--batch-size",
        "4",
        *extra,
    ]


def _wait_for_outputs(out: Path, proc: subprocess.Popen, n: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and len(list(out.glob("*.png"))) >= n:
            return
        time.sleep(0.05)


def test_kill_then_skip_existing_finishes(bundle: Path, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(_cmd(bundle, folder, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_outputs(out, proc, 10)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run(_cmd(bundle, folder, out, "--skip-existing", "--json"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["counts"]["failed"] == 0 and sum(summary["counts"].values()) == 300
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in folder.iterdir())  # no temp files left
    for p in out.iterdir():
        with Image.open(p) as im:
            im.load()  # every output is a whole, valid image
            assert im.size == (36, 36)  # --crop: the centre square


def test_ctrl_c_leaves_no_processes(bundle: Path, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(_cmd(bundle, folder, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for_outputs(out, proc, 5)
    kids = descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) != 0 or len(list(out.glob("*.png"))) == 300
    for pid in kids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not list(out.glob(".*.tmp"))


def test_json_summary_and_bad_file(bundle: Path, folder: Path, tmp_path: Path) -> None:
    (folder / "0100.png").write_bytes(b"broken")
    run = subprocess.run(_cmd(bundle, folder, tmp_path / "out", "--json"), capture_output=True, text=True)
    assert run.returncode == 2
    summary = json.loads(run.stdout)
    assert summary["counts"] == {"ok": 299, "failed": 1, "skipped": 0}
    assert set(summary["stage_seconds"]) == {"prepare", "engine", "finish"} and summary["images_per_s"] > 0
    assert [line for line in run.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {folder / '0100.png'}: {summary['failed'][str(folder / '0100.png')]}"
    ]


def test_compile_note_names_inductor_only(bundle: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`stargan translate` says it is compiling before an inductor load (a silent minute looks like a hang)."""
    from stargan_sdk.cli.stargan import compile_note

    monkeypatch.setenv("STARGAN_CACHE_DIR", str(tmp_path / "cache"))
    note = compile_note(bundle, "inductor")
    assert note and "TorchInductor" in note and str(tmp_path / "cache" / "inductor") in note
    assert compile_note(bundle, "onnxruntime") is None
    assert compile_note(bundle, "auto") is None  # no GPU here: auto picks a CPU backend, nothing compiles
    assert compile_note(tmp_path / "missing", "inductor") is None  # the load itself reports what is wrong


@pytest.mark.slow
def test_translate_with_inductor_prints_the_compile_note(bundle: Path, tmp_path: Path) -> None:
    face = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(face)
    env = {**os.environ, "STARGAN_CACHE_DIR": str(tmp_path / "cache")}
    run = subprocess.run(
        [
            STARGAN,
            "translate",
            str(face),
            "--bundle",
            str(bundle),
            "-o",
            str(tmp_path / "out.png"),
            "--set",
            "Blond_Hair=1",
            "--backend",
            "inductor",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert lines[0].startswith("note: compiling the generator with TorchInductor")
    assert any(line.startswith("note: compiled and checked in ") for line in lines[1:])
    assert (tmp_path / "out.png").is_file()
