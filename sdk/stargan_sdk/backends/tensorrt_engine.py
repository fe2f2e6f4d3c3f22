"""One deserialized TensorRT plan on one GPU: pinned staging buffers, async copies, CUDA graphs per batch size.

Usage: with TrtEngine(plan_bytes, image_size=128, c_dim=5) as e: y = e.infer({"image": x, "label": c})["output"]

Used by the SDK's TensorRT backend and by the exporter's engine parity check, so an engine is only ever run one
way. Two buffer slots (pinned host + device memory for the max batch, allocated once) share one execution
context and one compute stream. `infer` uses slot 0; `infer_batches` alternates both so the upload of batch
k+1 (on a copy stream) overlaps the compute of batch k. Inputs that already lie in page-locked memory are
uploaded from where they are, without the staging copy; the CUDA graphs hold only the engine's kernels, so
where an upload reads from does not matter to them. One context suffices: work on one stream runs in order,
and concurrently running contexts would each need their own optimisation profile. Only calls that exist with
the same signature in TensorRT 10.0 to 11.x are used (checked by the `trt_api` tests).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from stargan_sdk import cuda
from stargan_sdk.backends.tensorrt_compat import import_tensorrt
from stargan_sdk.backends.tensorrt_uint8 import Uint8Boundary
from stargan_sdk.bundle.constants import INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
from stargan_sdk.errors import BackendUnavailableError, BundleError, EngineMismatchError, ImageInputError, StarGANError

log = logging.getLogger("stargan_sdk.backends.tensorrt")
INPUTS = (INPUT_IMAGE, INPUT_LABEL)
_trt_loggers: dict[int, Any] = {}
Feeds = dict[str, np.ndarray]


def _logger(trt: Any) -> Any:
    """One logger per process (per tensorrt module): TensorRT warns when runtimes get different loggers."""
    if id(trt) not in _trt_loggers:
        _trt_loggers[id(trt)] = trt.Logger(trt.Logger.WARNING)
    return _trt_loggers[id(trt)]


class _Slot:
    """Pinned host and device buffers of every I/O tensor at max batch, and the events ordering their use."""

    def __init__(self, index: int, specs: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        self.index = index
        self.row_bytes = {name: int(np.prod(shape[1:])) * dt.itemsize for name, (shape, dt) in specs.items()}
        self.host: dict[str, Any] = {}
        self.dev: dict[str, Any] = {}
        self.events: list[Any] = []
        try:
            for name, (shape, dt) in specs.items():
                self.host[name] = cuda.PinnedBuffer(shape, dt)
                self.dev[name] = cuda.DeviceBuffer(self.host[name].nbytes)
            self.events = [cuda.Event(timing=False), cuda.Event(timing=False)]
        except BaseException:
            self.close()
            raise
        self.uploaded, self.finished = self.events  # inputs on the device / outputs back in pinned memory

    def upload(self, n: int, sources: dict[str, Any], stream: Any) -> None:
        """Queue the inputs' copies from `sources` (this slot's staging buffers or the caller's pinned arrays)."""
        for name in INPUTS:
            cuda.memcpy_htod_async(self.dev[name], sources[name], self.row_bytes[name] * n, stream)

    def download(self, n: int, stream: Any) -> None:
        out = OUTPUT_IMAGE
        cuda.memcpy_dtoh_async(self.host[out], self.dev[out], self.row_bytes[out] * n, stream)

    def result(self, n: int) -> Feeds:
        return {OUTPUT_IMAGE: self.host[OUTPUT_IMAGE].array[:n].astype(np.float32, copy=True)}

    def close(self) -> None:
        for res in [*self.host.values(), *self.dev.values(), *self.events]:
            res.close()


class TrtEngine:
    """Runs a serialized plan with the v3 named-tensor API; calls are serialised by `lock`.

    Args:
        plan: the raw plan bytes.
        image_size: expected image side; the engine's tensors must be [N, 3, S, S], [N, c_dim], [N, 3, S, S].
        c_dim: label length.
        device: CUDA device ordinal.
        max_batch: largest batch to allocate buffers for (capped by the engine profile's max).
        cuda_graphs: capture one CUDA graph per (slot, batch size) and replay it.
        source: the plan's name for messages; rebuild: what to run when the plan does not load here.
        uint8_plans: (preprocess, postprocess) plan bytes for `infer_uint8` on the device (`tensorrt_uint8`).
    """

    def __init__(
        self,
        plan: bytes,
        *,
        image_size: int,
        c_dim: int,
        device: int = 0,
        max_batch: int | None = None,
        cuda_graphs: bool = True,
        source: str = "the engine",
        rebuild: str = "",
        uint8_plans: tuple[bytes, bytes] | None = None,
    ) -> None:
        self.plan, self.image_size, self.c_dim, self.device = plan, image_size, c_dim, device
        self.uint8_plans = uint8_plans
        self.requested_max_batch, self.cuda_graphs, self.source, self.rebuild = max_batch, cuda_graphs, source, rebuild
        self.lock = threading.RLock()  # one context and one set of buffers: calls run one at a time
        self.tensorrt_version = ""
        self._reset()

    def _reset(self) -> None:
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._slots: list[_Slot] = []
        self._streams: list[Any] = []  # [compute, copy]
        self._graphs: dict[tuple[Any, int], Any] = {}  # (slot, batch) or ("uint8", batch) -> graph
        self._graph_failed: set[tuple[Any, int]] = set()
        self._uint8: Uint8Boundary | None = None
        self._bound_slot, self._bound_batch = -1, -1
        self.min_batch, self.max_batch, self.opened = 1, 0, False

    def __enter__(self) -> TrtEngine:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        with self.lock:
            if self.opened:
                return
            try:
                self._open()
            except BaseException:
                self.close()
                raise
            self.opened = True

    def _open(self) -> None:
        trt = import_tensorrt()
        cuda.set_device(self.device)
        self.tensorrt_version = trt.__version__
        self._runtime = trt.Runtime(_logger(trt))
        self._engine = self._runtime.deserialize_cuda_engine(self.plan)
        if self._engine is None:
            raise EngineMismatchError(
                f"TensorRT {trt.__version__} could not deserialize {self.source} (see its log above); rebuild it "
                f"here{': ' + self.rebuild if self.rebuild else ''}"
            )
        specs = self._io_specs(trt)
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise BackendUnavailableError("TensorRT could not create an execution context (out of GPU memory?)")
        self._streams = [cuda.Stream(), cuda.Stream()]
        self._slots = [_Slot(0, specs), _Slot(1, specs)]
        if self.uint8_plans is not None:
            self._uint8 = Uint8Boundary(trt, self._runtime, self.uint8_plans, image_size=self.image_size,
                                        max_batch=self.max_batch)  # fmt: skip

    def _io_specs(self, trt: Any) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Max-batch shape and dtype of each I/O tensor, after checking the engine's tensors."""
        eng = self._engine
        names = [eng.get_tensor_name(i) for i in range(eng.num_io_tensors)]
        inputs = sorted(n for n in names if eng.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        if inputs != sorted(INPUTS) or sorted(set(names) - set(inputs)) != [OUTPUT_IMAGE]:
            raise BundleError(f"engine tensors {names} are not {[*INPUTS, OUTPUT_IMAGE]}; re-export the bundle")
        lo, _, hi = (tuple(int(d) for d in dims) for dims in eng.get_tensor_profile_shape(INPUT_IMAGE, 0))
        self.min_batch, self.max_batch = lo[0], min(hi[0], self.requested_max_batch or hi[0])
        if self.max_batch < self.min_batch:
            raise ValueError(
                f"max_batch={self.requested_max_batch} is below the engine's minimum batch {self.min_batch}"
            )
        size = self.image_size
        expected = {INPUT_IMAGE: (3, size, size), INPUT_LABEL: (self.c_dim,), OUTPUT_IMAGE: (3, size, size)}
        specs = {}
        for name in names:
            shape = tuple(int(d) for d in eng.get_tensor_shape(name))
            if shape[1:] != expected[name]:
                raise BundleError(f"engine tensor {name!r} has shape {shape}; the manifest says (N, *{expected[name]})")
            specs[name] = ((self.max_batch, *shape[1:]), np.dtype(trt.nptype(eng.get_tensor_dtype(name))))
        return specs

    def _require_open(self) -> None:
        if not self.opened:
            raise StarGANError(f"{self.source} is not loaded; call load() or use it as a context manager")

    def infer(self, feeds: Feeds) -> Feeds:
        self._require_open()
        with self.lock:
            slot, compute = self._slots[0], self._streams[0]
            # The current device is per thread and callers may be any thread; set it before `_stage` asks CUDA
            # about the inputs' memory, so no other device's context is created for that question.
            cuda.set_device(self.device)
            n, sources = self._stage(slot, feeds)
            slot.upload(n, sources, compute)
            self._execute(slot, n)
            slot.download(n, compute)
            compute.synchronize()
            return slot.result(n)

    def infer_uint8(self, pixels: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """uint8 [n, S, S, 3] crops and float32 [n, c] labels -> uint8 [n, S, S, 3]: the preprocess plan, the
        generator and the postprocess plan on slot 0's device buffers, one CUDA graph per batch size."""
        self._require_open()
        if self._uint8 is None:
            raise StarGANError(f"{self.source} was opened without the uint8 plans")
        with self.lock:
            slot, compute, u8 = self._slots[0], self._streams[0], self._uint8
            cuda.set_device(self.device)
            n = len(pixels)
            if not self.min_batch <= n <= self.max_batch or np.shape(labels) != (n, self.c_dim):
                raise ImageInputError(
                    f"{n} crops with labels of shape {list(np.shape(labels))}: this engine runs batches of "
                    f"{self.min_batch} to {self.max_batch} with labels [n, {self.c_dim}]"
                )
            u8.upload(n, u8.stage(n, pixels), compute)
            np.copyto(slot.host[INPUT_LABEL].array[:n], labels, casting="same_kind")
            cuda.memcpy_htod_async(
                slot.dev[INPUT_LABEL], slot.host[INPUT_LABEL], slot.row_bytes[INPUT_LABEL] * n, compute
            )
            self._run(("uint8", n), lambda: self._enqueue_uint8(slot, n))
            u8.download(n, compute)
            compute.synchronize()
            return u8.result(n)

    def _enqueue_uint8(self, slot: _Slot, n: int) -> None:
        stream = self._streams[0]
        self._uint8.normalise(n, slot.dev[INPUT_IMAGE].ptr, stream)  # type: ignore[union-attr]
        self._enqueue(slot, n)
        self._uint8.denormalise(n, slot.dev[OUTPUT_IMAGE].ptr, stream)  # type: ignore[union-attr]

    def infer_batches(self, batches: Sequence[Feeds]) -> list[Feeds]:
        """Each batch's outputs in order; batch k+1 is staged and uploaded while batch k computes."""
        self._require_open()
        with self.lock:
            compute, copy = self._streams
            results: list[Feeds] = []
            pending: deque[tuple[_Slot, int]] = deque()
            try:
                for k, feeds in enumerate(batches):
                    slot = self._slots[k % 2]
                    if len(pending) == 2:  # this slot still holds batch k-2: finish it before overwriting
                        results.append(self._collect(*pending.popleft()))
                    cuda.set_device(self.device)
                    n, sources = self._stage(slot, feeds)
                    slot.upload(n, sources, copy)
                    slot.uploaded.record(copy)
                    compute.wait(slot.uploaded)
                    self._execute(slot, n)
                    slot.download(n, compute)
                    slot.finished.record(compute)
                    pending.append((slot, n))
                while pending:
                    results.append(self._collect(*pending.popleft()))
            finally:
                for stream in self._streams:  # after a bad batch no copy may still be in flight
                    stream.synchronize()
            return results

    def _stage(self, slot: _Slot, feeds: Feeds) -> tuple[int, dict[str, Any]]:
        """Check the inputs; return the batch size and where each input is uploaded from. An input of the
        engine's dtype that already lies in page-locked memory is read in place (no host copy); any other is
        copied into the slot's staging buffer (`infer` and `infer_batches` synchronise before they return, so
        a caller's array is never read after its call)."""
        missing = [name for name in INPUTS if name not in feeds]
        if missing:
            raise ImageInputError(f"infer needs the inputs {list(INPUTS)}; missing {missing}")
        n = len(feeds[INPUT_IMAGE])
        if not self.min_batch <= n <= self.max_batch:
            raise ImageInputError(
                f"batch of {n}: this engine runs {self.min_batch} to {self.max_batch}; split the batch"
            )
        sources: dict[str, Any] = {}
        for name in INPUTS:
            arr, dst = np.asarray(feeds[name]), slot.host[name].array
            if arr.shape != (n, *dst.shape[1:]):
                raise ImageInputError(f"input {name!r} has shape {arr.shape}, expected {(n, *dst.shape[1:])}")
            region = cuda.page_locked(arr) if arr.dtype == dst.dtype else None
            if region is None:
                np.copyto(dst[:n], arr, casting="same_kind")
            sources[name] = slot.host[name] if region is None else region
        return n, sources

    def _collect(self, slot: _Slot, n: int) -> Feeds:
        slot.finished.synchronize()
        return slot.result(n)

    def _execute(self, slot: _Slot, n: int) -> None:
        """Queue the engine on the compute stream: replay the graph of (slot, n), or enqueue and then capture
        one. Capture follows a real enqueue of the same shape and addresses, as TensorRT requires after a
        shape change; capture only records, so this call's result comes from that enqueue."""
        self._run((slot.index, n), lambda: self._enqueue(slot, n))

    def _run(self, key: tuple[Any, int], work: Any) -> None:
        """Replay the graph of `key`, or run `work` and then capture it (see `_execute`)."""
        compute = self._streams[0]
        if key in self._graphs:
            self._graphs[key].launch(compute)
            return
        work()
        if self.cuda_graphs and key not in self._graph_failed:
            try:
                self._graphs[key] = cuda.CudaGraph.capture(compute, work)
            except StarGANError as e:
                self._graph_failed.add(key)  # logged once: this batch size runs plain enqueues from now on
                log.warning("CUDA graph capture failed for %s batch %d, using plain enqueue: %s", key[0], key[1], e)

    def _bind(self, slot: _Slot, n: int) -> None:
        ctx = self._context
        if self._bound_slot != slot.index:
            for name, buf in slot.dev.items():
                if not ctx.set_tensor_address(name, buf.ptr):
                    raise StarGANError(f"TensorRT refused the device address of tensor {name!r}")
            self._bound_slot = slot.index
        if self._bound_batch != n:
            for name in INPUTS:
                if not ctx.set_input_shape(name, (n, *slot.host[name].shape[1:])):
                    raise StarGANError(f"TensorRT refused batch {n} for {name!r} ({self.min_batch}..{self.max_batch})")
            self._bound_batch = n

    def _enqueue(self, slot: _Slot, n: int) -> None:
        self._bind(slot, n)
        if not self._context.execute_async_v3(self._streams[0].handle):
            raise StarGANError("TensorRT execute_async_v3 failed (see the TensorRT log above)")

    def graph_batches(self) -> list[int]:
        """Batch sizes with a captured CUDA graph of the float path (either slot)."""
        return sorted({n for slot, n in self._graphs if isinstance(slot, int)})

    def uint8_graph_batches(self) -> list[int]:
        """Batch sizes with a captured CUDA graph of the uint8 chain."""
        return sorted(n for kind, n in self._graphs if kind == "uint8")

    @property
    def has_uint8(self) -> bool:
        return self._uint8 is not None

    def close(self) -> None:
        with self.lock:
            for stream in self._streams:
                _quietly(stream.synchronize)
            for graph in list(self._graphs.values()):  # graphs run the context's kernels: free them first
                _quietly(graph.close)
            if self._uint8 is not None:
                _quietly(self._uint8.close)
            self._context = self._engine = self._runtime = None
            for res in [*self._slots, *self._streams]:
                _quietly(res.close)
            self._reset()


def _quietly(fn: Any) -> None:
    """Teardown goes on after a CUDA error (e.g. a sticky one) so that every other resource is still freed."""
    try:
        fn()
    except StarGANError as e:
        log.warning("while closing the TensorRT engine: %s", e)
