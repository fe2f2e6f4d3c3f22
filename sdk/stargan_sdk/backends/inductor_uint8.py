"""The inductor backend's uint8 graphs: `uint8_forward` compiled for static sizes, and their check at load.

Usage: compiled, runner = compile_uint8(torch, module, norm, float_runner, mode)
       parity, seconds = check_uint8(torch, reference, norm, sizes, run_sizes, "fp16", parity_inputs(2, s, c))
       # BackendUnavailableError on a miss

The uint8 function is compiled whole (fullgraph), so Inductor fuses the NHWC→NCHW view, the cast and the
scale into the first kernel that reads the image, and the denormalisation into the last op's epilogue. On
CUDA it gets its own `CudaGraphRunner` (uint8 pinned staging and device buffers, a private stream, a graph
per size), like the float graphs'.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from stargan_sdk.backends.torch_uint8 import uint8_forward
from stargan_sdk.bundle.tolerances import TOLERANCES, psnr_db, uint8_signal
from stargan_sdk.errors import BackendUnavailableError
from stargan_sdk.images.imaging import Normalizer

Chunks = list[tuple[np.ndarray, np.ndarray]]


def compile_uint8(torch: Any, module: Any, norm: Normalizer, float_runner: Any, mode: str) -> tuple[Any, Any]:
    """(compiled function, CUDA runner or None) for `module` on its device; `float_runner` (None on the CPU)
    gives the CUDA device, the largest size, the label length and whether to capture graphs."""
    from stargan_sdk.backends.torch_cuda import CudaGraphRunner

    device = float_runner.device if float_runner is not None else torch.device("cpu")
    run = uint8_forward(torch, module, norm, device)
    compiled = torch.compile(run, dynamic=False, fullgraph=True, mode=mode)
    if float_runner is None:
        return compiled, None
    _, size, _ = float_runner.image
    runner = CudaGraphRunner(
        torch,
        compiled,
        device,
        len(float_runner.dev_img),
        (size, size, 3),
        float_runner.dev_lbl.shape[1],
        float_runner.graphs_enabled,
        dtype=torch.uint8,
        input_range=False,
    )
    return compiled, runner


def parity_pixels(images: np.ndarray, norm: Normalizer) -> np.ndarray:
    """The float parity images as uint8 crops (what a pipeline uploads)."""
    return norm.postprocess(images)


def check_uint8(
    torch: Any,
    reference: Any,
    norm: Normalizer,
    sizes: Sequence[int],
    run_sizes: Callable[[Chunks], list[np.ndarray]],
    precision: str,
    inputs: tuple[np.ndarray, np.ndarray],
) -> tuple[dict[int, float], dict[int, float]]:
    """Run every size (the first call compiles and captures) and compare it with the host's uint8 of the FP32
    eager model on `inputs` (two float images and labels, repeated to each size); PSNR and first-call seconds
    per size, or BackendUnavailableError naming the size and the miss."""
    x2, c2 = inputs
    u2 = parity_pixels(x2, norm)
    with torch.inference_mode():
        y2 = reference(torch.from_numpy(norm.preprocess(u2)), torch.from_numpy(c2)).numpy()
    expected2 = uint8_signal(norm.postprocess(y2))
    tolerance, parity, seconds = TOLERANCES[f"uint8_{precision}"], {}, {}
    for n in sizes:
        rows = np.arange(n) % 2
        t0 = time.perf_counter()
        (actual,) = run_sizes([(np.ascontiguousarray(u2[rows]), np.ascontiguousarray(c2[rows]))])
        seconds[n] = time.perf_counter() - t0
        actual, expected = uint8_signal(actual), expected2[rows]
        max_abs = float(np.max(np.abs(expected - actual)))
        parity[n] = psnr_db(expected, actual)
        if not tolerance.passes(max_abs, parity[n]):
            raise BackendUnavailableError(
                f"the uint8 graph at batch {n} misses the FP32 reference's uint8 result "
                f"({tolerance.describe(max_abs, parity[n])}); the host normalises instead"
            )
    return parity, seconds
