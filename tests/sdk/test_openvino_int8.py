"""OpenVINO `auto` on a CPU without BF16, on a real tiny INT8 bundle (`stargan-export build --int8-calibration`).

The CPU is told what it has through STARGAN_CPU_CAPABILITIES (never assumed from the machine), so these tests mean
the same on AVX2-only, AVX-512 and AMX CPUs. The tiny seeded model quantizes to ~35 dB, below the 40 dB bar: `auto`
keeps FP32 with the real bar, and runs INT8 when the bar is set just under the PSNR the build recorded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stargan_sdk import Translator
from stargan_sdk.backends import openvino as ov_backend
from stargan_sdk.bundle.constants import GENERATOR_INT8_ONNX
from stargan_sdk.bundle.manifest import read_manifest
from stargan_sdk.bundle.tolerances import AUTO_INT8_MIN_PSNR_DB, psnr_db

pytest.importorskip("openvino", reason="openvino is not installed (pip install 'stargan[openvino]')")

ATTRS = "Black_Hair,Blond_Hair,Brown_Hair,Male,Young"
NO_BF16 = "FP32,INT8"  # what OpenVINO reports on an AVX2-only CPU
FACES = 24


@pytest.fixture(scope="module")
def int8_bundle(official_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(bundle with generator.int8.onnx, the calibration faces), built the way a user does."""
    from stargan_export.cli import main
    from stargan_train.data.toyfaces import render_face, sample_params

    root = tmp_path_factory.mktemp("int8")
    faces = root / "faces"
    faces.mkdir()
    rng = np.random.default_rng(11)
    for i in range(FACES):
        Image.fromarray(render_face(sample_params(rng), width=64, height=78)[0]).save(faces / f"{i:02d}.png")
    out = root / "bundle"
    with pytest.raises(SystemExit) as info:
        main(
            [
                "build",
                str(official_checkpoint),
                "--out",
                str(out),
                "--attrs",
                ATTRS,
                "--image-size",
                "32",
                "--max-batch",
                "8",
                "--opt-batch",
                "1",
                "--no-torch-weights",
                "--no-fp16",
                "--no-engine",
                "--int8-calibration",
                str(faces),
                "--int8-target-psnr",  # no search: every conv but the first and last INT8, under auto's 40 dB bar
                "0",
                "--json",
            ]
        )
    assert (info.value.code or 0) == 0
    return out, faces


def _held_out(bundle: Path, faces: Path) -> tuple[np.ndarray, np.ndarray]:
    """The quarter of the calibration draw the build held out to record the PSNR (same folder, seed and count)."""
    from stargan_export.int8 import prepare_calibration

    m = read_manifest(bundle)
    data = prepare_calibration(faces, m.image_size, m.attributes, groups=m.groups)
    return data.images[-FACES // 4 :], data.labels[-FACES // 4 :]


def _fp32(bundle: Path, x: np.ndarray, c: np.ndarray) -> np.ndarray:
    with Translator.load(bundle, backend="onnxruntime") as t:
        return t.infer(x, c)


def test_auto_runs_int8_when_its_recorded_psnr_passes_the_bar(
    int8_bundle: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle, faces = int8_bundle
    recorded = read_manifest(bundle).artifact(precision="int8").parity["psnr_db"]
    monkeypatch.setenv(ov_backend.CAPABILITIES_ENV, NO_BF16)
    monkeypatch.setattr(ov_backend, "AUTO_INT8_MIN_PSNR_DB", recorded - 0.5)  # the tiny model's PSNR just passes
    x, c = _held_out(bundle, faces)
    with Translator.load(bundle, backend="openvino") as t:
        info = t.describe()
        assert (info["precision"], info["file"], info["float_precision"]) == ("int8", GENERATOR_INT8_ONNX, "fp32")
        assert info["precision_reason"].startswith("auto: no BF16") and f"{recorded:.1f} dB" in info["precision_reason"]
        got = t.infer(x, c)
    # OpenVINO's INT8 kernels round differently from ONNX Runtime's, which recorded the PSNR: same quality, not bits.
    assert abs(psnr_db(_fp32(bundle, x, c), got) - recorded) < 3.0


def test_auto_keeps_fp32_when_the_recorded_psnr_is_below_the_bar(
    int8_bundle: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle, faces = int8_bundle
    recorded = read_manifest(bundle).artifact(precision="int8").parity["psnr_db"]
    assert 25.0 < recorded < AUTO_INT8_MIN_PSNR_DB  # the seeded tiny model: usable (>= 30 dB) but below auto's bar
    monkeypatch.setenv(ov_backend.CAPABILITIES_ENV, NO_BF16)
    x, c = _held_out(bundle, faces)
    with Translator.load(bundle, backend="openvino") as t:
        info = t.describe()
        assert (info["precision"], info["file"]) == ("fp32", "generator.onnx")
        assert f"PSNR {recorded:.1f} dB is below {AUTO_INT8_MIN_PSNR_DB:g} dB" in info["precision_reason"]
        assert psnr_db(_fp32(bundle, x, c), t.infer(x, c)) > 100  # the FP32 graph, another engine
    with Translator.load(bundle, backend="openvino", precision="int8") as t:  # asked for by name: it runs
        assert t.describe()["precision"] == "int8"
        assert abs(psnr_db(_fp32(bundle, x, c), t.infer(x, c)) - recorded) < 3.0


def test_a_bf16_cpu_keeps_bf16_whatever_the_int8_model(
    int8_bundle: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle, _ = int8_bundle
    m = read_manifest(bundle)
    monkeypatch.setattr(ov_backend, "AUTO_INT8_MIN_PSNR_DB", 0.0)
    assert ov_backend.choose_precision("auto", ("FP32", "INT8", "BF16"), m) == ("bf16", "auto: the CPU reports BF16")
    assert ov_backend.choose_precision("auto", ("FP32", "INT8"), m)[0] == "int8"
    assert ov_backend.choose_precision("fp32", ("FP32", "INT8"), m) == ("fp32", "requested precision='fp32'")
