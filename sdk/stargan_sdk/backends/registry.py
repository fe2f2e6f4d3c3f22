"""Backend registry: names to classes (imported lazily by module path), the `auto` order, and loading with fallback.

Usage: backend, reasons = load_backend("auto", Bundle.open("models/toyfaces-64"), device=0, cuda_graphs=True)

`auto` on a machine with an NVIDIA GPU tries TensorRT (a matching engine), then the Inductor-compiled
generator, then eager torch, then ONNX Runtime / OpenVINO. On a CPU-only machine: TensorRT (which says why
not), OpenVINO when installed (BF16 where the CPU has it: several times faster than FP32, >= 45 dB), then
ONNX Runtime. The torch-based backends are picked by `auto` only where a GPU is present: on a CPU they
exist to verify the model, not to serve it. A candidate that is available but fails to load (a mismatched
engine, a compiled graph that misses parity) hands over to the next one; every candidate's reason is
kept so `stargan info` and `Translator.candidates` can say why one was skipped.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from stargan_sdk.backends.base import Availability, Backend, check_option_names
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.bundle.manifest import Manifest
from stargan_sdk.errors import BackendOptionError, BackendUnavailableError
from stargan_sdk.host.hardware import nvidia_gpu_present

_log = logging.getLogger("stargan_sdk")

BACKENDS: dict[str, str] = {
    "tensorrt": "stargan_sdk.backends.tensorrt:TrtBackend",
    "inductor": "stargan_sdk.backends.inductor:InductorBackend",
    "torch": "stargan_sdk.backends.torch_backend:TorchBackend",
    "onnxruntime": "stargan_sdk.backends.onnxruntime:OrtBackend",
    "openvino": "stargan_sdk.backends.openvino:OpenVinoBackend",
}
AUTO_ORDER = ("tensorrt", "openvino", "onnxruntime")
AUTO_ORDER_GPU = ("tensorrt", "inductor", "torch", "onnxruntime", "openvino")
GPU_ONLY_IN_AUTO = frozenset({"inductor", "torch"})


def auto_order() -> tuple[str, ...]:
    """The candidates `auto` tries, in order, on this machine."""
    return AUTO_ORDER_GPU if nvidia_gpu_present() else AUTO_ORDER


def backend_names() -> tuple[str, ...]:
    return tuple(BACKENDS)


def backend_class(name: str) -> type[Backend]:
    """The class registered under `name`; its module is imported now (it imports no heavy package)."""
    if name not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {name!r}; choose auto, {', '.join(BACKENDS)}")
    module_name, _, class_name = BACKENDS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise BackendUnavailableError(f"the {name} backend cannot be imported: {e}") from None
    return getattr(module, class_name)


def availability(
    name: str, bundle: Bundle | str | Path, manifest: Manifest | None = None, device: int = 0
) -> Availability:
    """Whether backend `name` can run this bundle here; never raises."""
    try:
        return backend_class(name).availability(Bundle.of(bundle, manifest), device=device)
    except Exception as e:  # a broken optional backend must not break `info` or `auto`
        return Availability(False, str(e) or type(e).__name__)


def availability_report(
    bundle: Bundle | str | Path, manifest: Manifest | None = None, device: int = 0
) -> dict[str, Availability]:
    bundle = Bundle.of(bundle, manifest)
    return {name: availability(name, bundle, device=device) for name in BACKENDS}


def auto_choice(report: dict[str, Availability]) -> str | None:
    """What `auto` would pick from an `availability_report` (no check runs again), or None."""
    return next((n for n in auto_order() if _auto_allows(n) and report[n].ok), None)


def _auto_allows(name: str) -> bool:
    return name not in GPU_ONLY_IN_AUTO or nvidia_gpu_present()


def _candidate(asked: str, name: str, bundle: Bundle, device: int) -> Availability:
    """Availability of `name` when `asked` ("auto" or that name) was requested."""
    if asked == "auto" and not _auto_allows(name):
        return Availability(False, "auto picks it only on an NVIDIA GPU (ask for it by name to run it on the CPU)")
    return availability(name, bundle, device=device)


def select_backend(
    name: str, bundle: Bundle | str | Path, manifest: Manifest | None = None, device: int = 0
) -> tuple[type[Backend], dict[str, Availability]]:
    """The first class whose availability check passes, for `name` ("auto" or a backend name), and the
    availability of each candidate tried. Nothing is loaded. Raises BackendUnavailableError naming every reason."""
    bundle = Bundle.of(bundle, manifest)
    reasons: dict[str, Availability] = {}
    for candidate in _check_name(name):
        reasons[candidate] = _candidate(name, candidate, bundle, device)
        if reasons[candidate].ok:
            return backend_class(candidate), reasons
    raise _nothing_runs(reasons)


def load_backend(
    name: str, bundle: Bundle | str | Path, manifest: Manifest | None = None, device: int = 0, **options: Any
) -> tuple[Backend, dict[str, Availability]]:
    """A loaded backend for `name` and the reason for each candidate tried.

    With "auto", a candidate that is available but fails to load is closed, its error kept as the reason and
    logged, and the next candidate tried. A backend asked for by name raises its own error.
    """
    bundle = Bundle.of(bundle, manifest)
    reasons: dict[str, Availability] = {}
    candidates = _check_name(name)
    if name == "auto":  # each candidate gets the options it takes; a name none takes is a typo
        check_option_names([backend_class(c) for c in candidates], options)
    for candidate in candidates:
        reasons[candidate] = _candidate(name, candidate, bundle, device)
        if not reasons[candidate].ok:
            continue
        cls = backend_class(candidate)
        try:  # the constructor refuses bad option values (threads=0, ...)
            runner = cls(bundle, device=device, **(cls.own_options(options) if name == "auto" else options))
        except BackendOptionError as e:
            if name != "auto":
                raise
            reasons[candidate] = Availability(False, str(e))
            continue
        try:
            runner.load()
        except Exception as e:
            if name != "auto":
                raise
            _close_quietly(runner)
            why = (str(e).strip().splitlines() or [type(e).__name__])[0]
            reasons[candidate] = Availability(False, f"available but failed to load: {why}")
            _log.warning("backend %s failed to load, trying the next one: %s", candidate, why)
            continue
        return runner, reasons
    raise _nothing_runs(reasons)


def _check_name(name: str) -> tuple[str, ...]:
    if name != "auto" and name not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {name!r}; choose auto, {', '.join(BACKENDS)}")
    return auto_order() if name == "auto" else (name,)


def _nothing_runs(reasons: dict[str, Availability]) -> BackendUnavailableError:
    detail = "; ".join(f"{k}: {v.reason}" for k, v in reasons.items())
    return BackendUnavailableError(f"no backend can run this bundle here ({detail})")


def _close_quietly(runner: Backend) -> None:
    try:
        runner.close()
    except Exception:  # a half-loaded backend may not close cleanly; the load error is what matters
        pass
