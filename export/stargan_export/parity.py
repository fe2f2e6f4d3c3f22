"""Parity checks: named per-precision tolerances, error metrics (max/mean abs, PSNR) and test inputs.

Usage: m = measure(reference, actual); check(m, TOLERANCES["fp16"], "generator.fp16.onnx")
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stargan_export.errors import ParityError
from stargan_sdk.bundle.tolerances import PSNR_CAP_DB, SIGNAL_RANGE, TOLERANCES, Tolerance, psnr_db, uint8_signal

# The tolerance table and PSNR live in the SDK so the compiled backends check against the same bars.
__all__ = ["PSNR_CAP_DB", "SIGNAL_RANGE", "TOLERANCES", "Tolerance", "check", "measure", "psnr_db", "worst"]


def measure(reference: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """max_abs, mean_abs and psnr_db of `actual` against `reference` (same shape); NaN/Inf count as failure."""
    if reference.shape != actual.shape:
        raise ParityError(f"output shape {actual.shape} differs from the reference shape {reference.shape}")
    if not np.all(np.isfinite(actual)):
        return {"max_abs": math.inf, "mean_abs": math.inf, "psnr_db": 0.0, "finite": 0.0}
    diff = np.abs(reference.astype(np.float64) - actual.astype(np.float64))
    return {
        "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()),
        "psnr_db": psnr_db(reference, actual),
        "finite": 1.0,
    }


def worst(*metrics: dict[str, float]) -> dict[str, float]:
    """Combine several measurements into their worst case."""
    return {
        "max_abs": max(m["max_abs"] for m in metrics),
        "mean_abs": max(m["mean_abs"] for m in metrics),
        "psnr_db": min(m["psnr_db"] for m in metrics),
        "finite": min(m["finite"] for m in metrics),
    }


def check(metrics: dict[str, float], tolerance: Tolerance, what: str, against: str = "torch") -> dict[str, float]:
    """Raise ParityError naming the failed criterion; return `metrics` unchanged on success."""
    if metrics.get("finite", 1.0) < 1.0:
        raise ParityError(f"{what} produced NaN or Inf outputs")
    if tolerance.max_abs is not None and metrics["max_abs"] > tolerance.max_abs:
        raise ParityError(
            f"{what} differs from {against} by max abs {metrics['max_abs']:.3g} > tolerance {tolerance.max_abs:g}"
        )
    if tolerance.min_psnr_db is not None and metrics["psnr_db"] < tolerance.min_psnr_db:
        raise ParityError(
            f"{what} PSNR vs {against} is {metrics['psnr_db']:.1f} dB < required {tolerance.min_psnr_db:g} dB"
        )
    return metrics


def sample_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Face images in [-1, 1] (NCHW float32): toyfaces renders with CelebA preprocessing. Realistic statistics
    matter for FP16 checks: noise images overstate activations and understate PSNR compared with faces."""
    from PIL import Image

    from stargan_train.data.toyfaces import render_face, sample_params

    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        rgb, _ = render_face(sample_params(rng))  # 178 x 218, like an aligned CelebA image
        top = (rgb.shape[0] - 178) // 2
        crop = Image.fromarray(rgb[top : top + 178, :178]).resize((size, size), Image.BILINEAR)
        out[i] = np.asarray(crop, np.float32).transpose(2, 0, 1) / 127.5 - 1.0
    return out


def sample_labels(n: int, c_dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + 1).integers(0, 2, (n, c_dim)).astype(np.float32)


def extreme_images(size: int, seed: int = 0) -> np.ndarray:
    """All -1, all +1 and random ±1 images: the worst case for FP16 activation range."""
    rng = np.random.default_rng(seed)
    sign = rng.choice(np.array([-1.0, 1.0], np.float32), (3, size, size))
    return np.stack([-np.ones((3, size, size), np.float32), np.ones((3, size, size), np.float32), sign])


def ort_session(path: Path):  # -> onnxruntime.InferenceSession (imported lazily)
    """An ONNX Runtime CPU session: the reference runtime for every ONNX check here."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # keep ORT's kernel-placement notes out of the user's terminal
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own (pybind) exception types for unreadable graphs
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ParityError(f"ONNX Runtime cannot load {Path(path).name}: {first}") from None


def uint8_vs_float(
    run_uint8: Callable[[np.ndarray, np.ndarray], np.ndarray],
    run_float: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    n: int,
    image_size: int,
    c_dim: int,
    seed: int = 50,
) -> dict[str, float]:
    """One engine's uint8 path (`infer_uint8`: normalisation on the device) against its float path between the
    host's Normalizer, on `n` seeded crops; metrics in [-1, 1] units (see TOLERANCES["uint8_fp32"])."""
    from stargan_sdk.bundle.constants import INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
    from stargan_sdk.images.imaging import Normalizer

    norm = Normalizer()
    pixels = norm.postprocess(sample_images(n, image_size, seed=seed + n))
    label = sample_labels(n, c_dim, seed=seed + n)
    want = norm.postprocess(run_float({INPUT_IMAGE: norm.preprocess(pixels), INPUT_LABEL: label})[OUTPUT_IMAGE])
    return measure(uint8_signal(want), uint8_signal(run_uint8(pixels, label)))
