"""Page-locked host buffers, device buffers and async copies between them (cuda-bindings).

Usage: with Stream() as s, PinnedBuffer(1024) as h, DeviceBuffer(h.nbytes) as d: memcpy_htod_async(d, h, h.nbytes, s)
(`page_locked(array)` turns a caller's page-locked array into a copy source too.)
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from stargan_sdk.cuda.runtime import Resource, api, check
from stargan_sdk.cuda.streams import Stream


class PinnedBuffer(Resource):
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
        self._handle = int(check(api().cudaMallocHost(self.nbytes), f"cudaMallocHost({self.nbytes})"))
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
        check(api().cudaFreeHost(handle), "cudaFreeHost")


class DeviceBuffer(Resource):
    """Linear device memory (cudaMalloc).

    Args:
        nbytes: size in bytes.
    """

    def __init__(self, nbytes: int) -> None:
        self.nbytes = int(nbytes)
        if self.nbytes <= 0:
            raise ValueError(f"DeviceBuffer needs a positive size, got {nbytes}")
        self._handle = int(check(api().cudaMalloc(self.nbytes), f"cudaMalloc({self.nbytes})"))

    @property
    def ptr(self) -> int:
        return int(self._live())

    def _release(self, handle: Any) -> None:
        check(api().cudaFree(handle), "cudaFree")


class HostRegion:
    """Page-locked host memory that someone else owns and frees (a copy source only; nothing to close).

    Made by `page_locked`, from an array the DMA engine can read where it lies.
    """

    def __init__(self, ptr: int, nbytes: int) -> None:
        self.ptr, self.nbytes = int(ptr), int(nbytes)


def _is_page_locked(ptr: int) -> bool:
    rt = api()
    err, attrs = rt.cudaPointerGetAttributes(ptr)
    if err != rt.cudaError_t.cudaSuccess:
        rt.cudaGetLastError()  # drivers before CUDA 11 answer "invalid value" for pageable memory: not sticky
        return False
    return attrs.type == rt.cudaMemoryType.cudaMemoryTypeHost


def page_locked(array: np.ndarray) -> HostRegion | None:
    """`array`'s memory as a copy source when it is C-contiguous and page-locked (cudaMallocHost, cudaHostRegister,
    torch's `pin_memory`), else None: pageable memory has to be staged first. Both ends are checked, so an array
    that runs past the end of a pinned block is not read by DMA."""
    if not array.flags.c_contiguous or array.nbytes == 0:
        return None
    start = int(array.ctypes.data)
    if _is_page_locked(start) and _is_page_locked(start + array.nbytes - 1):
        return HostRegion(start, array.nbytes)
    return None


def _span(buf: PinnedBuffer | DeviceBuffer | HostRegion, nbytes: int, what: str) -> int:
    if not 0 < nbytes <= buf.nbytes:
        raise ValueError(f"{what}: cannot copy {nbytes} bytes with a {buf.nbytes}-byte {type(buf).__name__}")
    return buf.ptr


def memcpy_htod_async(dst: DeviceBuffer, src: PinnedBuffer | HostRegion, nbytes: int, stream: Stream) -> None:
    """Queue a pinned-host → device copy of the first `nbytes` bytes on `stream`."""
    rt = api()
    d, s = _span(dst, nbytes, "memcpy_htod_async"), _span(src, nbytes, "memcpy_htod_async")
    kind = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
    check(rt.cudaMemcpyAsync(d, s, nbytes, kind, stream.raw), "cudaMemcpyAsync(HostToDevice)")


def memcpy_dtoh_async(dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
    """Queue a device → pinned-host copy of the first `nbytes` bytes on `stream`."""
    rt = api()
    d, s = _span(dst, nbytes, "memcpy_dtoh_async"), _span(src, nbytes, "memcpy_dtoh_async")
    kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
    check(rt.cudaMemcpyAsync(d, s, nbytes, kind, stream.raw), "cudaMemcpyAsync(DeviceToHost)")


def memset_async(dst: DeviceBuffer, value: int, nbytes: int, stream: Stream) -> None:
    """Queue setting the first `nbytes` bytes of `dst` to the byte `value`."""
    check(api().cudaMemsetAsync(_span(dst, nbytes, "memset_async"), int(value), nbytes, stream.raw), "cudaMemsetAsync")
