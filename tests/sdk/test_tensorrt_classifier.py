"""The classifier as a TensorRT engine: built by the exporter beside the uint8 plans, checked at export and by
`validate`, run by the TensorRT backend's Translator from uint8 crops (preprocess.plan → classifier.plan) with its
logits equal to ONNX Runtime's; against NVIDIA's real 10.0, 10.13 and 11.4 bindings (simulated, `trt_api`) and
real TensorRT on a GPU (`tensorrt`). The manifest takes it only beside the uint8 pair and classifier.onnx.

Usage: pytest -q tests/sdk/test_tensorrt_classifier.py
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from bundle_edits import engine_artifacts
from stargan_sdk import Translator
from stargan_sdk.backends.classifier import AttributeClassifier, logits_error
from stargan_sdk.bundle.manifest import Profile, read_manifest
from stargan_sdk.errors import BundleError, ImageInputError, ManifestError
from trtsim.fixtures import sim, trt_surface  # noqa: F401

SIZE, MAX_BATCH = 32, 4
ATTRS = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]


def build(checkpoint: Path, out: Path, **kw):
    from stargan_export.bundle import build_bundle

    return build_bundle(checkpoint, out, attributes=ATTRS, image_size=SIZE, engine=True, classifier=True,
                        opt_batch=2, max_batch=MAX_BATCH, **kw)  # fmt: skip


def crops(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def check_translator(folder: Path, tolerance: float) -> None:
    images = crops(7, 3)  # 4 + 3: split at the profile's max batch
    onnx = AttributeClassifier.from_bundle(folder)
    with Translator.load(folder, backend="tensorrt") as t:
        assert t.describe()["classifier_runs_on"] == "tensorrt on cuda:0", t.describe()
        want = onnx.logits(t.normalizer.preprocess(images))
        assert logits_error(want, t.classifier.logits_uint8(images)) <= tolerance
        assert logits_error(want, t.classifier.logits(t.normalizer.preprocess(images))) <= tolerance
        assert np.abs(want).max() > 1e-3  # real logits
        np.testing.assert_array_equal(
            t._originals(images, None, uint8=True), t.space.estimate_from_logits(want)
        )  # the same estimates, so the same targets as the CPU classifier gives
        edited = t.edit_rgb(list(images), {"Blond_Hair": 1})
        assert edited.shape == images.shape and edited.dtype == np.uint8
        with pytest.raises(ImageInputError, match=r"the classifier takes uint8\[N, 32, 32, 3\], got uint8\[7, 16"):
            t.classifier.logits_uint8(images[:, :16])
        with pytest.raises(ImageInputError, match=r"takes uint8\[N, 32, 32, 3\], got float32\[7, 32, 32, 3\]"):
            t.classifier.logits_uint8(images.astype(np.float32))


@pytest.mark.trt_api
def test_export_builds_checks_and_the_translator_runs_the_classifier_engine(sim, official_checkpoint, tmp_path):
    from stargan_export.validate import validate_bundle

    m = build(official_checkpoint, tmp_path / "b", torch_weights=False)
    plan = m.artifact(role="classifier", kind="tensorrt")
    assert plan is not None and plan.file == "classifier.plan" and plan.precision == "fp32"
    assert plan.profile == m.artifact(role="generator", kind="tensorrt").profile
    assert plan.parity["max_rel"] <= 1e-5 and plan.parity["max_batch_checked"] == MAX_BATCH
    results = {r.file: r for r in validate_bundle(tmp_path / "b")}
    assert results["classifier.plan"].status == "ok", results["classifier.plan"].detail
    check_translator(tmp_path / "b", 1e-5)  # the simulation runs the plans in FP32 on ONNX Runtime
    assert sim.fake.called("IExecutionContext.execute_async_v3")


@pytest.mark.trt_api
def test_without_the_classifier_engine_the_cpu_classifier_says_why(sim, official_checkpoint, tmp_path):
    import json

    build(official_checkpoint, tmp_path / "b", torch_weights=False)
    path = tmp_path / "b" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["file"] != "classifier.plan"]
    path.write_text(json.dumps(manifest))
    with Translator.load(tmp_path / "b", backend="tensorrt") as t:
        assert isinstance(t.classifier, AttributeClassifier)
        assert t.describe()["classifier_runs_on"] == (
            "onnxruntime on cpu (not on the GPU: the bundle has no classifier.plan (re-export with --classifier "
            "--engine to add it))"
        )


def test_the_manifest_wants_the_classifier_engine_beside_the_uint8_pair(bundle_copy):
    manifest = read_manifest(bundle_copy)
    engine, pre, post = engine_artifacts()
    clf = dataclasses.replace(pre, role="classifier", file="classifier.plan")
    dataclasses.replace(manifest, artifacts=(*manifest.artifacts, engine, pre, post, clf))  # accepted
    with pytest.raises(ManifestError, match="needs the uint8 boundary engines and classifier.onnx beside it"):
        dataclasses.replace(manifest, artifacts=(*manifest.artifacts, engine, clf))
    without_onnx = tuple(a for a in manifest.artifacts if a.file != "classifier.onnx")
    with pytest.raises(ManifestError, match="needs the uint8 boundary engines and classifier.onnx beside it"):
        dataclasses.replace(manifest, artifacts=(*without_onnx, engine, pre, post, clf))
    with pytest.raises(ManifestError, match="another TensorRT release, GPU or batch profile"):
        other = dataclasses.replace(clf, profile=Profile(1, 2, 8))
        dataclasses.replace(manifest, artifacts=(*manifest.artifacts, engine, pre, post, other))


@pytest.mark.tensorrt
def test_real_tensorrt_classifier_engine_matches_onnxruntime(official_checkpoint, tmp_path):
    """On a GPU: built and checked by the exporter, then run by the Translator (TF32 off: FP32 kernels)."""
    build(official_checkpoint, tmp_path / "b")
    check_translator(tmp_path / "b", 1e-2)


@pytest.mark.trt_api
def test_the_cli_table_and_a_nan_at_the_max_batch(sim, official_checkpoint, tmp_path, capsys, monkeypatch):
    from stargan_export import checks
    from stargan_export.cli import main
    from stargan_export.errors import ParityError
    from stargan_sdk.backends.tensorrt_classifier import TrtClassifier

    args = ["build", str(official_checkpoint), "--out", str(tmp_path / "b"), "--attrs", *ATTRS, "--image-size",
            "32", "--engine", "--classifier", "--no-torch-weights", "--opt-batch", "2", "--max-batch", "4"]  # fmt: skip
    with pytest.raises(SystemExit) as done:
        main(args)
    out = capsys.readouterr().out
    assert done.value.code in (0, None), out
    assert "classifier.plan" in out and "logits within" in out
    b = tmp_path / "b"
    logits_uint8 = TrtClassifier.logits_uint8
    monkeypatch.setattr(  # NaN logits at the profile's max batch only: the check must still fail
        TrtClassifier, "logits_uint8", lambda self, x: logits_uint8(self, x) * (np.nan if len(x) == MAX_BATCH else 1)
    )
    profile = read_manifest(b).artifact(role="classifier", kind="tensorrt").profile
    with pytest.raises(ParityError, match="NaN or Inf"):
        checks.classifier_engine_parity(
            b / "preprocess.plan", b / "classifier.plan", b / "classifier.onnx", SIZE, profile
        )


@pytest.mark.trt_api
def test_plans_that_disagree_with_the_manifest_are_refused_and_close_frees(sim, official_checkpoint, tmp_path):
    from stargan_sdk.backends.tensorrt_classifier import TrtClassifier
    from stargan_sdk.backends.tensorrt_compat import import_tensorrt

    build(official_checkpoint, tmp_path / "b", torch_weights=False)
    plans = tuple((tmp_path / "b" / f).read_bytes() for f in ("preprocess.plan", "classifier.plan"))
    with pytest.raises(BundleError, match=r"classifier.plan \(3, 32, 32\) -> \(5,\); the manifest says .* -> \(4,\)"):
        TrtClassifier(import_tensorrt(), plans, image_size=SIZE, width=4, batches=(1, MAX_BATCH), device=0)
    with Translator.load(tmp_path / "b", backend="tensorrt") as t:
        classifier = t.classifier
        assert classifier._resources
    assert classifier._resources == [] and classifier._pre is None  # the Translator's close freed it
