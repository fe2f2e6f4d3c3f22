"""The contract every inference backend follows (Polygraphy-style runner: load / infer / close).

Usage: with OrtBackend(bundle_dir, manifest) as b: out = b.infer({"image": x, "label": c})["output"]

Constructing a backend does no heavy or GPU work; `load()` does (sessions, engines, buffers). `infer`
takes and returns named float32 numpy arrays at the engine boundary (NCHW in [-1, 1]); callers split
batches larger than `max_batch` and hand the parts to `infer_batches`, which a backend may override to overlap
work across them (same results as one `infer` per part).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from stargan_sdk.errors import StarGANError
from stargan_sdk.manifest import Manifest


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run a bundle here, and if not, why (shown by `stargan info`)."""

    ok: bool
    reason: str = ""


class Backend(abc.ABC):
    """Base class of the SDK backends.

    Args:
        bundle_dir: the bundle folder.
        manifest: its parsed manifest.
        device: CUDA device ordinal (ignored by CPU-only backends).
        max_batch: largest batch the backend prepares for (defaults to the artifact's own limit if any).
        options: backend-specific settings (e.g. `cuda_graphs`, `precision`, `threads`).
    """

    name: str = "base"
    # True: `infer` itself refuses images outside [-1, 1] or non-finite (ImageInputError), e.g. on the GPU as
    # part of the captured graph, so the Translator skips its own host-side scan. Same error either way.
    checks_input_range: bool = False

    def __init__(
        self,
        bundle_dir: str | Path,
        manifest: Manifest,
        *,
        device: int = 0,
        max_batch: int | None = None,
        **options: Any,
    ) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.manifest = manifest
        self.device = device
        self.max_batch = max_batch
        self.options = options
        self.loaded = False

    @classmethod
    @abc.abstractmethod
    def availability(cls, bundle_dir: str | Path, manifest: Manifest, device: int = 0) -> Availability:
        """Cheap check (imports, files, GPU presence) without loading anything heavy."""

    @abc.abstractmethod
    def load(self) -> None:
        """Create sessions/engines/buffers. Idempotent."""

    @abc.abstractmethod
    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch (N <= max_batch) and return the named outputs as new float32 arrays."""

    def infer_batches(self, batches: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Run several batches (each N <= max_batch) and return their outputs in the same order.

        The contract: the same values as `[self.infer(b) for b in batches]` (this default), returned when every
        batch has finished; input arrays are not kept or modified; a bad batch raises the error `infer` would
        and leaves the backend usable; nothing is held (locks, requests, buffers) after the call returns. A
        backend overrides it only to overlap work across batches, e.g. host-device copies with compute
        (TensorRT) or several requests in flight (OpenVINO). The Translator calls it for a batch larger than
        `max_batch`, already split into parts of at most `max_batch`.
        """
        return [self.infer(feeds) for feeds in batches]

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything `load` created. Idempotent."""

    def describe(self) -> dict[str, Any]:
        """What runs underneath (providers, precision, graphs) for `stargan info` and benchmarks."""
        return {"backend": self.name}

    def __enter__(self) -> "Backend":
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_loaded(self) -> None:
        if not self.loaded:
            raise StarGANError(f"{self.name} backend is not loaded; call load() or use it as a context manager")
