"""Per-artifact parity runs against the torch model, each ending in `check` with its named tolerance.

Usage: parity = generator_onnx_parity(G, "b/generator.onnx", 128, 5, batches=(1, 8, 64), precision="fp32")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

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
    worst,
)
from stargan_sdk.bundle.constants import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT, INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
from stargan_sdk.bundle.manifest import Profile


def parity_batches(min_batch: int, opt_batch: int, max_batch: int) -> tuple[int, ...]:
    """Batch sizes that prove the batch dim is dynamic: 1, the profile's three sizes and an odd one."""
    return tuple(sorted({1, 3 if max_batch >= 3 else max_batch, min_batch, opt_batch, max_batch}))


def _torch_generator(model: torch.nn.Module, image: np.ndarray, label: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.eval()(torch.from_numpy(image), torch.from_numpy(label)).numpy()


def _report(metrics: dict[str, float], **extra: float) -> dict[str, float]:
    out = {k: float(v) for k, v in metrics.items() if k != "finite"}
    out.update({k: float(v) for k, v in extra.items()})
    return out


def generator_onnx_parity(
    model: torch.nn.Module, path: Path, image_size: int, c_dim: int, batches: Sequence[int], precision: str
) -> dict[str, float]:
    """ORT CPU vs the torch generator on face-like images at each batch size (+ extremes for FP16)."""
    session = ort_session(path)
    results = []
    for n in batches:
        image, label = sample_images(n, image_size, seed=n), sample_labels(n, c_dim, seed=n)
        actual = session.run([OUTPUT_IMAGE], {INPUT_IMAGE: image, INPUT_LABEL: label})[0]
        results.append(measure(_torch_generator(model, image, label), actual))
    metrics = check(worst(*results), TOLERANCES[precision], path.name)
    extra: dict[str, float] = {"max_batch_checked": max(batches)}
    if precision == "fp16":
        image, label = extreme_images(image_size), sample_labels(3, c_dim, seed=7)
        actual = session.run([OUTPUT_IMAGE], {INPUT_IMAGE: image, INPUT_LABEL: label})[0]
        extreme = measure(_torch_generator(model, image, label), actual)
        if extreme["finite"] < 1.0:
            check(extreme, TOLERANCES[precision], f"{path.name} on all -1 / all +1 / random ±1 images")
        extra["extremes_max_abs"] = extreme["max_abs"]
    return _report(metrics, **extra)


def classifier_parity(head: torch.nn.Module, path: Path, image_size: int) -> dict[str, float]:
    session = ort_session(path)
    results = []
    for n in (1, 4):
        image = sample_images(n, image_size, seed=10 + n)
        with torch.inference_mode():
            reference = head.eval()(torch.from_numpy(image)).numpy()
        results.append(measure(reference, session.run([CLASSIFIER_OUTPUT], {CLASSIFIER_INPUT: image})[0]))
    return _report(check(worst(*results), TOLERANCES["classifier"], path.name), max_batch_checked=4)


def engine_parity(
    model: torch.nn.Module, path: Path, image_size: int, c_dim: int, profile: Profile, precision: str
) -> dict[str, float]:
    """TensorRT engine vs torch at the profile's min and max batch, run by the SDK's own engine runner (the
    code that serves it later), so no torch CUDA is needed and there is one way to run an engine."""
    from stargan_sdk.backends.tensorrt_engine import TrtEngine

    results = []
    with TrtEngine(path.read_bytes(), image_size=image_size, c_dim=c_dim, max_batch=profile.max, cuda_graphs=False,
                   source=path.name) as engine:  # fmt: skip
        for n in sorted({profile.min, profile.max}):
            image, label = sample_images(n, image_size, seed=30 + n), sample_labels(n, c_dim, seed=30 + n)
            actual = engine.infer({INPUT_IMAGE: image, INPUT_LABEL: label})[OUTPUT_IMAGE]
            results.append(measure(_torch_generator(model, image, label), actual))
    tolerance = TOLERANCES[f"tensorrt_{precision}"]
    return _report(check(worst(*results), tolerance, path.name), max_batch_checked=profile.max)


def uint8_engine_parity(
    plan: Path, uint8_plans: tuple[Path, Path], image_size: int, c_dim: int, profile: Profile
) -> dict[str, float]:
    """preprocess.plan → engine → postprocess.plan (`infer_uint8`) vs the same engine between the host's
    Normalizer, at the profile's min and max batch, run by the SDK's engine runner; one LSB allowed (FMA)."""
    from stargan_sdk.backends.tensorrt_engine import TrtEngine

    pre, post = (p.read_bytes() for p in uint8_plans)
    with TrtEngine(plan.read_bytes(), image_size=image_size, c_dim=c_dim, max_batch=profile.max, cuda_graphs=False,
                   source=plan.name, uint8_plans=(pre, post)) as engine:  # fmt: skip
        results = [
            uint8_vs_float(engine.infer_uint8, engine.infer, n, image_size, c_dim)
            for n in sorted({profile.min, profile.max})
        ]
    what = f"{uint8_plans[0].name} + {uint8_plans[1].name}"
    metrics = check(worst(*results), TOLERANCES["uint8_fp32"], what, "the host's Normalizer around the engine")
    return _report(metrics, max_batch_checked=profile.max)


def classifier_engine_parity(pre_plan: Path, plan: Path, onnx_path: Path, image_size: int, profile: Profile) -> dict:
    """preprocess.plan → classifier.plan (the SDK's `TrtClassifier`, uint8 crops in) vs ONNX Runtime's classifier
    on the host-normalised crops, at the profile's min and max batch; TOLERANCES["classifier_gpu"], relative."""
    from stargan_sdk.backends.classifier import logits_error
    from stargan_sdk.backends.tensorrt_classifier import TrtClassifier
    from stargan_sdk.backends.tensorrt_compat import import_tensorrt
    from stargan_sdk.images.imaging import Normalizer

    session = ort_session(onnx_path)
    width = int(session.get_outputs()[0].shape[1])
    errors = []
    clf = TrtClassifier(import_tensorrt(), (pre_plan.read_bytes(), plan.read_bytes()), image_size=image_size,
                        width=width, batches=(profile.min, profile.max), device=0)  # fmt: skip
    try:
        for n in sorted({profile.min, profile.max}):
            crops = np.random.default_rng(n).integers(0, 256, (n, image_size, image_size, 3), dtype=np.uint8)
            want = session.run([CLASSIFIER_OUTPUT], {CLASSIFIER_INPUT: Normalizer().preprocess(crops)})[0]
            errors.append(logits_error(want, clf.logits_uint8(crops)))
    finally:
        clf.close()
    tolerance, error = TOLERANCES["classifier_gpu"], float(np.max(errors))  # NaN stays NaN (Python's max drops it)
    if not tolerance.passes(error, 0.0):
        raise ParityError(f"{plan.name} vs {onnx_path.name}: {tolerance.describe(error, 0.0)} (relative to the logits)")
    return _report({"max_rel": error}, max_batch_checked=profile.max)
