"""Parity tolerances per precision, in one table shared by the exporter, `validate` and the compiled backends.

Usage: TOLERANCES["fp16"].passes(max_abs, psnr); psnr_db(reference, actual); psnr_db(*map(uint8_signal, (a, b)))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SIGNAL_RANGE = 2.0  # images live in [-1, 1]
UINT8_LSB = SIGNAL_RANGE / 255.0  # one uint8 step of a pixel, in [-1, 1] units
PSNR_CAP_DB = 200.0  # identical outputs give infinite PSNR; JSON has no infinity, so cap it


@dataclass(frozen=True)
class Tolerance:
    """Pass criteria of one precision; `None` disables a criterion."""

    max_abs: float | None = None
    min_psnr_db: float | None = None

    def passes(self, max_abs: float, psnr: float) -> bool:
        if not math.isfinite(max_abs):
            return False
        return (self.max_abs is None or max_abs <= self.max_abs) and (
            self.min_psnr_db is None or psnr >= self.min_psnr_db
        )

    def describe(self, max_abs: float, psnr: float) -> str:
        """The measurement against the bar, e.g. 'max abs 3e-02 > 0.0001' or 'PSNR 31.2 dB < 40 dB'."""
        if not math.isfinite(max_abs):
            return "NaN or Inf outputs"
        if self.max_abs is not None and max_abs > self.max_abs:
            return f"max abs {max_abs:.3g} > {self.max_abs:g}"
        if self.min_psnr_db is not None and psnr < self.min_psnr_db:
            return f"PSNR {psnr:.1f} dB < {self.min_psnr_db:g} dB"
        return f"max abs {max_abs:.3g}, PSNR {psnr:.1f} dB"


# One place for every tolerance. FP32 graphs must match torch to 1e-4 (summation-order noise only);
# FP16 convolutions are judged by PSNR on image-like inputs because their error scales with activations.
# A TensorRT FP32 engine may pick different (Winograd/implicit-GEMM) kernels, hence the looser bound.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs=1e-4),
    "fp16": Tolerance(min_psnr_db=40.0),
    "classifier": Tolerance(max_abs=1e-4),
    # The classifier on a GPU backend's device (torch's FP32 convolutions with TF32 off, or classifier.plan)
    # against ONNX Runtime's CPU logits, as a fraction of the largest logit: FP32 differs by summation order only
    # (~1e-6), so this catches a wrong graph or plan, not rounding; an estimate could flip only for a logit ~0.
    "classifier_gpu": Tolerance(max_abs=1e-2),
    "weights": Tolerance(max_abs=1e-5),  # generator.safetensors in the SDK's module vs the training model
    "tensorrt_fp32": Tolerance(max_abs=1e-3),
    "tensorrt_fp16": Tolerance(min_psnr_db=40.0),
    # INT8 is measured on calibration faces at build time (bar: 30 dB, recorded in the manifest); validate
    # re-runs it on synthetic images, so this floor only catches a broken or swapped file.
    "int8": Tolerance(min_psnr_db=25.0),
    # uint8 results (`infer_uint8`: normalisation on the device) against the host's uint8 of the FP32 reference,
    # compared in [-1, 1] units (`uint8_signal`, one LSB = 2/255). A float difference of 1e-5 can straddle a
    # rounding boundary, so FP32 allows one LSB anywhere; FP16 keeps its PSNR bar (quantisation adds ~0.02 dB).
    "uint8_fp32": Tolerance(max_abs=UINT8_LSB * 1.001),
    "uint8_fp16": Tolerance(min_psnr_db=40.0),
}


# `auto` on a CPU without BF16 runs the bundle's INT8 model only when its recorded PSNR vs FP32 reaches this:
# about JPEG quality 90, where edits look the same; below it FP32 keeps the fidelity users expect of `auto`.
AUTO_INT8_MIN_PSNR_DB = 40.0


def psnr_db(reference: np.ndarray, actual: np.ndarray, signal_range: float = SIGNAL_RANGE) -> float:
    """PSNR of `actual` against `reference` over the [-1, 1] range, capped at PSNR_CAP_DB."""
    mse = float(np.mean((np.asarray(reference, np.float64) - np.asarray(actual, np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_CAP_DB
    if not math.isfinite(mse):
        return 0.0
    return min(PSNR_CAP_DB, 10.0 * math.log10(signal_range**2 / mse))


def uint8_signal(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels on the [-1, 1] scale of `psnr_db` and the tolerances (for comparing uint8 results)."""
    return np.asarray(pixels, np.float64) * UINT8_LSB - 1.0
