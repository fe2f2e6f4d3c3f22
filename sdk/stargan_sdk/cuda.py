"""Small explicit wrappers over the CUDA runtime (cuda-bindings): pinned/device buffers, streams, events, graphs.

Usage: with Stream() as s, PinnedBuffer(1024) as h, DeviceBuffer(h.nbytes) as d: memcpy_htod_async(d, h, h.nbytes, s)

Every object frees its CUDA resource in `close()` (also as a context manager); `__del__` is only a safety net
that never raises. cuda-bindings is imported on first use, so importing this module needs no GPU and no driver.
"""

from __future__ import annotations

import abc
import ctypes
import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Sequence

import numpy as np

from stargan_sdk.backends.base import Availability
from stargan_sdk.errors import BackendUnavailableError, StarGANError

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


def _rt() -> ModuleType:
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
    rt = _rt()
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
    return int(check(_rt().cudaGetDeviceCount(), "cudaGetDeviceCount"))


def device_properties(index: int = 0) -> DeviceInfo:
    prop = check(_rt().cudaGetDeviceProperties(index), f"cudaGetDeviceProperties({index})")
    name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
    return DeviceInfo(index, name.rstrip("\x00").strip(), f"{prop.major}.{prop.minor}", int(prop.totalGlobalMem))


def set_device(index: int) -> None:
    """Make `index` the calling thread's current device (the runtime's current device is per thread)."""
    check(_rt().cudaSetDevice(index), f"cudaSetDevice({index})")


def mem_get_info() -> tuple[int, int]:
    """(free, total) bytes on the current device."""
    free, total = check(_rt().cudaMemGetInfo(), "cudaMemGetInfo")
    return int(free), int(total)


def runtime_version() -> str:
    v = int(check(_rt().cudaRuntimeGetVersion(), "cudaRuntimeGetVersion"))
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


class _Resource(abc.ABC):
    """One CUDA handle with deterministic release; `_handle` is None once closed."""

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


class PinnedBuffer(_Resource):
    """Page-locked host memory (cudaMallocHost) seen as one numpy array; async copies need pinned memory.

    Args:
        shape: array shape.
        dtype: numpy dtype of the elements.

    The numpy view must not be used after `close()`; `.array` refuses once closed.
    """

    def __init__(self, shape: Sequence[int] | int, dtype: Any = np.float32) -> None:
        self.shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.nbytes = math.prod(self.shape) * self.dtype.itemsize
        if self.nbytes <= 0:
            raise ValueError(f"PinnedBuffer needs a positive size, got shape {self.shape}")
        self._handle = int(check(_rt().cudaMallocHost(self.nbytes), f"cudaMallocHost({self.nbytes})"))
        raw = (ctypes.c_ubyte * self.nbytes).from_address(self._handle)
        self._array: np.ndarray | None = np.frombuffer(raw, dtype=self.dtype).reshape(self.shape)

    @property
    def ptr(self) -> int:
        return int(self._live())

    @property
    def array(self) -> np.ndarray:
        self._live()
        assert self._array is not None
        return self._array

    def _release(self, handle: Any) -> None:
        self._array = None
        check(_rt().cudaFreeHost(handle), "cudaFreeHost")


class DeviceBuffer(_Resource):
    """Linear device memory (cudaMalloc).

    Args:
        nbytes: size in bytes.
    """

    def __init__(self, nbytes: int) -> None:
        self.nbytes = int(nbytes)
        if self.nbytes <= 0:
            raise ValueError(f"DeviceBuffer needs a positive size, got {nbytes}")
        self._handle = int(check(_rt().cudaMalloc(self.nbytes), f"cudaMalloc({self.nbytes})"))

    @property
    def ptr(self) -> int:
        return int(self._live())

    def _release(self, handle: Any) -> None:
        check(_rt().cudaFree(handle), "cudaFree")


class Stream(_Resource):
    """A non-blocking stream: it never synchronises with the legacy default stream."""

    def __init__(self) -> None:
        rt = _rt()
        self._handle = check(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking), "cudaStreamCreateWithFlags")

    @property
    def raw(self) -> Any:
        """The cudaStream_t object for cuda-bindings calls."""
        return self._live()

    @property
    def handle(self) -> int:
        """The stream address as an int (what TensorRT's `execute_async_v3` takes)."""
        return int(self._live())

    def synchronize(self) -> None:
        check(_rt().cudaStreamSynchronize(self.raw), "cudaStreamSynchronize")

    def wait(self, event: "Event") -> None:
        """Make later work on this stream wait until `event` completes (GPU-side, the host does not block)."""
        check(_rt().cudaStreamWaitEvent(self.raw, event.raw, 0), "cudaStreamWaitEvent")

    def _release(self, handle: Any) -> None:
        check(_rt().cudaStreamDestroy(handle), "cudaStreamDestroy")


class Event(_Resource):
    """A CUDA event: ordering between streams, host synchronisation, and GPU-side timing.

    Args:
        timing: record timestamps; sync-only events (timing=False) are cheaper.
    """

    def __init__(self, timing: bool = True) -> None:
        rt = _rt()
        flags = rt.cudaEventDefault if timing else rt.cudaEventDisableTiming
        self._handle = check(rt.cudaEventCreateWithFlags(flags), "cudaEventCreateWithFlags")

    @property
    def raw(self) -> Any:
        return self._live()

    def record(self, stream: Stream) -> None:
        check(_rt().cudaEventRecord(self.raw, stream.raw), "cudaEventRecord")

    def synchronize(self) -> None:
        check(_rt().cudaEventSynchronize(self.raw), "cudaEventSynchronize")

    def elapsed_ms(self, end: "Event") -> float:
        """Milliseconds from this (start) event to `end`; both must have completed."""
        return float(check(_rt().cudaEventElapsedTime(self.raw, end.raw), "cudaEventElapsedTime"))

    def _release(self, handle: Any) -> None:
        check(_rt().cudaEventDestroy(handle), "cudaEventDestroy")


def _span(buf: PinnedBuffer | DeviceBuffer, nbytes: int, what: str) -> int:
    if not 0 < nbytes <= buf.nbytes:
        raise ValueError(f"{what}: cannot copy {nbytes} bytes with a {buf.nbytes}-byte {type(buf).__name__}")
    return buf.ptr


def memcpy_htod_async(dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, stream: Stream) -> None:
    """Queue a pinned-host → device copy of the first `nbytes` bytes on `stream`."""
    rt = _rt()
    d, s = _span(dst, nbytes, "memcpy_htod_async"), _span(src, nbytes, "memcpy_htod_async")
    kind = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
    check(rt.cudaMemcpyAsync(d, s, nbytes, kind, stream.raw), "cudaMemcpyAsync(HostToDevice)")


def memcpy_dtoh_async(dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
    """Queue a device → pinned-host copy of the first `nbytes` bytes on `stream`."""
    rt = _rt()
    d, s = _span(dst, nbytes, "memcpy_dtoh_async"), _span(src, nbytes, "memcpy_dtoh_async")
    kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
    check(rt.cudaMemcpyAsync(d, s, nbytes, kind, stream.raw), "cudaMemcpyAsync(DeviceToHost)")


def memset_async(dst: DeviceBuffer, value: int, nbytes: int, stream: Stream) -> None:
    """Queue setting the first `nbytes` bytes of `dst` to the byte `value`."""
    check(_rt().cudaMemsetAsync(_span(dst, nbytes, "memset_async"), int(value), nbytes, stream.raw), "cudaMemsetAsync")


def _instantiate(graph: Any) -> Any:
    rt = _rt()
    # cudaGraphInstantiateWithFlags(graph, flags) has one signature from CUDA 11.4 to 13; plain
    # cudaGraphInstantiate took (graph, errorNode, logBuffer, size) before 12 and (graph, flags) since.
    fn = getattr(rt, "cudaGraphInstantiateWithFlags", None) or rt.cudaGraphInstantiate
    exec_ = check(fn(graph, 0), "cudaGraphInstantiate")
    return exec_[0] if isinstance(exec_, tuple) else exec_


def _abort_capture(stream: Stream) -> None:
    """End a capture whose work failed so the stream is usable again; discard the partial graph."""
    rt = _rt()
    result = rt.cudaStreamEndCapture(stream.raw)
    if int(result[0]) == 0 and result[1] is not None and int(result[1]) != 0:
        rt.cudaGraphDestroy(result[1])
    rt.cudaGetLastError()  # capture errors are not sticky; clear the last-error slot anyway


class CudaGraph(_Resource):
    """An instantiated CUDA graph captured from stream work; `launch` replays it with one call.

    Capture records work without running it, and the recorded pointers are baked in: a replay reads and
    writes the same buffers, with whatever they hold at replay time.
    """

    def __init__(self, graph: Any, graph_exec: Any) -> None:
        self._handle = (graph, graph_exec)

    @classmethod
    def capture(cls, stream: Stream, work: Callable[[], None]) -> "CudaGraph":
        """Capture what `work()` queues on `stream` (thread-local mode: other threads may keep using CUDA)."""
        rt = _rt()
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        check(rt.cudaStreamBeginCapture(stream.raw, mode), "cudaStreamBeginCapture")
        try:
            work()
        except BaseException:
            _abort_capture(stream)
            raise
        graph = check(rt.cudaStreamEndCapture(stream.raw), "cudaStreamEndCapture")
        try:
            return cls(graph, _instantiate(graph))
        except BaseException:
            rt.cudaGraphDestroy(graph)
            raise

    def launch(self, stream: Stream) -> None:
        check(_rt().cudaGraphLaunch(self._live()[1], stream.raw), "cudaGraphLaunch")

    def _release(self, handle: Any) -> None:
        graph, graph_exec = handle
        check(_rt().cudaGraphExecDestroy(graph_exec), "cudaGraphExecDestroy")
        check(_rt().cudaGraphDestroy(graph), "cudaGraphDestroy")
