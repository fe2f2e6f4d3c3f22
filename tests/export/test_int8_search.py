"""stargan_export.int8_search through quantize_onnx: a reachable PSNR target met by keeping convolutions float,
recorded in the parity and visible in the graph; an unreachable target flagged; `quantize --target-psnr`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest

from stargan_export.cli import main
from stargan_export.int8 import Calibration, float_convolutions, prepare_calibration, quantize_onnx
from stargan_export.int8_graph import conv_macs
from stargan_export.int8_search import MAX_FLOAT_FRACTION
from stargan_export.parity import measure, ort_session
from stargan_sdk.bundle.constants import GENERATOR_INT8_ONNX, INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
from stargan_sdk.bundle.manifest import Artifact, read_manifest

NUM_FACES = 24  # the `faces` fixture: 18 calibrate (the last 16 of them rank the convolutions), 6 held out


@pytest.fixture(scope="module")
def calibration(tiny_bundle: Path, faces: Path) -> Calibration:
    m = read_manifest(tiny_bundle)
    return prepare_calibration(faces, m.image_size, m.attributes, groups=m.groups, num_images=NUM_FACES)


def run(tiny_bundle: Path, calibration: Calibration, out: Path, target: float) -> Artifact:
    return quantize_onnx(tiny_bundle / "generator.onnx", out, calibration, target_psnr_db=target)


@pytest.fixture(scope="module")
def baseline(tiny_bundle: Path, calibration: Calibration, tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """Target 0 dB: met at once, every convolution but the first and the last in INT8."""
    return run(tiny_bundle, calibration, tmp_path_factory.mktemp("base") / GENERATOR_INT8_ONNX, 0.0)


def float_convs_in_graph(path: Path) -> set[str]:
    """Convolutions whose weights are not read through a DequantizeLinear: those the file runs in float."""
    model = onnx.load(str(path))
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return {
        n.name for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose") and n.input[1] not in dequantized
    }


def held_out_psnr(tiny_bundle: Path, int8_path: Path, calibration: Calibration) -> float:
    feeds = {INPUT_IMAGE: calibration.images[-6:], INPUT_LABEL: calibration.labels[-6:]}
    ref = ort_session(tiny_bundle / "generator.onnx").run([OUTPUT_IMAGE], feeds)[0]
    return measure(ref, ort_session(int8_path).run([OUTPUT_IMAGE], feeds)[0])["psnr_db"]


def check_record(art: Artifact, path: Path, tiny_bundle: Path) -> dict[str, float]:
    """The parity's float convolutions are the graph's, with their MAC shares; returns them."""
    kept = float_convolutions(art.parity)
    assert set(kept) == float_convs_in_graph(path)
    macs = conv_macs(onnx.load(str(tiny_bundle / "generator.onnx")))
    for name, share in kept.items():
        assert share == pytest.approx(macs[name] / sum(macs.values()))
    assert art.parity["quantized_mac_fraction"] == pytest.approx(1.0 - sum(kept.values()))
    return kept


def test_a_met_target_needs_no_search(baseline: Artifact, tiny_bundle: Path) -> None:
    p = baseline.parity
    assert (p["target_psnr_db"], p["target_met"], p["variants_measured"]) == (0.0, 1.0, 1.0)
    model = onnx.load(str(tiny_bundle / "generator.onnx"))
    convs = [n.name for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert set(float_convolutions(p)) == {convs[0], convs[-1]}  # the first and the last conv, as always


def test_a_reachable_target_keeps_the_fewest_sensitive_convs_float(
    baseline: Artifact, calibration: Calibration, tiny_bundle: Path, tmp_path: Path
) -> None:
    target = baseline.parity["psnr_db"] + 1.0  # the tiny model reaches ~4 dB more within the MAC budget
    path = tmp_path / GENERATOR_INT8_ONNX
    art = run(tiny_bundle, calibration, path, target)
    p = art.parity
    assert p["target_met"] == 1.0 and p["psnr_db"] >= target and p["target_psnr_db"] == target
    assert p["psnr_db"] == pytest.approx(held_out_psnr(tiny_bundle, path, calibration), abs=1e-6)
    kept = check_record(art, path, tiny_bundle)
    assert set(kept) > set(float_convolutions(baseline.parity))  # some convolutions stayed float...
    base_q = baseline.parity["quantized_mac_fraction"]
    assert MAX_FLOAT_FRACTION * base_q <= p["quantized_mac_fraction"] < base_q  # ...within the MAC budget
    assert p["variants_measured"] > len(kept)  # every candidate was measured once before the greedy steps


def test_an_unreachable_target_is_flagged_not_met_by_a_float_model(
    baseline: Artifact, calibration: Calibration, tiny_bundle: Path, tmp_path: Path
) -> None:
    path = tmp_path / GENERATOR_INT8_ONNX
    art = run(tiny_bundle, calibration, path, 150.0)
    p = art.parity
    assert p["target_met"] == 0.0 and p["psnr_db"] < 150.0
    assert p["usable"] == float(p["psnr_db"] >= p["min_psnr_db"])  # the 30 dB floor decides usability, as before
    assert p["psnr_db"] >= baseline.parity["psnr_db"]  # the most accurate variant tried is the one kept
    check_record(art, path, tiny_bundle)
    assert p["quantized_mac_fraction"] >= MAX_FLOAT_FRACTION * baseline.parity["quantized_mac_fraction"] - 1e-9


def test_cli_quantize_takes_the_target_and_notes_a_miss(
    tiny_bundle: Path, faces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    with pytest.raises(SystemExit) as info:
        main(["quantize", str(bundle), "--calibration", str(faces), "--count", "16", "--target-psnr", "150", "--json"])
    out, err = capsys.readouterr()
    assert (info.value.code or 0) == 0, err
    row = json.loads(out)
    p = read_manifest(bundle).artifact(precision="int8").parity
    assert row["parity"] == p and p["target_psnr_db"] == 150.0 and p["target_met"] == 0.0
    assert "INT8 model misses its 150 dB target" in err and f"{p['psnr_db']:.1f} dB" in err
