"""The contract every inference backend follows (Polygraphy-style runner: load / infer / close).

Usage: with OrtBackend(Bundle.open("models/toyfaces-64")) as b: out = b.infer({"image": x, "label": c})["output"]

Constructing a backend does no heavy or GPU work; `load()` does (sessions, engines, buffers). `infer`
takes and returns named float32 numpy arrays at the engine boundary (NCHW in [-1, 1]); callers split
batches larger than `max_batch` and hand the parts to `infer_batches`, which a backend may override to overlap
work across them (same results as one `infer` per part). Each backend declares the options it takes
(`accepted_options`); the base constructor refuses any other name and a `threads` or `max_batch` below 1, so a
typo never runs silently with defaults.
"""

from __future__ import annotations

import abc
import re
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from stargan_sdk.errors import BackendOptionError, StarGANError
from stargan_sdk.host.hardware import Availability
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.bundle.manifest import Manifest


_RUNTIME_NOISE = re.compile(r"^\s*(Exception from \S+|Check '.*' failed at \S+)\s*$")


def error_reason(e: BaseException, limit: int = 400) -> str:
    """A runtime's multi-line exception as one line that keeps the reason: OpenVINO, for one, puts only
    source locations ("Exception from src/.../core.cpp:84:") on its first lines."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not _RUNTIME_NOISE.match(ln)]
    text = " ".join(lines) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_option_names(classes: Sequence[type["Backend"]], options: dict[str, Any]) -> None:
    """Under `auto`: refuse an option name that no candidate takes (a typo), before trying any."""
    if any(c.accepted_options is None for c in classes):
        return  # a backend that declares nothing takes anything
    known = sorted({*Backend.COMMON_OPTIONS, *(o for c in classes for o in c.accepted_options or ())})
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise BackendOptionError(f"unknown backend option(s) {', '.join(unknown)}; known: {', '.join(known)}")


class Backend(abc.ABC):
    """Base class of the SDK backends.

    Args:
        bundle: the opened bundle (or its folder, then with `manifest` or read from disk).
        manifest: only with a folder: its parsed manifest.
        device: CUDA device ordinal (ignored by CPU-only backends).
        max_batch: largest batch the backend prepares for (defaults to the artifact's own limit if any).
        options: backend-specific settings (e.g. `cuda_graphs`, `precision`, `threads`).
    """

    name: str = "base"
    # True: `infer` itself refuses images outside [-1, 1] or non-finite (ImageInputError), e.g. on the GPU as
    # part of the captured graph, so the Translator skips its own host-side scan. Same error either way.
    checks_input_range: bool = False
    # True: `infer` may be called from several threads at once; otherwise the Translator holds one lock.
    thread_safe: ClassVar[bool] = False
    # Option names this backend reads; None means "not declared" (every name passes). `cuda_graphs` is
    # always accepted (with max_batch): Translator.load passes it to every backend (CPU backends ignore it).
    accepted_options: ClassVar[tuple[str, ...] | None] = None
    COMMON_OPTIONS: ClassVar[tuple[str, ...]] = ("cuda_graphs", "max_batch")

    def __init__(
        self,
        bundle: Bundle | str | Path,
        manifest: Manifest | None = None,
        *,
        device: int = 0,
        max_batch: int | None = None,
        **options: Any,
    ) -> None:
        self._check_options(device, max_batch, options)
        self.bundle = Bundle.of(bundle, manifest)
        self.device = device
        self.max_batch = max_batch
        self.options = options
        self.loaded = False

    @property
    def manifest(self) -> Manifest:
        return self.bundle.manifest

    @property
    def bundle_dir(self) -> Path:
        return self.bundle.folder

    @classmethod
    def own_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """The options this backend takes (under `auto`, each candidate gets its own)."""
        if cls.accepted_options is None:
            return dict(options)
        known = set(cls.accepted_options) | set(cls.COMMON_OPTIONS)
        return {k: v for k, v in options.items() if k in known}

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
    def availability(cls, bundle: Bundle | str | Path, manifest: Manifest | None = None, device: int = 0,
                     **options: Any) -> Availability:
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

    def input_shapes(self) -> dict[str, tuple[Any, ...]] | None:
        """The loaded generator's declared input shapes ("N" or a name for a symbolic dim), checked against the
        manifest by `Translator.load`; None where the engine reports nothing beyond what was checked."""
        return None

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
