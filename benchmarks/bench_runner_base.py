"""What every latency runner shares: the runner names, the `Runner` record, and the benchmark's inputs.

Usage: from bench_runner_base import Runner, make_inputs; x, c = make_inputs(8, 128, 5)

Below `bench_runners` and `bench_trt_raw`, so the raw TensorRT runner does not import the module that picks it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BASELINE = "torch-eager-fp32"
BASELINE_STRICT = "torch-eager-fp32-notf32"  # the same with cuDNN's TF32 off: IEEE FP32 convolutions
ORT_RAW = "ort-raw"
TRT_RAW = "trt-raw"


@dataclass
class Runner:
    name: str
    run: Callable[[], Any] = lambda: None
    prepare: Callable[[int], None] = lambda batch: None
    close: Callable[[], None] = lambda: None
    info: dict[str, Any] = field(default_factory=dict)
    split: Callable[[], dict[str, float]] | None = None  # H2D / compute / D2H ms for one batch, GPU only


def make_inputs(
    batch: int, image_size: int, c_dim: int, seed: int = 0, pinned: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth image-like inputs (not noise, not zeros) and one-hot-ish labels; `pinned` puts the images in
    page-locked memory (as an application that allocates its batches there would), so GPU runners read
    them without a staging copy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:image_size, 0:image_size].astype(np.float32) / image_size
    base = np.stack([np.sin(6 * xx), np.cos(5 * yy), np.sin(4 * (xx + yy))])
    images = np.clip(base[None] * 0.8 + 0.1 * rng.standard_normal((batch, 3, image_size, image_size)), -1, 1)
    labels = (rng.random((batch, c_dim)) > 0.5).astype(np.float32)
    if pinned:
        import torch

        page_locked = torch.empty(images.shape, dtype=torch.float32, pin_memory=True).numpy()
        page_locked[...] = images
        return page_locked, labels
    return images.astype(np.float32), labels
