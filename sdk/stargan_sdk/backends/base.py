"""The contract every inference backend follows (Polygraphy-style runner: load / infer / close).

Usage: with OrtBackend(bundle_dir, manifest) as b: out = b.infer({"image": x, "label": c})["output"]

Constructing a backend does no heavy or GPU work; `load()` does (sessions, engines, buffers). `infer`
takes and returns named float32 numpy arrays at the engine boundary (NCHW in [-1, 1]); callers split
batches larger than `max_batch`. Each backend declares the options it takes (`accepted_options`); the
base constructor refuses any other name and a `threads` or `max_batch` below 1, so a typo never runs silently
with defaults.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from stargan_sdk.errors import BackendOptionError, StarGANError
from stargan_sdk.manifest import Manifest


_RUNTIME_NOISE = re.compile(r"^\s*(Exception from \S+|Check '.*' failed at \S+)\s*$")


def error_reason(e: BaseException, limit: int = 400) -> str:
    """A runtime's multi-line exception as one line that keeps the reason: OpenVINO, for one, puts only
    source locations ("Exception from src/.../core.cpp:84:") on its first lines."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not _RUNTIME_NOISE.match(ln)]
    text = " ".join(lines) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    # Option names this backend reads; None means "not declared" (every name passes). `cuda_graphs` is
    # always accepted: Translator.load passes it to every backend (CPU backends ignore it).
    accepted_options: ClassVar[tuple[str, ...] | None] = None
    COMMON_OPTIONS: ClassVar[tuple[str, ...]] = ("cuda_graphs",)

    def __init__(
        self,
        bundle_dir: str | Path,
        manifest: Manifest,
        *,
        device: int = 0,
        max_batch: int | None = None,
        **options: Any,
    ) -> None:
        self._check_options(device, max_batch, options)
        self.bundle_dir = Path(bundle_dir)
        self.manifest = manifest
        self.device = device
        self.max_batch = max_batch
        self.options = options
        self.loaded = False

    def _check_options(self, device: Any, max_batch: Any, options: dict[str, Any]) -> None:
        if self.accepted_options is not None:
            known = tuple(self.accepted_options) + self.COMMON_OPTIONS
            unknown = sorted(set(options) - set(known))
            if unknown:
                raise BackendOptionError(f"unknown {self.name} option(s) {', '.join(unknown)}; known: "
                                         f"{', '.join(self.accepted_options) or 'none besides cuda_graphs'}")
        for key, value in (("threads", options.get("threads")), ("max_batch", max_batch)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise BackendOptionError(f"{key} must be a positive integer or None, got {value!r}")
        if isinstance(device, bool) or not isinstance(device, int) or device < 0:
            raise BackendOptionError(f"device must be a CUDA device ordinal (an integer >= 0), got {device!r}")

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
