"""The CUDA runtime through cuda-bindings: lazy import, error mapping, device queries, the resource base class.

Usage: from stargan_sdk.cuda.runtime import api, check; count = check(api().cudaGetDeviceCount(), "cudaGetDeviceCount")

cuda-bindings is imported on first use, so importing this module needs no GPU and no driver.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from stargan_sdk.errors import BackendUnavailableError, StarGANError
from stargan_sdk.host.hardware import Availability

_cudart: ModuleType | None = None

# Codes that mean "no usable GPU or driver here" rather than a bug in the calling code.
_UNAVAILABLE = {
    "cudaErrorNoDevice", "cudaErrorInsufficientDriver", "cudaErrorInitializationError", "cudaErrorInvalidDevice",
    "cudaErrorDevicesUnavailable", "cudaErrorCallRequiresNewerDriver", "cudaErrorSystemDriverMismatch",
    "cudaErrorCompatNotSupportedOnDevice", "cudaErrorStubLibrary",
}  # fmt: skip


class CudaError(StarGANError):
    """A CUDA runtime call failed; `name` is the cudaError_t name (e.g. cudaErrorMemoryAllocation)."""

    def __init__(self, message: str, code: int, name: str, call: str) -> None:
        super().__init__(message)
        self.code, self.name, self.call = code, name, call


class CudaUnavailableError(CudaError, BackendUnavailableError):
    """No usable CUDA GPU or driver (no device, driver missing or too old)."""


def api() -> ModuleType:
    """The cuda-bindings runtime module, imported once; the old `cuda.cudart` path serves cuda-python < 12.6."""
    global _cudart
    if _cudart is None:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            try:
                from cuda import cudart  # type: ignore[no-redef]
            except ImportError:
                raise BackendUnavailableError(
                    "cuda-bindings is not installed: pip install 'stargan[cuda]' on a machine with an NVIDIA GPU"
                ) from None
        _cudart = cudart
    return _cudart


def _error(code: int, call: str) -> CudaError:
    rt = api()
    try:
        err = rt.cudaError_t(code)
        name = rt.cudaGetErrorName(err)[1].decode()
        text = rt.cudaGetErrorString(err)[1].decode()
    except (ValueError, AttributeError, TypeError):  # a code this binding does not know
        name, text = f"cudaError {code}", "unknown error"
    if name in _UNAVAILABLE:
        msg = f"{call} failed: {name} ({text}); no usable CUDA GPU/driver here (use the onnxruntime backend)"
        return CudaUnavailableError(msg, code, name, call)
    return CudaError(f"{call} failed: {name} ({text})", code, name, call)


def check(result: Any, call: str = "CUDA call") -> Any:
    """Unpack a cuda-bindings result `(cudaError_t, *values)`: raise CudaError on failure, else return the
    single value, a tuple of values, or None."""
    err, values = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
    if int(err) != 0:
        raise _error(int(err), call)
    if not values:
        return None
    return values[0] if len(values) == 1 else values


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    compute_capability: str  # "9.0"
    total_memory: int  # bytes


def device_count() -> int:
    return int(check(api().cudaGetDeviceCount(), "cudaGetDeviceCount"))


def device_properties(index: int = 0) -> DeviceInfo:
    prop = check(api().cudaGetDeviceProperties(index), f"cudaGetDeviceProperties({index})")
    name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
    return DeviceInfo(index, name.rstrip("\x00").strip(), f"{prop.major}.{prop.minor}", int(prop.totalGlobalMem))


def set_device(index: int) -> None:
    """Make `index` the calling thread's current device (the runtime's current device is per thread)."""
    check(api().cudaSetDevice(index), f"cudaSetDevice({index})")


def mem_get_info() -> tuple[int, int]:
    """(free, total) bytes on the current device."""
    free, total = check(api().cudaMemGetInfo(), "cudaMemGetInfo")
    return int(free), int(total)


def runtime_version() -> str:
    v = int(check(api().cudaRuntimeGetVersion(), "cudaRuntimeGetVersion"))
    return f"{v // 1000}.{v % 1000 // 10}"


def cuda_available() -> Availability:
    """Whether a CUDA GPU is usable through cuda-bindings, and if not, why."""
    try:
        count = device_count()
    except BackendUnavailableError as e:
        return Availability(False, str(e))
    except CudaError as e:
        return Availability(False, f"CUDA is not usable here: {e}")
    if count < 1:
        return Availability(False, "no CUDA GPU found")
    return Availability(True, f"{count} CUDA device(s), CUDA runtime {runtime_version()}")


class Resource(abc.ABC):
    """One CUDA handle with deterministic release; `_handle` is None once closed. `close()` frees it (also as a
    context manager); `__del__` is only a safety net that never raises."""

    _handle: Any = None

    @abc.abstractmethod
    def _release(self, handle: Any) -> None:
        """Free `handle` (called once, by `close`)."""

    @property
    def closed(self) -> bool:
        return self._handle is None

    def _live(self) -> Any:
        if self._handle is None:
            raise StarGANError(f"{type(self).__name__} is closed")
        return self._handle

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            self._release(handle)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown or a dead context: nothing sensible left to do
            pass
