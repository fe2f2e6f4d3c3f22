"""stargan_sdk.cuda: error mapping and availability (CPU), buffers/streams/events/graphs on a real GPU (`gpu`)."""

from __future__ import annotations

import gc
import re
import sys
import types

import numpy as np
import pytest

from stargan_sdk import cuda
from stargan_sdk.cuda import runtime as cuda_runtime
from stargan_sdk.errors import BackendUnavailableError, StarGANError


@pytest.fixture
def real_rt():
    return pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings is not installed")


def _fake_rt(real, **calls):
    """The real module's error helpers plus the given CUDA calls faked, to test failures on any machine."""
    fake = types.SimpleNamespace(
        cudaError_t=real.cudaError_t, cudaGetErrorName=real.cudaGetErrorName, cudaGetErrorString=real.cudaGetErrorString
    )
    for name, result in calls.items():
        setattr(fake, name, lambda *a, _r=result: _r)
    return fake


# ---- CPU -------------------------------------------------------------------------------------------------


def test_check_unpacks_results(real_rt):
    ok = real_rt.cudaError_t.cudaSuccess
    assert cuda.check((ok,)) is None
    assert cuda.check(ok) is None
    assert cuda.check((ok, 7)) == 7
    assert cuda.check((ok, 1, 2)) == (1, 2)


def test_check_raises_named_cuda_error(real_rt):
    with pytest.raises(cuda.CudaError) as info:
        cuda.check((real_rt.cudaError_t.cudaErrorMemoryAllocation, None), "cudaMalloc(64)")
    err = info.value
    assert err.name == "cudaErrorMemoryAllocation" and err.call == "cudaMalloc(64)"
    assert err.code == int(real_rt.cudaError_t.cudaErrorMemoryAllocation)
    assert "cudaMalloc(64) failed: cudaErrorMemoryAllocation" in str(err)
    assert not isinstance(err, BackendUnavailableError)  # a real failure, not "no GPU here"


@pytest.mark.parametrize("code", ["cudaErrorNoDevice", "cudaErrorInsufficientDriver"])
def test_no_gpu_or_driver_is_backend_unavailable(real_rt, monkeypatch, code):
    err = getattr(real_rt.cudaError_t, code)
    monkeypatch.setattr(
        cuda_runtime, "_cudart", _fake_rt(real_rt, cudaGetDeviceCount=(err, 0), cudaMallocHost=(err, None))
    )
    available = cuda.cuda_available()
    assert not available.ok
    assert code in available.reason and "onnxruntime" in available.reason
    with pytest.raises(BackendUnavailableError, match=code) as info:
        cuda.PinnedBuffer((2, 3))
    assert isinstance(info.value, cuda.CudaError)


def test_zero_devices_reported(real_rt, monkeypatch):
    monkeypatch.setattr(
        cuda_runtime, "_cudart", _fake_rt(real_rt, cudaGetDeviceCount=(real_rt.cudaError_t.cudaSuccess, 0))
    )
    assert cuda.cuda_available() == cuda_runtime.Availability(False, "no CUDA GPU found")


def test_missing_cuda_bindings_reported(monkeypatch):
    monkeypatch.setattr(cuda_runtime, "_cudart", None)
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import` raise ImportError
    available = cuda.cuda_available()
    assert not available.ok and "cuda-bindings is not installed" in available.reason
    with pytest.raises(BackendUnavailableError, match=r"pip install 'stargan\[cuda\]'"):
        cuda.DeviceBuffer(16)


def test_this_machine_without_gpu_says_why():
    available = cuda.cuda_available()
    if available.ok:
        pytest.skip("this machine has a usable GPU")
    assert re.search(r"cuda-bindings is not installed|cudaError\w+", available.reason), available.reason


def test_bad_sizes_rejected_before_any_cuda_call():
    with pytest.raises(ValueError, match="positive size"):
        cuda.PinnedBuffer((0, 3))
    with pytest.raises(ValueError, match="positive size"):
        cuda.DeviceBuffer(0)


def _pointer_rt(real, pinned: np.ndarray, fail: bool = False):
    """A runtime that calls the bytes of `pinned` page-locked and any other address pageable (or, with `fail`,
    answers "invalid value" as drivers before CUDA 11 do), and counts cudaGetLastError calls."""
    base, end = pinned.ctypes.data, pinned.ctypes.data + pinned.nbytes
    kinds = real.cudaMemoryType
    fake = _fake_rt(real)
    fake.cudaMemoryType, fake.cleared = kinds, 0

    def attributes(ptr):
        if fail:
            return real.cudaError_t.cudaErrorInvalidValue, None
        kind = kinds.cudaMemoryTypeHost if base <= ptr < end else kinds.cudaMemoryTypeUnregistered
        return real.cudaError_t.cudaSuccess, types.SimpleNamespace(type=kind)

    def clear():
        fake.cleared += 1
        return (real.cudaError_t.cudaSuccess,)

    fake.cudaPointerGetAttributes, fake.cudaGetLastError = attributes, clear
    return fake


def test_page_locked_needs_the_whole_array_in_pinned_memory(real_rt, monkeypatch):
    block = np.zeros((8, 3, 4, 4), np.float32)
    monkeypatch.setattr(cuda_runtime, "_cudart", _pointer_rt(real_rt, block[:6]))  # rows 6..7 are pageable
    region = cuda.page_locked(block[2:5])
    assert region is not None and (region.ptr, region.nbytes) == (block[2:5].ctypes.data, block[2:5].nbytes)
    assert cuda.page_locked(block[:6]) is not None
    assert cuda.page_locked(block[5:7]) is None  # runs past the pinned bytes: DMA would read pageable memory
    assert cuda.page_locked(np.zeros_like(block)) is None  # pageable
    assert cuda.page_locked(block[:4, :, ::2]) is None  # not C-contiguous: one copy cannot read it
    assert cuda.page_locked(block[:0]) is None


def test_page_locked_treats_an_invalid_value_answer_as_pageable(real_rt, monkeypatch):
    fake = _pointer_rt(real_rt, np.zeros(4, np.float32), fail=True)
    monkeypatch.setattr(cuda_runtime, "_cudart", fake)
    assert cuda.page_locked(np.zeros(4, np.float32)) is None
    assert fake.cleared == 1  # the error is read back, so the next CUDA call does not report it


# ---- GPU -------------------------------------------------------------------------------------------------


@pytest.fixture
def stream():
    available = cuda.cuda_available()
    if not available.ok:
        pytest.skip(f"cuda-bindings cannot use the GPU: {available.reason}")
    cuda.set_device(0)
    with cuda.Stream() as s:
        yield s


@pytest.mark.gpu
def test_device_properties():
    assert cuda.device_count() >= 1
    info = cuda.device_properties(0)
    assert info.name and re.fullmatch(r"\d+\.\d+", info.compute_capability)
    assert info.total_memory > 1 << 30
    with pytest.raises(BackendUnavailableError, match="cudaErrorInvalidDevice"):
        cuda.device_properties(cuda.device_count() + 3)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_pinned_device_round_trip(stream, dtype):
    data = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(dtype)
    with cuda.PinnedBuffer(data.shape, dtype) as src, cuda.PinnedBuffer(data.shape, dtype) as dst:
        with cuda.DeviceBuffer(src.nbytes) as dev:
            assert src.array.ctypes.data == src.ptr and src.array.flags.writeable
            src.array[...] = data
            dst.array.fill(0)
            cuda.memcpy_htod_async(dev, src, src.nbytes, stream)
            cuda.memcpy_dtoh_async(dst, dev, dst.nbytes, stream)
            stream.synchronize()
            np.testing.assert_array_equal(dst.array, data)
            with pytest.raises(ValueError, match="cannot copy"):
                cuda.memcpy_htod_async(dev, src, src.nbytes + 1, stream)
    assert src.closed and dev.closed
    with pytest.raises(StarGANError, match="closed"):
        _ = src.array


@pytest.mark.gpu
def test_page_locked_recognises_pinned_allocations(stream):
    with cuda.PinnedBuffer((4, 8)) as buf, cuda.DeviceBuffer(buf.nbytes) as dev:
        region = cuda.page_locked(buf.array[1:3])
        assert region is not None and region.ptr == buf.ptr + buf.array[1:3].nbytes // 2 and region.nbytes == 64
        assert cuda.page_locked(np.zeros((4, 8), np.float32)) is None
        buf.array[...] = np.arange(32, dtype=np.float32).reshape(4, 8)
        out = np.zeros(16, np.float32)
        with cuda.PinnedBuffer(16) as back:
            cuda.memcpy_htod_async(dev, region, region.nbytes, stream)  # a region is a copy source
            cuda.memcpy_dtoh_async(back, dev, region.nbytes, stream)
            stream.synchronize()
            out[...] = back.array
        np.testing.assert_array_equal(out, np.arange(8, 24, dtype=np.float32))
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        assert cuda.page_locked(torch.empty((2, 3), pin_memory=True).numpy()) is not None


@pytest.mark.gpu
def test_stream_order_and_events(stream):
    rng = np.random.default_rng(1)
    n = 4 << 20  # 16 MiB of float32: long enough to time
    with (
        cuda.PinnedBuffer(n) as a,
        cuda.PinnedBuffer(n) as b,
        cuda.PinnedBuffer(n) as out,
        cuda.DeviceBuffer(4 * n) as dev,
    ):
        a.array[:] = rng.standard_normal(n)
        b.array[:] = rng.standard_normal(n)
        out.array.fill(0)
        start, end, uploaded = cuda.Event(), cuda.Event(), cuda.Event(timing=False)
        start.record(stream)
        cuda.memcpy_htod_async(dev, a, a.nbytes, stream)
        cuda.memcpy_htod_async(dev, b, b.nbytes, stream)  # same stream: runs after the first, so b wins
        end.record(stream)
        uploaded.record(stream)
        with cuda.Stream() as other:  # a second stream reads only after the event: ordering across streams
            other.wait(uploaded)
            cuda.memcpy_dtoh_async(out, dev, out.nbytes, other)
            other.synchronize()
        end.synchronize()
        np.testing.assert_array_equal(out.array, b.array)
        ms = start.elapsed_ms(end)
        assert 0.0 < ms < 1000.0
        for event in (start, end, uploaded):
            event.close()


@pytest.mark.gpu
def test_graph_replays_captured_copies(stream):
    rng = np.random.default_rng(2)
    n, half, fill = 1 << 16, 1 << 15, 0xAB
    with cuda.PinnedBuffer(n, np.uint8) as src, cuda.PinnedBuffer(n, np.uint8) as dst, cuda.DeviceBuffer(n) as dev:

        def work() -> None:
            cuda.memset_async(dev, fill, n, stream)
            cuda.memcpy_htod_async(dev, src, half, stream)
            cuda.memcpy_dtoh_async(dst, dev, n, stream)

        src.array[:] = rng.integers(0, 256, n, dtype=np.uint8)
        dst.array.fill(0)
        work()  # eager reference
        stream.synchronize()
        eager = dst.array.copy()
        expected = np.concatenate([src.array[:half], np.full(n - half, fill, np.uint8)])
        np.testing.assert_array_equal(eager, expected)

        dst.array.fill(0)
        with cuda.CudaGraph.capture(stream, work) as graph:
            stream.synchronize()
            assert not dst.array.any()  # capture records the work without running it
            graph.launch(stream)
            stream.synchronize()
            np.testing.assert_array_equal(dst.array, eager)
            src.array[:] = rng.integers(0, 256, n, dtype=np.uint8)  # replays read the buffers' current data
            graph.launch(stream)
            stream.synchronize()
            np.testing.assert_array_equal(dst.array[:half], src.array[:half])
        with pytest.raises(StarGANError, match="closed"):
            graph.launch(stream)
        graph.close()  # idempotent


@pytest.mark.gpu
def test_failed_capture_leaves_stream_usable(stream):
    with cuda.PinnedBuffer(64) as host, cuda.DeviceBuffer(host.nbytes) as dev:

        def broken() -> None:
            cuda.memcpy_htod_async(dev, host, host.nbytes, stream)
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            cuda.CudaGraph.capture(stream, broken)
        host.array[:] = 3.0  # the stream works normally again
        cuda.memcpy_htod_async(dev, host, host.nbytes, stream)
        host.array[:] = 0.0
        cuda.memcpy_dtoh_async(host, dev, host.nbytes, stream)
        stream.synchronize()
        assert (host.array == 3.0).all()


@pytest.mark.gpu
def test_device_memory_returns_after_close_and_del(stream):
    cuda.DeviceBuffer(1 << 20).close()  # make sure the context exists before measuring
    chunk, tolerance = 64 << 20, 8 << 20
    free0, _ = cuda.mem_get_info()
    buffers = [cuda.DeviceBuffer(chunk) for _ in range(4)]
    assert free0 - cuda.mem_get_info()[0] >= 4 * chunk - tolerance
    for buf in buffers:
        buf.close()
        buf.close()  # idempotent
    assert abs(cuda.mem_get_info()[0] - free0) <= tolerance
    leaked = cuda.DeviceBuffer(4 * chunk)
    del leaked  # the __del__ safety net frees it
    gc.collect()
    assert abs(cuda.mem_get_info()[0] - free0) <= tolerance


@pytest.mark.gpu
def test_errors_map_to_cuda_error(stream):
    with pytest.raises(cuda.CudaError) as info:
        cuda.DeviceBuffer(1 << 52)  # 4 PiB
    assert info.value.name == "cudaErrorMemoryAllocation"
    assert not isinstance(info.value, BackendUnavailableError)
    with cuda.DeviceBuffer(1 << 20) as buf:  # the failure is not sticky
        assert buf.ptr != 0
