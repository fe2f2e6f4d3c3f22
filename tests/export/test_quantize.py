"""`stargan-export quantize`: INT8 added to an existing bundle, PSNR recorded as measured, atomic, bad input refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from stargan_export import staging as staging_mod
from stargan_export.cli import main
from stargan_export.int8 import prepare_calibration
from stargan_export.parity import measure, ort_session
from stargan_export.quantize import quantize_bundle
from stargan_export.staging import Staging
from stargan_sdk.bundle.constants import GENERATOR_INT8_ONNX, INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
from stargan_sdk.bundle.manifest import read_manifest, sha256_file
from stargan_sdk.bundle.tolerances import AUTO_INT8_MIN_PSNR_DB


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code or 0, out, err


def _snapshot(bundle: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in bundle.iterdir()}


def test_cli_adds_int8_and_records_the_psnr_it_measured(
    bundle_copy: Path, faces: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (bundle_copy / "MODEL_CARD.md").write_text("# card\n")
    before = _snapshot(bundle_copy)
    code, out, err = _run(
        capsys, "quantize", str(bundle_copy), "--calibration", str(faces), "--count", "16", "--seed", "3", "--json"
    )
    assert code == 0, err
    row = json.loads(out)
    m = read_manifest(bundle_copy)
    art = m.artifact(precision="int8")
    assert art is not None and art.file == GENERATOR_INT8_ONNX == row["file"]
    assert art.sha256 == sha256_file(bundle_copy / GENERATOR_INT8_ONNX) == row["sha256"]
    p = art.parity
    assert (p["calibration_images"], p["held_out_images"], p["usable"]) == (12, 4, float(p["psnr_db"] >= 30))
    assert row["auto_on_cpus_without_bf16"] == (p["psnr_db"] >= AUTO_INT8_MIN_PSNR_DB and p["usable"] == 1.0)
    # Every other file is the old one, byte for byte; only the manifest and the INT8 model are new.
    after = _snapshot(bundle_copy)
    assert set(after) == set(before) | {GENERATOR_INT8_ONNX}
    assert {k for k in before if before[k] != after[k]} == {"manifest.json"}
    # The recorded PSNR is the one of the held-out quarter of the same draw, measured here independently.
    norm = m.normalization
    from stargan_sdk.images.imaging import Normalizer

    data = prepare_calibration(
        faces,
        m.image_size,
        m.attributes,
        groups=m.groups,
        num_images=16,
        seed=3,
        normalizer=Normalizer(norm["mean"], norm["std"]),
    )
    feeds = {INPUT_IMAGE: data.images[12:], INPUT_LABEL: data.labels[12:]}
    ref = ort_session(bundle_copy / "generator.onnx").run([OUTPUT_IMAGE], feeds)[0]
    got = ort_session(bundle_copy / GENERATOR_INT8_ONNX).run([OUTPUT_IMAGE], feeds)[0]
    assert measure(ref, got)["psnr_db"] == pytest.approx(p["psnr_db"], abs=1e-6)
    code, _, err = _run(capsys, "validate", str(bundle_copy))
    assert code == 0, err


def test_quantizing_again_replaces_the_int8_model(bundle_copy: Path, faces: Path) -> None:
    first = quantize_bundle(bundle_copy, faces, num_images=8, seed=1).artifact(precision="int8")
    second = quantize_bundle(bundle_copy, faces, num_images=24, seed=2)
    int8s = [a for a in second.artifacts if a.precision == "int8"]
    assert len(int8s) == 1 and int8s[0].parity["held_out_images"] == 6 and int8s[0].sha256 != first.sha256
    assert read_manifest(bundle_copy) == second
    assert not list(bundle_copy.parent.glob(".bundle.staging-*"))  # the old folder swapped out is removed


class Killed(BaseException):
    """Stands in for SIGKILL in-process: nothing after it runs (tests/export/test_staging.py does the real kill)."""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_run_stopped_around_the_swap_leaves_a_whole_bundle(
    bundle_copy: Path, faces: Path, when: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_manifest = read_manifest(bundle_copy)
    before = _snapshot(bundle_copy)
    real = staging_mod._exchange

    def exchange_then_die(a: Path, b: Path) -> None:
        if when == "after":
            real(a, b)
        raise Killed

    def close_without_cleanup(self: Staging) -> None:  # a killed process removes nothing
        os.close(self._lock_fd)
        self._lock_fd = None

    monkeypatch.setattr(staging_mod, "_exchange", exchange_then_die)
    monkeypatch.setattr(Staging, "close", close_without_cleanup)
    with pytest.raises(Killed):
        quantize_bundle(bundle_copy, faces, num_images=8)
    if when == "before":
        assert _snapshot(bundle_copy) == before and read_manifest(bundle_copy) == old_manifest
    else:
        m = read_manifest(bundle_copy)
        assert m.artifact(precision="int8").sha256 == sha256_file(bundle_copy / GENERATOR_INT8_ONNX)
        assert m.artifacts[:-1] == old_manifest.artifacts
    from stargan_sdk import Translator

    with Translator.load(bundle_copy, backend="onnxruntime") as t:  # checksums and graphs agree either way
        assert t.infer(np.zeros((1, 3, 32, 32), np.float32), np.eye(5, dtype=np.float32)[:1]).shape == (1, 3, 32, 32)
    monkeypatch.undo()
    quantize_bundle(bundle_copy, faces, num_images=8)  # the next run removes the folder the killed one left
    assert not list(bundle_copy.parent.glob(".bundle.staging-*"))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-folder", "is not a folder of face images"),
        ("count", "--count must be at least 2"),
        ("not-a-bundle", "has no manifest.json"),
        ("damaged", "generator.onnx"),
    ],
)
def test_bad_input_is_one_line_and_leaves_the_bundle(
    bundle_copy: Path, faces: Path, tmp_path: Path, case: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target, calibration, count = bundle_copy, faces, "8"
    if case == "no-folder":
        calibration = tmp_path / "nope"
    elif case == "count":
        count = "1"
    elif case == "not-a-bundle":
        target = tmp_path / "empty"
        target.mkdir()
    else:
        with open(bundle_copy / "generator.onnx", "r+b") as f:  # same size, other bytes: a checksum mismatch
            f.seek(100)
            f.write(b"\x00\x01\x02\x03")
    before = _snapshot(target)
    code, _, err = _run(capsys, "quantize", str(target), "--calibration", str(calibration), "--count", count)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert _snapshot(target) == before
