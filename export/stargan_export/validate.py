"""Re-check a bundle: manifest schema, every artifact's sha256, I/O names/shapes and cross-artifact parity.

Usage: report = validate_bundle("bundle"); [print(r.file, r.status, r.detail) for r in report]

Parity here needs no checkpoint: the FP16 graph is compared with the FP32 graph on ONNX Runtime, the
safetensors weights (in the SDK's own module, read without pickle) with the FP32 graph (when torch is installed),
the engine with the FP32 graph (run by the SDK's TensorRT backend when TensorRT, a GPU and a matching release are
present), and the classifier must produce finite logits of the right shape.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stargan_export.errors import ParityError
from stargan_export.parity import (
    TOLERANCES,
    check,
    extreme_images,
    measure,
    ort_session,
    sample_images,
    sample_labels,
    uint8_vs_float,
)
from stargan_sdk.bundle import constants as C
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.bundle.manifest import Artifact, Manifest
from stargan_sdk.bundle.tolerances import UINT8_LSB
from stargan_sdk.errors import BundleError
from stargan_sdk.images.labels import AttributeSpace


@dataclass(frozen=True)
class CheckResult:
    file: str
    status: str  # "ok" | "skipped"
    detail: str


def validate_bundle(bundle_dir: str | Path) -> list[CheckResult]:
    """Raise BundleError/ParityError (one line) at the first failure; otherwise one result per artifact."""
    opened = Bundle.open(bundle_dir)  # each artifact verified once, however many checks use it
    bundle, manifest = opened.folder, opened.manifest
    for artifact in manifest.artifacts:
        opened.verified(artifact)  # also graph I/O and weight shapes vs the manifest
    fp32 = manifest.artifact("generator", "onnx", "fp32")
    if fp32 is None:
        raise BundleError(f"{bundle} has no FP32 ONNX generator; every bundle needs {C.GENERATOR_ONNX}")
    image = sample_images(2, manifest.image_size, seed=99)
    label = sample_labels(2, manifest.c_dim, seed=99)
    reference = _run_onnx_generator(bundle, fp32, manifest, image, label)
    results = [CheckResult(fp32.file, "ok", "checksum, I/O names and shapes, finite output")]
    for artifact in manifest.artifacts:
        if artifact is not fp32:
            results.append(_check_artifact(opened, artifact, image, label, reference))
    return results


def _run_onnx_generator(
    bundle: Path, artifact: Artifact, manifest: Manifest, image: np.ndarray, label: np.ndarray
) -> np.ndarray:
    session = ort_session(bundle / artifact.file)
    _check_io(artifact.file, [(i.name, i.shape) for i in session.get_inputs()], manifest.inputs)
    _check_io(artifact.file, [(o.name, o.shape) for o in session.get_outputs()], manifest.outputs)
    output = session.run([C.OUTPUT_IMAGE], {C.INPUT_IMAGE: image, C.INPUT_LABEL: label})[0]
    if not np.all(np.isfinite(output)):
        raise ParityError(f"{artifact.file} produces NaN or Inf outputs")
    return output


def _check_io(file: str, actual: list[tuple[str, list]], specs: tuple) -> None:
    expected = [(s.name, list(s.shape)) for s in specs]
    # ORT reports the symbolic batch dim by its ONNX name; the manifest marks it "N". Compare the rest.
    got = [(name, ["N" if isinstance(d, str) or d is None else int(d) for d in shape]) for name, shape in actual]
    if got != expected:
        raise BundleError(f"{file} has inputs/outputs {got}, the manifest says {expected}; re-export the bundle")


def _check_artifact(
    opened: Bundle, artifact: Artifact, image: np.ndarray, label: np.ndarray, reference: np.ndarray
) -> CheckResult:
    bundle, manifest = opened.folder, opened.manifest
    path = bundle / artifact.file
    if artifact.kind == "onnx" and artifact.role == "generator":
        actual = _run_onnx_generator(bundle, artifact, manifest, image, label)
        metrics = check(measure(reference, actual), TOLERANCES[artifact.precision], artifact.file, C.GENERATOR_ONNX)
        extreme = ort_session(path).run(
            [C.OUTPUT_IMAGE],
            {C.INPUT_IMAGE: extreme_images(manifest.image_size), C.INPUT_LABEL: sample_labels(3, manifest.c_dim)},
        )[0]
        if not np.all(np.isfinite(extreme)):
            raise ParityError(f"{artifact.file} produces NaN or Inf on images at the extremes of [-1, 1]")
        return CheckResult(
            artifact.file,
            "ok",
            f"vs {C.GENERATOR_ONNX}: PSNR {metrics['psnr_db']:.1f} dB, max abs {metrics['max_abs']:.2e}",
        )
    if artifact.kind == "onnx" and artifact.role == "classifier":
        logits = ort_session(path).run([C.CLASSIFIER_OUTPUT], {C.CLASSIFIER_INPUT: image})[0]
        width = len(AttributeSpace.from_manifest(manifest).editable)  # joint bundles: the mask is not classified
        if logits.shape != (image.shape[0], width) or not np.all(np.isfinite(logits)):
            raise ParityError(
                f"{artifact.file} returned logits of shape {logits.shape} (expected "
                f"{(image.shape[0], width)}, one per attribute) or non-finite values"
            )
        return CheckResult(artifact.file, "ok", f"finite logits [N, {width}]")
    if artifact.kind == C.WEIGHTS_KIND:
        return _check_weights(opened, artifact, image, label, reference)
    if artifact.role in C.UINT8_ROLES:
        return _check_uint8_engine(opened, artifact)
    if artifact.role == "classifier":
        return _check_classifier_engine(opened, artifact)
    return _check_engine(opened, artifact, image, label, reference)


def _check_weights(
    opened: Bundle, artifact: Artifact, image: np.ndarray, label: np.ndarray, reference: np.ndarray
) -> CheckResult:
    """The SDK's torch module on generator.safetensors (read without pickle) vs the FP32 ONNX graph."""
    if importlib.util.find_spec("torch") is None:
        return CheckResult(artifact.file, "skipped", "checksum only: torch is not installed")
    import torch

    from stargan_sdk.backends.torch_generator import load_generator

    with torch.inference_mode():
        actual = load_generator(opened)(torch.from_numpy(image), torch.from_numpy(label)).numpy()
    metrics = check(measure(reference, actual), TOLERANCES["fp32"], artifact.file, C.GENERATOR_ONNX)
    return CheckResult(artifact.file, "ok", f"vs {C.GENERATOR_ONNX}: max abs {metrics['max_abs']:.2e}")


def _check_engine(
    opened: Bundle, artifact: Artifact, image: np.ndarray, label: np.ndarray, reference: np.ndarray
) -> CheckResult:
    """Run the engine with the SDK's TensorRT backend (the code that serves it) when it can run here."""
    from stargan_sdk.backends.tensorrt import TrtBackend

    available = TrtBackend.availability(opened)  # TensorRT, a GPU, the exact release and architecture
    if not available.ok:
        return CheckResult(artifact.file, "skipped", f"checksum only: {available.reason}")
    profile = artifact.profile
    if profile is None or profile.min > image.shape[0]:
        return CheckResult(artifact.file, "skipped", "checksum only: engine profile needs batches above the probe's 2")
    n = min(image.shape[0], profile.max)
    with TrtBackend(opened, cuda_graphs=False) as backend:
        actual = backend.infer({C.INPUT_IMAGE: image[:n], C.INPUT_LABEL: label[:n]})[C.OUTPUT_IMAGE]
    metrics = check(
        measure(reference[:n], actual), TOLERANCES[f"tensorrt_{artifact.precision}"], artifact.file, C.GENERATOR_ONNX
    )
    return CheckResult(artifact.file, "ok", f"vs {C.GENERATOR_ONNX}: max abs {metrics['max_abs']:.2e}")


def _check_uint8_engine(opened: Bundle, artifact: Artifact) -> CheckResult:
    """A uint8 boundary plan, run as it serves: the TensorRT backend's `infer_uint8` (both plans around the
    engine) against the same engine's float path between the host's Normalizer."""
    from stargan_sdk.backends.tensorrt import TrtBackend

    available = TrtBackend.availability(opened)
    if not available.ok:
        return CheckResult(artifact.file, "skipped", f"checksum only: {available.reason}")
    assert artifact.profile is not None  # the manifest's rules: the generator engine's profile
    n, m = artifact.profile.min, opened.manifest
    with TrtBackend(opened, cuda_graphs=False) as backend:
        if not backend.uint8_on_device:
            why = backend.describe()["uint8_error"]
            raise BundleError(f"{artifact.file} is listed but the engine runs without it: {why}")
        metrics = uint8_vs_float(backend.infer_uint8, backend.infer, n, m.image_size, m.c_dim)
    check(metrics, TOLERANCES["uint8_fp32"], artifact.file, "the host's Normalizer around the engine")
    lsb = metrics["max_abs"] / UINT8_LSB
    return CheckResult(artifact.file, "ok", f"uint8 vs the host's Normalizer: max {lsb:.0f} LSB")


def _check_classifier_engine(opened: Bundle, artifact: Artifact) -> CheckResult:
    """classifier.plan as it serves: the TensorRT backend's device classifier (preprocess.plan in front) against
    ONNX Runtime's classifier.onnx, the Translator's own check (`load_classifier`)."""
    from stargan_sdk.backends.classifier import AttributeClassifier, load_classifier
    from stargan_sdk.backends.tensorrt import TrtBackend

    available = TrtBackend.availability(opened)
    if not available.ok:
        return CheckResult(artifact.file, "skipped", f"checksum only: {available.reason}")
    with TrtBackend(opened, cuda_graphs=False) as backend:
        classifier = load_classifier(opened, backend)
        if isinstance(classifier, AttributeClassifier):
            raise BundleError(f"{artifact.file} is listed but does not run here: {classifier.gpu_refused}")
        classifier.close()
    return CheckResult(artifact.file, "ok", "logits vs classifier.onnx within the classifier_gpu tolerance")
