"""The contract every inference backend follows (Polygraphy-style runner: load / infer / close).

Usage: with OrtBackend(Bundle.open("models/toyfaces-64")) as b: out = b.infer({"image": x, "label": c})["output"]

Constructing a backend does no heavy or GPU work; `load()` does (sessions, engines, buffers). `infer`
takes and returns named float32 numpy arrays at the engine boundary (NCHW in [-1, 1]); callers split
batches larger than `max_batch` and hand the parts to `infer_batches` (same results as one `infer` per part).
Each backend declares the options it takes (`accepted_options`); the base constructor refuses any other name and
a `threads` or `max_batch` below 1, so a typo never runs silently with defaults.

As in Polygraphy's BaseRunner, the base class does the bookkeeping (loaded state, idempotent load/close, a
failed load cleaned up, the one input check, availability kept on the Bundle) and a backend writes only what is
specific to its engine: `check_impl` (cheap, classmethod), `load_impl`, `infer_impl`, optionally
`infer_batches_impl`, and `close_impl`.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from stargan_sdk.bundle.constants import INPUT_IMAGE, INPUT_LABEL
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.bundle.manifest import Artifact, Manifest
from stargan_sdk.errors import BackendOptionError, BackendUnavailableError, ImageInputError, StarGANError
from stargan_sdk.host.hardware import Availability


@dataclass(frozen=True)
class Plan:
    """What `check_impl` found: why the backend can run (shown by `stargan info`) and the artifact it will load."""

    reason: str
    artifact: Artifact | None = None


_RUNTIME_NOISE = re.compile(r"^\s*(Exception from \S+|Check '.*' failed at \S+)\s*$")


def error_reason(e: BaseException, limit: int = 400) -> str:
    """A runtime's multi-line exception as one line that keeps the reason: OpenVINO, for one, puts only
    source locations ("Exception from src/.../core.cpp:84:") on its first lines."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not _RUNTIME_NOISE.match(ln)]
    text = " ".join(lines) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_option_names(classes: Sequence[type[Backend]], options: dict[str, Any]) -> None:
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
    # True: `timed_infer` splits a call into H2D / compute / D2H (the torch-based CUDA backends).
    times_transfers: ClassVar[bool] = False
    # Engines compiled since load (OpenVINO: one per batch size and hint; Inductor: one per compiled size).
    compile_count: int = 0
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
                raise BackendOptionError(
                    f"unknown {self.name} option(s) {', '.join(unknown)}; known: "
                    f"{', '.join(self.accepted_options) or 'none besides cuda_graphs'}"
                )
        for key, value in (("threads", options.get("threads")), ("max_batch", max_batch)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise BackendOptionError(f"{key} must be a positive integer or None, got {value!r}")
        if isinstance(device, bool) or not isinstance(device, int) or device < 0:
            raise BackendOptionError(f"device must be a CUDA device ordinal (an integer >= 0), got {device!r}")

    # ---- the template: bookkeeping here, engine-specific work in the *_impl methods of each backend ----

    @classmethod
    def availability(
        cls, bundle: Bundle | str | Path, manifest: Manifest | None = None, device: int = 0, **options: Any
    ) -> Availability:
        """Whether this backend can run the bundle here (imports, the artifact it needs, a GPU), without loading
        anything heavy; the verdict is kept on the Bundle, so `load` and `stargan info` do not check again."""
        try:
            plan = cls.plan(Bundle.of(bundle, manifest), device, options)
        except BackendUnavailableError as e:
            return Availability(False, str(e))
        return Availability(True, plan.reason)

    @classmethod
    def plan(cls, bundle: Bundle, device: int, options: dict[str, Any]) -> Plan:
        """`check_impl` once per (bundle, backend, device, options); a refusal is kept and raised again."""
        key = ("backend-plan", cls.name, device, repr(sorted(options.items())))

        def run() -> Plan | BackendUnavailableError:
            try:
                return cls.check_impl(bundle, device, options)
            except BackendUnavailableError as e:
                return e

        verdict = bundle.memo(key, run)
        if isinstance(verdict, BackendUnavailableError):
            raise verdict
        return verdict

    def load(self) -> None:
        """Create sessions/engines/buffers (idempotent). A load that fails releases what it made."""
        if self.loaded:
            return
        plan = type(self).plan(self.bundle, self.device, self.options)
        try:
            self.load_impl(plan)
        except BaseException:
            self.close_impl()
            raise
        self.loaded = True

    def close(self) -> None:
        """Release everything `load` created. Idempotent."""
        self.close_impl()
        self.loaded = False

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch (N <= max_batch) and return the named outputs as new float32 arrays."""
        self._require_loaded()
        self.check_feeds(feeds)
        return self.infer_impl(feeds)

    def infer_batches(self, batches: Sequence[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Run several batches (each N <= max_batch) and return their outputs in the same order.

        The contract: the same values as `[self.infer(b) for b in batches]`, returned when every batch has
        finished; input arrays are not kept or modified; a bad batch raises the error `infer` would (every batch is
        checked before any runs) and leaves the backend usable; nothing is held (locks, requests, buffers) after
        the call returns. A backend overrides `infer_batches_impl` only to overlap work across batches, e.g.
        host-device copies with compute (TensorRT) or several requests in flight (OpenVINO). The Translator calls
        it for a batch larger than `max_batch`, already split into parts of at most `max_batch`.
        """
        self._require_loaded()
        batches = list(batches)
        for feeds in batches:
            self.check_feeds(feeds)
        return self.infer_batches_impl(batches)

    def check_feeds(self, feeds: dict[str, np.ndarray]) -> None:
        """The one input check of every backend: both tensors, the manifest's shapes, 1 <= N <= max_batch.
        (Values, NaN and the [-1, 1] range are checked by the Translator or on the device.)"""
        missing = [k for k in (INPUT_IMAGE, INPUT_LABEL) if not isinstance(feeds, Mapping) or k not in feeds]
        if missing:
            raise ImageInputError(
                f"the {self.name} backend needs the inputs {INPUT_IMAGE!r} and {INPUT_LABEL!r}; "
                f"{', '.join(map(repr, missing))} missing"
            )
        image, label = feeds[INPUT_IMAGE], feeds[INPUT_LABEL]
        s, c = self.manifest.image_size, self.manifest.c_dim
        if not isinstance(image, np.ndarray) or image.ndim != 4 or image.shape[1:] != (3, s, s) or not len(image):
            got = list(image.shape) if isinstance(image, np.ndarray) else type(image).__name__
            raise ImageInputError(f"input {INPUT_IMAGE!r} has shape {got}, expected image [N, 3, {s}, {s}] with N >= 1")
        n = len(image)
        if not isinstance(label, np.ndarray) or label.shape != (n, c):
            got = list(label.shape) if isinstance(label, np.ndarray) else type(label).__name__
            raise ImageInputError(f"input {INPUT_LABEL!r} has shape {got}, expected label [N, {c}] with N = {n}")
        if self.max_batch is not None and n > self.max_batch:
            raise ImageInputError(f"batch of {n} exceeds max_batch {self.max_batch}; split it")

    @classmethod
    @abc.abstractmethod
    def check_impl(cls, bundle: Bundle, device: int, options: dict[str, Any]) -> Plan:
        """Cheap: the imports, the artifact this backend would run, the GPU; BackendUnavailableError says why not."""

    # True: `infer_uint8` normalises and denormalises where the generator runs (a GPU), so the Translator hands
    # it uint8 crops; False: the host does it once, as `infer_uint8` below would.
    uint8_on_device: bool = False

    def device_classifier(self) -> Any | None:
        """The bundle's classifier made to run where the generator runs (a GPU), for `load_classifier` to check
        against ONNX Runtime's; None where the generator runs on the CPU. Raises a StarGANError (or a runtime's
        RuntimeError) saying why a GPU backend cannot: the CPU classifier then stays."""
        return None

    def infer_uint8(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, 3] RGB crops and float32 [N, c] labels -> edited uint8 [N, S, S, 3] (N <= max_batch):
        `infer` between the manifest's normalisation and its inverse. This default does both on the host; a
        backend that runs on a GPU overrides it to copy uint8 each way (same values)."""
        from stargan_sdk.bundle.constants import INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
        from stargan_sdk.images.imaging import Normalizer

        norm = Normalizer.of_manifest(self.manifest)
        return norm.postprocess(self.infer({INPUT_IMAGE: norm.preprocess(images), INPUT_LABEL: labels})[OUTPUT_IMAGE])

    @abc.abstractmethod
    def load_impl(self, plan: Plan) -> None:
        """Create the sessions/engines/buffers for `plan` (from `check_impl`)."""

    @abc.abstractmethod
    def infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One checked batch."""

    def infer_batches_impl(self, batches: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        return [self.infer_impl(feeds) for feeds in batches]

    @abc.abstractmethod
    def close_impl(self) -> None:
        """Release what `load_impl` made; also called after a failed or partial load, and when not loaded."""

    # ---- declared capabilities: every backend has them, with the same meaning ----

    def graph_batches(self) -> list[int]:
        """Batch sizes with a captured CUDA graph (none on the CPU backends)."""
        return []

    def timed_infer(self, feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """`infer` plus its H2D / compute / D2H split in ms (benchmarks); only GPU backends that measure it."""
        raise BackendUnavailableError(f"the {self.name} backend does not split transfers from compute")

    def input_shapes(self) -> dict[str, tuple[Any, ...]] | None:
        """The loaded generator's declared input shapes ("N" or a name for a symbolic dim), checked against the
        manifest by `Translator.load`; None where the engine reports nothing beyond what was checked."""
        return None

    def describe(self) -> dict[str, Any]:
        """What runs underneath (providers, precision, graphs) for `stargan info` and benchmarks."""
        return {"backend": self.name}

    def __enter__(self) -> Backend:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_loaded(self) -> None:
        if not self.loaded:
            raise StarGANError(f"{self.name} backend is not loaded; call load() or use it as a context manager")
