"""Facts about this machine that several backends use: how many physical CPU cores this process may run on,
whether an NVIDIA GPU is present (the one answer `auto` and `stargan serve --kind auto` both use), and the
answer to "can this run here" (`Availability`), which CUDA and every backend give.

Usage: from stargan_sdk.host.hardware import physical_cores; threads = physical_cores()
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run a bundle here, and if not, why (shown by `stargan info`)."""

    ok: bool
    reason: str = ""


def physical_cores() -> int:
    """Physical cores this process may use: hyper-threads share one core's FPUs, so more threads slow
    convolutions down rather than up."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        allowed = os.cpu_count() or 1
    try:
        pairs, phys = set(), "0"
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "physical id":
                    phys = value.strip()
                elif key.strip() == "core id":
                    pairs.add((phys, value.strip()))
        cores = len(pairs) or allowed
    except OSError:
        cores = allowed
    return max(1, min(cores, allowed))


def nvidia_gpu_present() -> bool:
    """A cheap look for an NVIDIA GPU (driver device nodes), without importing torch or CUDA libraries: whether
    the GPU backends are worth trying. Whether one can run is each backend's own availability (its library)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return (gpus.is_dir() and any(gpus.iterdir())) or Path("/dev/nvidia0").exists()
