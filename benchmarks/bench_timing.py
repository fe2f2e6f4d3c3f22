"""Timing statistics, interleaved measurement and the machine's dense-GEMM ceiling.

Usage: stats = summarize(samples_ms, batch); rate = measure_gemm_gflops("cpu")
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


def gflop_per_image(image_size: int, conv_dim: int = 64, repeat_num: int = 6, c_dim: int = 5) -> float:
    """Forward FLOPs (2 x MACs) of the generator's convolutions for one image (9.96 GMAC at 128 px).

    Transposed convolutions are counted on their input side (each input pixel scatters a k x k patch).
    """
    s, c = image_size, conv_dim
    macs = s * s * c * (3 + c_dim) * 49  # 7x7 conv over image + tiled label channels
    macs += (s // 2) ** 2 * (2 * c) * c * 16  # down-sampling 1
    macs += (s // 4) ** 2 * (4 * c) * (2 * c) * 16  # down-sampling 2
    macs += repeat_num * 2 * (s // 4) ** 2 * (4 * c) ** 2 * 9  # residual blocks
    macs += (s // 4) ** 2 * (4 * c) * (2 * c) * 16  # up-sampling 1
    macs += (s // 2) ** 2 * (2 * c) * c * 16  # up-sampling 2
    macs += s * s * c * 3 * 49  # 7x7 output conv
    return 2 * macs / 1e9


@dataclass
class Stats:
    batch: int
    iterations: int
    mean_ms: float
    min_ms: float
    median_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    throughput_ips: float  # images per second from the median latency

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(samples_ms: list[float], batch: int) -> Stats:
    if not samples_ms:
        raise ValueError("no timing samples")
    a = np.asarray(samples_ms, dtype=np.float64)
    median = float(np.median(a))
    return Stats(
        batch=batch,
        iterations=len(a),
        mean_ms=float(a.mean()),
        min_ms=float(a.min()),
        median_ms=median,
        p90_ms=float(np.percentile(a, 90)),
        p95_ms=float(np.percentile(a, 95)),
        p99_ms=float(np.percentile(a, 99)),
        max_ms=float(a.max()),
        throughput_ips=batch * 1000.0 / median,
    )


def interleaved(
    runners: dict[str, Callable[[], object]],
    iterations: int,
    warmup: int,
    budget_s: float | None = None,
    block: int = 1,
) -> dict[str, list[float]]:
    """Time each runner in every round, in a new seeded random order each round, so drift hits all alike and no
    runner always follows the same one (rotation kept each runner's successor fixed: the row after `ort-raw`, whose
    threads spin on after a run, measured ~1.9x slower at batch 8 than the same model two rows later).

    `block` > 1: in each round a runner first runs once untimed (its weights back in the caches the other
    runners used) and then `block` timed calls, so a sample is what a process running one model sees. With one
    call per round every call starts from cold caches: the 64 px INT8 model at batch 1 measured 5.5-6.8 ms
    interleaved one by one against 3.0-3.7 ms in blocks (and 2.9 ms alone), ONNX Runtime 6.6-8.0 vs 6.3 ms.

    Returns wall-clock milliseconds per timed call. Stops early (keeping >= 3 rounds) if `budget_s` runs out.
    """
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    start = time.perf_counter()
    rng = random.Random(0)
    for i in range(iterations):
        for name in rng.sample(names, len(names)):
            if block > 1:
                runners[name]()  # untimed: caches refilled after the other runners
            for _ in range(block):
                t0 = time.perf_counter()
                runners[name]()
                samples[name].append((time.perf_counter() - t0) * 1000.0)
        if budget_s is not None and i >= 2 and time.perf_counter() - start > budget_s:
            break
    return samples


def measure_gemm_gflops(device: str = "cpu", n: int = 1024, seconds: float = 1.0) -> dict[str, float]:
    """Best-of dense GEMM rate: numpy (BLAS) and torch fp32 on CPU; torch fp32/fp16 on CUDA."""
    results: dict[str, float] = {}
    if device == "cpu":
        a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
        b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
        results["numpy_fp32"] = _rate(lambda: a @ b, 2 * n**3, seconds)
    try:
        import torch
    except ImportError:
        return results
    if device == "cpu":
        ta, tb = torch.randn(n, n), torch.randn(n, n)
        results["torch_fp32"] = _rate(lambda: ta @ tb, 2 * n**3, seconds)
    else:
        n = max(n, 8192)
        for name, dtype in (("torch_fp32", torch.float32), ("torch_fp16", torch.float16)):
            ta = torch.randn(n, n, device=device, dtype=dtype)
            tb = torch.randn(n, n, device=device, dtype=dtype)

            def mm(ta: torch.Tensor = ta, tb: torch.Tensor = tb) -> None:  # bound now, not at call time
                ta @ tb
                torch.cuda.synchronize()

            results[name] = _rate(mm, 2 * n**3, seconds)
    return results


def _rate(fn: Callable[[], object], flops: float, seconds: float) -> float:
    fn()
    times = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 3:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return flops / statistics.median(times) / 1e9
