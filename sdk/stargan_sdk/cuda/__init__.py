"""Small explicit wrappers over the CUDA runtime (cuda-bindings): pinned/device buffers, streams, events, graphs.

Usage: from stargan_sdk import cuda; with cuda.Stream() as s, cuda.PinnedBuffer(1024) as h: ...

Every object frees its CUDA resource in `close()` (also as a context manager). cuda-bindings is imported on
first use, so importing this package needs no GPU and no driver. Callers reach everything through this
package (`cuda.Stream`, `cuda.device_properties`), which is also where tests substitute a simulated device.
"""

from stargan_sdk.cuda.memory import (
    DeviceBuffer,
    HostRegion,
    PinnedBuffer,
    memcpy_dtoh_async,
    memcpy_htod_async,
    memset_async,
    page_locked,
)
from stargan_sdk.cuda.runtime import (
    CudaError,
    CudaUnavailableError,
    DeviceInfo,
    check,
    cuda_available,
    device_count,
    device_properties,
    mem_get_info,
    runtime_version,
    set_device,
)
from stargan_sdk.cuda.streams import CudaGraph, Event, Stream

__all__ = [
    "CudaError", "CudaGraph", "CudaUnavailableError", "DeviceBuffer", "DeviceInfo", "Event", "HostRegion",
    "PinnedBuffer", "Stream", "check", "cuda_available", "device_count", "device_properties", "mem_get_info",
    "memcpy_dtoh_async", "memcpy_htod_async", "memset_async", "page_locked", "runtime_version", "set_device",
]  # fmt: skip
