"""stargan_export.int8: QDQ INT8 from face images, PSNR vs FP32, usable flag, bad input, `build --int8-calibration`."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
from PIL import Image

from stargan_export.errors import ExportError
from stargan_export.int8 import (
    float_convolutions,
    prepare_calibration,
    quantize_onnx,
    random_labels,
    read_calibration_images,
)
from stargan_export.parity import measure, ort_session, sample_images, sample_labels
from stargan_sdk.bundle.constants import GENERATOR_INT8_ONNX, INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
from stargan_sdk.bundle.manifest import Artifact, Manifest, derive_groups, read_manifest, sha256_file, write_manifest
from stargan_sdk.errors import BackendUnavailableError
from stargan_sdk.images.imaging import Normalizer

NUM_FACES = 24  # the `faces` fixture (tests/export/conftest.py): 18 calibrate, 6 held out


def quantize(
    bundle: Path, faces: Path, *, num_images: int, min_psnr_db: float, target_psnr_db: float = 0.0
) -> Artifact:
    """What `build --int8-calibration` runs in its staging folder: generator.int8.onnx beside the FP32 ONNX.
    Target 0 dB: every convolution but the first and the last in INT8 (the search is tested in test_int8_search)."""
    m = read_manifest(bundle)
    fp32 = m.artifact(role="generator", kind="onnx", precision="fp32")
    calibration = prepare_calibration(faces, m.image_size, m.attributes, groups=m.groups, num_images=num_images)
    return quantize_onnx(
        bundle / fp32.file,
        bundle / GENERATOR_INT8_ONNX,
        calibration,
        min_psnr_db=min_psnr_db,
        target_psnr_db=target_psnr_db,
        opset=fp32.opset,
    )


def with_artifact(bundle: Path, art: Artifact) -> Manifest:
    """The bundle's manifest listing `art` too, written (the build writes its manifest once, at the end)."""
    m = read_manifest(bundle)
    updated = dataclasses.replace(m, artifacts=(*m.artifacts, art))
    write_manifest(bundle, updated)
    return updated


@pytest.fixture(scope="module")
def quantized(tiny_bundle: Path, faces: Path, tmp_path_factory: pytest.TempPathFactory):
    """A private bundle copy with the INT8 artifact written (not yet in the manifest), and its record."""
    bundle = Path(shutil.copytree(tiny_bundle, tmp_path_factory.mktemp("int8") / "bundle"))
    artifact = quantize(bundle, faces, num_images=NUM_FACES, min_psnr_db=30.0)
    return bundle, artifact


def test_int8_artifact_is_a_per_channel_qdq_graph(quantized) -> None:
    bundle, art = quantized
    path = bundle / GENERATOR_INT8_ONNX
    assert (art.kind, art.role, art.precision, art.file) == ("onnx", "generator", "int8", GENERATOR_INT8_ONNX)
    assert art.sha256 == sha256_file(path)
    assert art.opset == read_manifest(bundle).artifact(precision="fp32").opset
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 5 and ops.count("DequantizeLinear") >= 10
    assert "InstanceNormalization" in ops  # normalisation stays float
    # Only convolutions read rounded activations: InstanceNorm and the residual Adds read the float tensors.
    quantized = {n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    rounded = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in quantized}
    readers = {n.op_type for n in model.graph.node if rounded & set(n.input)}
    assert readers == {"Conv", "ConvTranspose"}
    assert "Add" in ops
    # Per-channel weights: a DequantizeLinear over an int8 initializer with one scale per output channel.
    inits = {i.name: i for i in model.graph.initializer}
    per_channel = [
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and n.input[0] in inits
        and inits[n.input[0]].data_type == onnx.TensorProto.INT8
        and len(inits[n.input[1]].dims) == 1
        and inits[n.input[1]].dims[0] > 1
    ]
    assert len(per_channel) >= 8
    # 7-bit weights: AVX2 CPUs (no VNNI) sum u8 x s8 pairs in saturating int16, which 8-bit weights overflow.
    weights = np.concatenate([onnx.numpy_helper.to_array(inits[n.input[0]]).ravel() for n in per_channel])
    assert np.abs(weights.astype(int)).max() == 64  # symmetric [-64, 64]: 2 x 255 x 64 < 32767, so no overflow
    mask = os.umask(0o022)
    os.umask(mask)
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~mask)  # like any file open() creates


def test_recorded_psnr_matches_an_independent_measurement(quantized) -> None:
    bundle, art = quantized
    p = art.parity
    assert p is not None and p["calibration_images"] == 18 and p["held_out_images"] == 6
    assert 20.0 < p["psnr_db"] < 80.0 and 0 < p["mean_abs"] < p["max_abs"] < 1.0
    assert p["usable"] == float(p["psnr_db"] >= 30.0) and p["min_psnr_db"] == 30.0
    image, label = sample_images(8, 32, seed=3), sample_labels(8, 5, seed=3)
    feeds = {INPUT_IMAGE: image, INPUT_LABEL: label}
    ref = ort_session(bundle / "generator.onnx").run([OUTPUT_IMAGE], feeds)[0]
    got = ort_session(bundle / GENERATOR_INT8_ONNX).run([OUTPUT_IMAGE], feeds)[0]
    assert abs(measure(ref, got)["psnr_db"] - p["psnr_db"]) < 6.0  # other images, same quantization quality


def test_openvino_runs_the_int8_artifact(quantized, tmp_path: Path) -> None:
    pytest.importorskip("openvino", reason="openvino is not installed (pip install 'stargan[openvino]')")
    from stargan_sdk.backends.openvino import OpenVinoBackend

    bundle = Path(shutil.copytree(quantized[0], tmp_path / "b"))
    # Marked usable whatever the tiny model scored: this test is about OpenVINO running the QDQ graph.
    art = dataclasses.replace(quantized[1], parity={**quantized[1].parity, "usable": 1.0})
    manifest = with_artifact(bundle, art)
    image, label = sample_images(4, 32, seed=5), sample_labels(4, 5, seed=5)
    feeds = {INPUT_IMAGE: image, INPUT_LABEL: label}
    ref = ort_session(bundle / "generator.onnx").run([OUTPUT_IMAGE], feeds)[0]
    int8_ort = ort_session(bundle / GENERATOR_INT8_ONNX).run([OUTPUT_IMAGE], feeds)[0]
    with OpenVinoBackend(bundle, manifest, precision="int8", cpu_capabilities=["FP32", "INT8"]) as b:
        got = b.infer(feeds)[OUTPUT_IMAGE]
        assert b.describe()["precision"] == "int8" and b.describe()["file"] == GENERATOR_INT8_ONNX
    # OpenVINO's INT8 kernels round a little differently from ONNX Runtime's: same quality, not same bits.
    assert abs(measure(ref, got)["psnr_db"] - measure(ref, int8_ort)["psnr_db"]) < 3.0
    assert measure(int8_ort, got)["psnr_db"] > measure(ref, int8_ort)["psnr_db"]


def test_usable_flag_follows_the_bar(tiny_bundle: Path, faces: Path, tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    strict = quantize(bundle, faces, num_images=8, min_psnr_db=150.0)
    assert strict.parity["usable"] == 0.0 and (bundle / GENERATOR_INT8_ONNX).is_file()  # written, but marked
    manifest = with_artifact(bundle, strict)
    pytest.importorskip("openvino", reason="openvino is not installed: the SDK refusal is tested in tests/sdk")
    from stargan_sdk.backends.openvino import OpenVinoBackend

    with pytest.raises(BackendUnavailableError, match=rf"{strict.parity['psnr_db']:.1f} dB PSNR.*below the 150 dB"):
        OpenVinoBackend(bundle, manifest, precision="int8").load()
    lenient = quantize(bundle, faces, num_images=8, min_psnr_db=0.0)
    assert lenient.parity["usable"] == 1.0
    assert lenient.parity["psnr_db"] == pytest.approx(strict.parity["psnr_db"])  # same seed, same images


def test_calibration_images_are_centre_cropped_resized_and_normalised(tmp_path: Path, tiny_bundle: Path) -> None:
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, :20] = (255, 0, 0)  # red bands left and right of the centred 40x40 square
    wide[:, 60:] = (255, 0, 0)
    wide[:, 20:60] = (0, 255, 0)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    Image.fromarray(np.full((50, 50), 255, np.uint8), mode="L").save(tmp_path / "grey.jpg", quality=100)
    out = read_calibration_images(
        tmp_path, read_manifest(tiny_bundle).image_size, 8, np.random.default_rng(0), Normalizer()
    )
    assert out.shape == (2, 3, 32, 32) and out.dtype == np.float32
    grey, green = out  # sorted by name
    np.testing.assert_allclose(green[1], 1.0)
    np.testing.assert_allclose(green[[0, 2]], -1.0)
    np.testing.assert_allclose(grey, 1.0, atol=2 / 255)


def test_a_random_subset_is_used_when_the_folder_holds_more(faces: Path, tiny_bundle: Path) -> None:
    size = read_manifest(tiny_bundle).image_size
    a, b, c = (read_calibration_images(faces, size, 5, np.random.default_rng(seed), Normalizer()) for seed in (1, 1, 2))
    assert a.shape == (5, 3, 32, 32)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_random_labels_are_valid_domains() -> None:
    attrs = (
        "Black_Hair",
        "Blond_Hair",
        "Brown_Hair",
        "Male",
        "Young",
        "angry",
        "happy",
        "neutral",
        "mask_celeba",
        "mask_rafd",
    )
    m = Manifest(
        attributes=attrs,
        groups=derive_groups(attrs),
        image_size=32,
        dataset="both",
        generator={"conv_dim": 8, "c_dim": len(attrs), "repeat_num": 1},
        artifacts=(),
        source={},
    )
    labels = random_labels(m, 200, np.random.default_rng(0))
    hair, binary, expr, mask = labels[:, :3], labels[:, 3:5], labels[:, 5:8], labels[:, 8:]
    assert set(np.unique(labels)) == {0.0, 1.0}
    np.testing.assert_array_equal(mask.sum(1), 1)
    rafd = mask[:, 1] == 1
    assert 50 < rafd.sum() < 150  # both dataset halves are calibrated
    np.testing.assert_array_equal(expr[rafd].sum(1), 1)
    np.testing.assert_array_equal(hair[~rafd].sum(1), 1)
    assert not hair[rafd].any() and not binary[rafd].any() and not expr[~rafd].any()
    assert 0.3 < binary[~rafd].mean() < 0.7


@pytest.mark.parametrize(
    ("setup", "kwargs", "message"),
    [
        ("missing", {}, "calibration folder not found"),
        ("one", {}, "holds 1 image"),
        ("corrupt", {}, "cannot use calibration image bad.png"),
        ("ok", {"num_images": 1}, "num_images must be an integer >= 2"),
    ],
)
def test_bad_calibration_input_is_refused(
    tiny_bundle: Path, tmp_path: Path, setup: str, kwargs: dict, message: str
) -> None:
    folder = tmp_path / "faces"
    if setup != "missing":
        folder.mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "a.png")
    if setup in ("corrupt", "ok"):
        (folder / "bad.png" if setup == "corrupt" else folder / "b.png").write_bytes(
            b"not a png" if setup == "corrupt" else (folder / "a.png").read_bytes()
        )
    m = read_manifest(tiny_bundle)
    with pytest.raises(ExportError, match=message):
        prepare_calibration(folder, m.image_size, m.attributes, **kwargs)


def test_cli_build_with_int8_calibration_then_validate(
    official_checkpoint: Path, faces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stargan_export.cli import main
    from stargan_sdk.bundle.manifest import read_manifest

    out = tmp_path / "bundle"
    args = [
        "build",
        str(official_checkpoint),
        "--out",
        str(out),
        "--image-size",
        "32",
        "--max-batch",
        "2",
        "--opt-batch",
        "1",
        "--no-torch-weights",
        "--attrs",
        "Black_Hair,Blond_Hair,Brown_Hair,Male,Young",
        "--int8-calibration",
        str(faces),
        "--int8-target-psnr",
        "20",
        "--json",
    ]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert (info.value.code or 0) == 0, capsys.readouterr().err
    art = read_manifest(out).artifact(precision="int8")
    assert art is not None and art.parity["psnr_db"] >= 30 and art.parity["usable"] == 1.0
    assert art.parity["target_psnr_db"] == 20.0 and art.parity["target_met"] == 1.0  # met without a search
    assert art.parity["variants_measured"] == 1.0 and len(float_convolutions(art.parity)) == 2
    with pytest.raises(SystemExit) as info:
        main(["validate", str(out)])
    assert (info.value.code or 0) == 0, capsys.readouterr().err
    # A rebuild whose calibration folder holds a bad image fails before the bundle is touched: the old
    # manifest and INT8 model stay, byte for byte.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad-faces"
    shutil.copytree(faces, bad)
    (bad / "face05.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([*args[:-5], "--int8-calibration", str(bad), "--fp16"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "cannot use calibration image face05.png" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_cli_refuses_a_missing_calibration_folder_before_exporting(
    official_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stargan_export.cli import main

    out = tmp_path / "bundle"
    with pytest.raises(SystemExit) as info:
        main(
            [
                "build",
                str(official_checkpoint),
                "--out",
                str(out),
                "--attrs",
                "Black_Hair,Blond_Hair,Brown_Hair,Male,Young",
                "--int8-calibration",
                str(tmp_path / "nope"),
            ]
        )
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.strip().splitlines()[-1].startswith("error: ") and "not a folder" in err
    assert not out.exists()
