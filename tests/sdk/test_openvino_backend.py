"""OpenVINO backend: FP32/BF16 parity vs ONNX Runtime, precision choice and refusal, shape cache, pipelining, errors."""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from stargan_sdk.bundle.constants import INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
from stargan_sdk.bundle.manifest import Artifact, read_manifest
from stargan_sdk.errors import BackendOptionError, BackendUnavailableError, BundleError, ImageInputError, StarGANError
from stargan_sdk.images.imaging import Normalizer, center_crop, to_model_rgb

pytest.importorskip("openvino", reason="openvino is not installed (pip install 'stargan[openvino]')")

from stargan_sdk.backends.openvino import (  # noqa: E402
    CAPABILITIES_ENV,
    OpenVinoBackend,
    choose_precision,
    cpu_capabilities,
    resolve_precision,
)
from stargan_sdk.bundle.tolerances import AUTO_INT8_MIN_PSNR_DB  # noqa: E402

SIZE, C_DIM = 32, 5
NO_BF16 = ["FP32", "INT8"]  # what an AVX2 or AVX-512 CPU without BF16 reports


def _psnr(ref: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10(4.0 / np.mean((ref.astype(np.float64) - got) ** 2)))  # images span [-1, 1]


@pytest.fixture(scope="module")
def faces() -> dict[str, np.ndarray]:
    """24 toy faces prepared as the SDK prepares photos, with valid labels (one hair colour, 0/1 others)."""
    from stargan_train.data.toyfaces import render_face, sample_params

    rng = np.random.default_rng(0)
    photos = [render_face(sample_params(rng), width=64, height=78)[0] for _ in range(24)]
    rgb = [to_model_rgb(center_crop(p), SIZE)[0] for p in photos]
    labels = np.zeros((24, C_DIM), np.float32)
    labels[np.arange(24), rng.integers(0, 3, 24)] = 1.0
    labels[:, 3:] = rng.integers(0, 2, (24, 2))
    return {INPUT_IMAGE: Normalizer().preprocess(rgb), INPUT_LABEL: labels}


@pytest.fixture(scope="module")
def reference(bundle: Path, faces: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(bundle / "generator.onnx"), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_IMAGE], faces)[0]


def _backend(bundle: Path, **options) -> OpenVinoBackend:
    return OpenVinoBackend(bundle, read_manifest(bundle), **options)


def _take(feeds: dict[str, np.ndarray], rows: slice) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in feeds.items()}


def test_fp32_matches_onnxruntime(bundle: Path, faces, reference) -> None:
    with _backend(bundle, precision="fp32", cuda_graphs=True) as b:  # cuda_graphs: what Translator.load passes
        for rows in (slice(0, 1), slice(0, 24)):
            out = b.infer(_take(faces, rows))[OUTPUT_IMAGE]
            assert out.dtype == np.float32 and out.shape == reference[rows].shape
            assert np.abs(out - reference[rows]).max() <= 1e-4
        info = b.describe()
    assert info["precision"] == "fp32" and {c["inference_precision"] for c in info["compiled"]} == {"f32"}
    assert info["openvino_version"] and info["threads"] >= 1 and "FP32" in info["cpu_capabilities"]


def test_bf16_psnr_on_a_cpu_with_bf16(bundle: Path, faces, reference) -> None:
    # Asked before loading: on a CPU without BF16 the load itself refuses precision="bf16".
    if "BF16" not in cpu_capabilities():
        pytest.skip("this CPU has no BF16 (no avx512_bf16/AMX); the forced fallback is tested below")
    with _backend(bundle, precision="bf16") as b:
        out = b.infer(faces)[OUTPUT_IMAGE]
        assert b.describe()["compiled"][0]["inference_precision"] == "bf16"
    assert 45.0 <= _psnr(reference, out) < 80.0  # really BF16 (FP32 would give > 100 dB), and accurate enough


def test_auto_follows_the_cpu_capabilities(bundle: Path, faces, reference) -> None:
    with _backend(bundle, precision="auto", cpu_capabilities=NO_BF16) as b:
        out = b.infer(_take(faces, slice(0, 4)))[OUTPUT_IMAGE]
        assert b.describe()["precision"] == "fp32" and b.describe()["compiled"][0]["inference_precision"] == "f32"
    assert np.abs(out - reference[:4]).max() <= 1e-4  # the fallback really runs FP32
    with _backend(bundle, cpu_capabilities=["FP32", "BF16"]) as b:  # "auto" is the default
        assert b.describe()["precision"] == "bf16"
    with _backend(bundle, cpu_capabilities=[]) as b:  # an empty report is a report, not "ask the CPU"
        assert b.describe()["precision"] == "fp32"
    assert resolve_precision("auto", ("FP32", "BF16")) == "bf16" and resolve_precision("auto", ()) == "fp32"


def test_capabilities_override_is_what_load_sees(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """STARGAN_CPU_CAPABILITIES makes any machine answer as an AVX2-only CPU would (CI runs the suite so too)."""
    monkeypatch.setenv(CAPABILITIES_ENV, " fp32, INT8 ,")
    assert cpu_capabilities() == ("FP32", "INT8")
    with _backend(bundle) as b:
        assert b.describe()["precision"] == "fp32" and b.describe()["cpu_capabilities"] == ["FP32", "INT8"]
    with pytest.raises(BackendUnavailableError, match="no BF16 support"):
        _backend(bundle, precision="bf16").load()
    monkeypatch.setenv(CAPABILITIES_ENV, "FP32,BF16")
    with _backend(bundle) as b:
        assert b.describe()["precision"] == "bf16"


def test_bf16_is_refused_on_a_cpu_without_it(bundle: Path) -> None:
    b = _backend(bundle, precision="bf16", cpu_capabilities=NO_BF16)
    with pytest.raises(BackendUnavailableError, match="no BF16 support.*precision='fp32'"):
        b.load()
    assert not b.loaded


def test_static_shapes_compile_once_per_batch_size(bundle: Path, faces, reference) -> None:
    with _backend(bundle, precision="fp32") as b:
        for n in (1, 3, 1, 3, 3):
            np.testing.assert_allclose(b.infer(_take(faces, slice(0, n)))[OUTPUT_IMAGE], reference[:n], atol=1e-4)
        assert b.compile_count == 2
        assert [(c["batch"], c["hint"]) for c in b.describe()["compiled"]] == [(1, "latency"), (3, "latency")]
        # The declared (dynamic) shapes, not the static ones the graph was reshaped to.
        assert b.input_shapes() == {INPUT_IMAGE: ("N", 3, SIZE, SIZE), INPUT_LABEL: ("N", C_DIM)}


def test_infer_batches_equals_sequential_in_order(bundle: Path, faces) -> None:
    sizes = (4, 4, 4, 2, 4, 4, 2)  # mixed sizes, more batches than requests in flight
    starts = np.cumsum((0,) + sizes[:-1])
    batches = [_take(faces, slice(s, s + n)) for s, n in zip(starts, sizes)]
    with _backend(bundle, precision="fp32", num_requests=2) as b:
        sequential = [b.infer(x)[OUTPUT_IMAGE] for x in batches]
        pipelined = b.infer_batches(batches)
        assert {(c["batch"], c["hint"]) for c in b.describe()["compiled"]} >= {(4, "throughput"), (2, "throughput")}
    assert len(pipelined) == len(batches)
    for seq, pipe in zip(sequential, pipelined):
        np.testing.assert_allclose(pipe[OUTPUT_IMAGE], seq, atol=1e-5)


def test_a_bad_batch_in_infer_batches_is_refused_after_the_others_finish(bundle: Path, faces) -> None:
    good = _take(faces, slice(0, 2))
    with _backend(bundle, precision="fp32") as b:
        with pytest.raises(ImageInputError, match=r"expected image \[N, 3, 32, 32\]"):
            b.infer_batches([good, good, {INPUT_IMAGE: good[INPUT_IMAGE][:, :2], INPUT_LABEL: good[INPUT_LABEL]}])
        assert b.infer_batches([good])[0][OUTPUT_IMAGE].shape == (2, 3, SIZE, SIZE)  # still usable


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"precision": "fp16"}, "precision must be one of auto, fp32, bf16, int8"),
        ({"threads": 0}, "threads must be a positive integer"),
        ({"threads": "2"}, "threads must be a positive integer"),
        ({"threads": True}, "threads must be a positive integer"),
        ({"num_requests": -1}, "num_requests must be a positive integer"),
        ({"performance_hint": "fast"}, "performance_hint must be one of"),
        ({"cpu_capabilities": "BF16"}, "cpu_capabilities must be a list"),
        ({"provider": "cuda"}, "unknown openvino option"),
    ],
)
def test_bad_options_raise_sdk_errors(bundle: Path, options: dict, message: str) -> None:
    with pytest.raises(BackendOptionError, match=message) as info:  # at construction (names, counts) or load
        _backend(bundle, **options).load()
    assert isinstance(info.value, StarGANError) and isinstance(info.value, ValueError)


def test_bad_inputs_and_unloaded_use(bundle: Path, faces) -> None:
    b = _backend(bundle, precision="fp32", max_batch=2)
    with pytest.raises(StarGANError, match="not loaded"):
        b.infer(faces)
    with b:
        with pytest.raises(ImageInputError, match="exceeds max_batch 2"):
            b.infer(_take(faces, slice(0, 3)))
        with pytest.raises(ImageInputError, match="'label'"):
            b.infer({INPUT_IMAGE: faces[INPUT_IMAGE][:1]})
        with pytest.raises(ImageInputError, match=r"label \[N, 5\]"):
            b.infer({INPUT_IMAGE: faces[INPUT_IMAGE][:2], INPUT_LABEL: faces[INPUT_LABEL][:1]})


def test_int8_needs_a_usable_int8_artifact(bundle: Path, bundle_copy: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="no INT8 generator.*--int8-calibration"):
        _backend(bundle, precision="int8").load()
    manifest = read_manifest(bundle_copy)
    fp32 = manifest.artifact(precision="fp32")
    bad = Artifact(
        kind="onnx",
        role="generator",
        file="generator.int8.onnx",
        sha256="0" * 64,
        precision="int8",
        parity={"psnr_db": 24.26, "max_abs": 0.5, "mean_abs": 0.1, "usable": 0.0, "min_psnr_db": 30.0},
    )
    unusable = dataclasses.replace(manifest, artifacts=manifest.artifacts + (bad,))
    with pytest.raises(BackendUnavailableError, match="measured 24.3 dB PSNR vs FP32, below the 30 dB bar"):
        OpenVinoBackend(bundle_copy, unusable, precision="int8").load()
    assert not OpenVinoBackend.availability(bundle_copy, unusable, precision="int8").ok
    # A usable record whose file is a copy of the FP32 graph: checks the wiring (file, checksum, report), not INT8
    # maths (a copy: one file listed twice is refused by the manifest schema).
    shutil.copy(bundle_copy / fp32.file, bundle_copy / bad.file)
    good = dataclasses.replace(bad, sha256=fp32.sha256, parity={**bad.parity, "usable": 1.0})
    usable = dataclasses.replace(manifest, artifacts=manifest.artifacts + (good,))
    with OpenVinoBackend(bundle_copy, usable, precision="int8", cpu_capabilities=NO_BF16) as b:
        assert b.describe()["precision"] == "int8" and b.describe()["float_precision"] == "fp32"


def test_corrupted_graph_is_refused(bundle_copy: Path) -> None:
    with open(bundle_copy / "generator.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="corrupted or was replaced"):
        _backend(bundle_copy, precision="fp32").load()


def test_availability(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = read_manifest(bundle)
    assert OpenVinoBackend.availability(bundle, manifest).ok
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    gone = OpenVinoBackend.availability(bundle, manifest)
    assert not gone.ok and "pip install 'stargan[openvino]'" in gone.reason
    with pytest.raises(BackendUnavailableError, match="openvino is not installed"):
        OpenVinoBackend(bundle, manifest).load()


@pytest.mark.parametrize("psnr, usable, expected", [(42.6, 1.0, "int8"), (35.3, 1.0, "fp32"), (45.0, 0.0, "fp32")])
def test_auto_without_bf16_takes_int8_only_at_40_db(
    bundle_copy: Path, psnr: float, usable: float, expected: str
) -> None:
    """`auto` on an AVX2-only CPU: the INT8 model when its recorded PSNR reaches AUTO_INT8_MIN_PSNR_DB, else FP32."""
    assert AUTO_INT8_MIN_PSNR_DB == 40.0
    manifest = read_manifest(bundle_copy)
    assert choose_precision("auto", NO_BF16, manifest)[0] == "fp32"  # no INT8 model: today's behaviour
    fp32 = manifest.artifact(precision="fp32")
    # A record of a copy of the FP32 graph: checks the choice and its report, not INT8 maths (a real INT8 bundle:
    # tests/sdk/test_openvino_int8.py). A copy, as the manifest refuses one file listed twice.
    shutil.copyfile(bundle_copy / fp32.file, bundle_copy / "generator.int8.onnx")
    int8 = Artifact(
        kind="onnx",
        role="generator",
        file="generator.int8.onnx",
        sha256=fp32.sha256,
        precision="int8",
        parity={"psnr_db": psnr, "max_abs": 0.1, "mean_abs": 0.01, "usable": usable, "min_psnr_db": 30.0},
    )
    with_int8 = dataclasses.replace(manifest, artifacts=manifest.artifacts + (int8,))
    with OpenVinoBackend(bundle_copy, with_int8, precision="auto", cpu_capabilities=NO_BF16) as b:
        info = b.describe()
        assert info["precision"] == expected and "no BF16" in info["precision_reason"]
        assert f"{psnr:.1f} dB" in info["precision_reason"]
    assert choose_precision("auto", ("FP32", "BF16"), with_int8)[0] == "bf16"  # BF16 CPUs: unchanged
    assert choose_precision("fp32", NO_BF16, with_int8) == ("fp32", "requested precision='fp32'")  # opt-out
