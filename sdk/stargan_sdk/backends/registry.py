"""Backend registry: names to classes (imported lazily by module path) and the `auto` choice.

Usage: cls, reasons = select_backend("auto", bundle_dir, manifest); backend = cls(bundle_dir, manifest)

`auto` tries TensorRT (a matching engine and a GPU), then on a CPU-only machine OpenVINO when installed
(BF16 where the CPU has it: several times faster than FP32, >= 45 dB), then ONNX Runtime (CUDA provider if
present, else CPU). With ONNX Runtime's CUDA provider present, ONNX Runtime comes before OpenVINO (a GPU
beats any CPU precision). The torch backend is never picked automatically: it needs the large torch
package and exists to verify the GPU path. Every candidate's availability is kept so `stargan info` can
say why one was skipped.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from stargan_sdk.backends.base import Availability, Backend
from stargan_sdk.errors import BackendUnavailableError
from stargan_sdk.manifest import Manifest

BACKENDS: dict[str, str] = {
    "tensorrt": "stargan_sdk.backends.tensorrt:TrtBackend",
    "onnxruntime": "stargan_sdk.backends.onnxruntime:OrtBackend",
    "torch": "stargan_sdk.backends.torch_backend:TorchBackend",
    "openvino": "stargan_sdk.backends.openvino:OpenVinoBackend",
}
AUTO_ORDER = ("tensorrt", "openvino", "onnxruntime")
AUTO_ORDER_CUDA = ("tensorrt", "onnxruntime", "openvino")


def auto_order() -> tuple[str, ...]:
    """AUTO_ORDER, or ONNX Runtime before OpenVINO where ONNX Runtime has its CUDA provider."""
    try:
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            return AUTO_ORDER_CUDA
    except ImportError:
        pass
    return AUTO_ORDER


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


def availability(name: str, bundle_dir: str | Path, manifest: Manifest, device: int = 0) -> Availability:
    """Whether backend `name` can run this bundle here; never raises."""
    try:
        return backend_class(name).availability(bundle_dir, manifest, device)
    except Exception as e:  # a broken optional backend must not break `info` or `auto`
        return Availability(False, str(e) or type(e).__name__)


def availability_report(bundle_dir: str | Path, manifest: Manifest, device: int = 0) -> dict[str, Availability]:
    return {name: availability(name, bundle_dir, manifest, device) for name in BACKENDS}


def select_backend(
    name: str, bundle_dir: str | Path, manifest: Manifest, device: int = 0
) -> tuple[type[Backend], dict[str, Availability]]:
    """The class to use for `name` ("auto" or a backend name) and the availability of each candidate tried.

    Raises BackendUnavailableError naming every reason when nothing can run.
    """
    candidates = auto_order() if name == "auto" else (name,)
    if name != "auto" and name not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {name!r}; choose auto, {', '.join(BACKENDS)}")
    reasons: dict[str, Availability] = {}
    for candidate in candidates:
        reasons[candidate] = availability(candidate, bundle_dir, manifest, device)
        if reasons[candidate].ok:
            return backend_class(candidate), reasons
    detail = "; ".join(f"{k}: {v.reason}" for k, v in reasons.items())
    raise BackendUnavailableError(f"no backend can run this bundle here ({detail})")
