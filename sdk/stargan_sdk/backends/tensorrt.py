"""TensorRT backend: the bundle's raw engine plan, pinned staging buffers, async copies, CUDA graphs per batch size.

Usage: with TrtBackend(bundle, read_manifest(bundle)) as b: y = b.infer({"image": x, "label": c})["output"]

Two buffer slots (pinned host + device memory for the max batch, allocated once at load) share one execution
context and one compute stream. `infer` uses slot 0; `infer_pipelined` alternates both so the upload of batch
k+1 (on a copy stream) overlaps the compute of batch k. One context suffices: work on one stream runs in
order, and concurrently running contexts would each need their own optimisation profile. TensorRT 10 and 11
differ in how engines are built (11 is strongly typed only); the runtime calls used here exist in both.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Iterator

import numpy as np

from stargan_sdk import cuda
from stargan_sdk.backends.base import Availability, Backend
from stargan_sdk.constants import INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
from stargan_sdk.errors import BackendUnavailableError, BundleError, EngineMismatchError, ImageInputError, StarGANError
from stargan_sdk.manifest import Artifact, Manifest, verify_artifact

log = logging.getLogger(__name__)
MIN_TENSORRT_MAJOR = 10
INPUTS = (INPUT_IMAGE, INPUT_LABEL)
_trt_loggers: dict[int, Any] = {}


def import_tensorrt() -> ModuleType:
    """The tensorrt module, or BackendUnavailableError saying how to get a usable one."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailableError(
            "TensorRT is not installed: pip install 'stargan[tensorrt]' on a machine with an NVIDIA GPU"
        ) from None
    except OSError as e:  # the wheel is there but libnvinfer or the CUDA libraries it needs are not
        raise BackendUnavailableError(f"TensorRT is installed but cannot load its libraries: {e}") from None
    if major_minor(trt.__version__)[0] < MIN_TENSORRT_MAJOR:
        raise BackendUnavailableError(f"TensorRT {trt.__version__} is too old: this backend needs TensorRT 10+")
    return trt


def major_minor(version: str) -> tuple[int, int]:
    try:
        major, minor = (version.split(".") + ["0"])[:2]
        return int(major), int(minor)
    except ValueError:
        return (0, 0)


def rebuild_command(bundle_dir: str | Path, manifest: Manifest) -> str:
    checkpoint = manifest.source.get("checkpoint") or "CHECKPOINT"
    return f"stargan-export build {checkpoint} --out {bundle_dir} --fp16 --engine"


def match_engine(art: Artifact, trt_version: str, gpu: cuda.DeviceInfo, rebuild: str) -> None:
    """Raise EngineMismatchError unless the engine was built with this TensorRT (major.minor) for this GPU
    architecture. Another GPU model of the same compute capability only warns: TensorRT loads such an engine
    (its tactics may be slower), while another architecture or TensorRT version cannot run it."""
    here = "%d.%d" % major_minor(trt_version)
    todo = f"rebuild it on this GPU ({gpu.name}) with TensorRT {here}: {rebuild}"
    if not art.tensorrt_version:
        raise EngineMismatchError(f"{art.file}: the manifest does not record its TensorRT version; {todo}")
    if major_minor(art.tensorrt_version) != major_minor(trt_version):
        raise EngineMismatchError(
            f"{art.file} was built with TensorRT {art.tensorrt_version}, this machine has {trt_version}; {todo}"
        )
    if art.compute_capability and art.compute_capability != gpu.compute_capability:
        raise EngineMismatchError(
            f"{art.file} was built for compute capability {art.compute_capability} ({art.gpu_name}), "
            f"this GPU is {gpu.compute_capability} ({gpu.name}); {todo}"
        )
    if art.gpu_name and art.gpu_name.strip() != gpu.name.strip():
        log.warning("%s was built on %s, runs on %s and may be slower; %s", art.file, art.gpu_name, gpu.name, todo)


def check_engine(bundle_dir: str | Path, manifest: Manifest, device: int = 0) -> Artifact:
    """The bundle's engine artifact if TensorRT, the GPU and the engine fit; else BackendUnavailableError
    (EngineMismatchError for a mismatched engine) saying what is missing."""
    trt = import_tensorrt()
    available = cuda.cuda_available()
    if not available.ok:
        raise BackendUnavailableError(f"no usable CUDA GPU: {available.reason}")
    count = cuda.device_count()
    if not 0 <= device < count:
        raise BackendUnavailableError(f"CUDA device {device} does not exist (this machine has {count})")
    rebuild = rebuild_command(bundle_dir, manifest)
    art = manifest.artifact(role="generator", kind="tensorrt")
    if art is None:
        raise BackendUnavailableError(f"bundle {bundle_dir} has no TensorRT engine; build one on this GPU: {rebuild}")
    match_engine(art, trt.__version__, cuda.device_properties(device), rebuild)
    return art


def _logger(trt: ModuleType) -> Any:
    """One logger per process (per tensorrt module): TensorRT warns when runtimes get different loggers."""
    if id(trt) not in _trt_loggers:
        _trt_loggers[id(trt)] = trt.Logger(trt.Logger.WARNING)
    return _trt_loggers[id(trt)]


class _Slot:
    """Pinned host and device buffers of every I/O tensor at max batch, and the events ordering their use."""

    def __init__(self, index: int, specs: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        self.index = index
        self.row_bytes = {name: int(np.prod(shape[1:])) * dt.itemsize for name, (shape, dt) in specs.items()}
        self.host: dict[str, cuda.PinnedBuffer] = {}
        self.dev: dict[str, cuda.DeviceBuffer] = {}
        self.events: list[cuda.Event] = []
        try:
            for name, (shape, dt) in specs.items():
                self.host[name] = cuda.PinnedBuffer(shape, dt)
                self.dev[name] = cuda.DeviceBuffer(self.host[name].nbytes)
            self.events = [cuda.Event(timing=False), cuda.Event(timing=False)]
        except BaseException:
            self.close()
            raise
        self.uploaded, self.finished = self.events  # inputs on the device / outputs back in pinned memory

    def upload(self, n: int, stream: cuda.Stream) -> None:
        for name in INPUTS:
            cuda.memcpy_htod_async(self.dev[name], self.host[name], self.row_bytes[name] * n, stream)

    def download(self, n: int, stream: cuda.Stream) -> None:
        out = OUTPUT_IMAGE
        cuda.memcpy_dtoh_async(self.host[out], self.dev[out], self.row_bytes[out] * n, stream)

    def result(self, n: int) -> dict[str, np.ndarray]:
        return {OUTPUT_IMAGE: self.host[OUTPUT_IMAGE].array[:n].astype(np.float32, copy=True)}

    def close(self) -> None:
        for res in [*self.host.values(), *self.dev.values(), *self.events]:
            res.close()


class TrtBackend(Backend):
    """Runs the bundle's TensorRT engine with the v3 named-tensor API on one GPU.

    Args:
        bundle_dir: the bundle folder.
        manifest: its parsed manifest.
        device: CUDA device ordinal.
        max_batch: largest batch to allocate buffers for (capped by the engine profile's max).
        options: `cuda_graphs` (default True): capture one CUDA graph per batch size and replay it.
    """

    name = "tensorrt"
    accepted_options = ()  # cuda_graphs only (common to all backends)

    def __init__(
        self,
        bundle_dir: str | Path,
        manifest: Manifest,
        *,
        device: int = 0,
        max_batch: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(bundle_dir, manifest, device=device, max_batch=max_batch, **options)
        self.cuda_graphs = bool(options.get("cuda_graphs", True))
        self.lock = threading.RLock()  # one context and one set of buffers: calls run one at a time
        self._reset()

    def _reset(self) -> None:
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._slots: list[_Slot] = []
        self._streams: list[cuda.Stream] = []  # [compute, copy]
        self._graphs: dict[tuple[int, int], cuda.CudaGraph] = {}  # (slot, batch) -> graph
        self._graph_failed: set[tuple[int, int]] = set()
        self._bound_slot, self._bound_batch, self._pipelining = -1, -1, False
        self._trt_version, self._gpu = "", cuda.DeviceInfo(self.device, "", "", 0)
        self.min_batch, self.batch = 1, 0

    @classmethod
    def availability(cls, bundle_dir: str | Path, manifest: Manifest, device: int = 0) -> Availability:
        try:
            art = check_engine(bundle_dir, manifest, device)
        except BackendUnavailableError as e:
            return Availability(False, str(e))
        return Availability(True, f"{art.file} matches this GPU and TensorRT")

    def load(self) -> None:
        with self.lock:
            if self.loaded:
                return
            try:
                self._load()
            except BaseException:
                self.close()
                raise
            self.loaded = True

    def _load(self) -> None:
        art = check_engine(self.bundle_dir, self.manifest, self.device)
        plan = verify_artifact(self.bundle_dir, art).read_bytes()
        trt = import_tensorrt()
        cuda.set_device(self.device)
        self._trt_version, self._gpu = trt.__version__, cuda.device_properties(self.device)
        self._runtime = trt.Runtime(_logger(trt))
        self._engine = self._runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise EngineMismatchError(
                f"TensorRT {trt.__version__} could not deserialize {art.file} (see its log above); rebuild it "
                f"here: {rebuild_command(self.bundle_dir, self.manifest)}"
            )
        specs = self._io_specs(trt, art)
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise BackendUnavailableError("TensorRT could not create an execution context (out of GPU memory?)")
        self._streams = [cuda.Stream(), cuda.Stream()]
        self._slots = [_Slot(0, specs), _Slot(1, specs)]
        self._bind(self._slots[0], self.batch)  # slot 0's addresses stay set unless a pipeline uses slot 1

    def _io_specs(self, trt: ModuleType, art: Artifact) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Max-batch shape and dtype of each I/O tensor, after checking the engine against the manifest."""
        eng = self._engine
        names = [eng.get_tensor_name(i) for i in range(eng.num_io_tensors)]
        inputs = sorted(n for n in names if eng.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        if inputs != sorted(INPUTS) or sorted(set(names) - set(inputs)) != [OUTPUT_IMAGE]:
            raise BundleError(f"engine tensors {names} are not {[*INPUTS, OUTPUT_IMAGE]}; re-export the bundle")
        lo, _, hi = (tuple(int(d) for d in dims) for dims in eng.get_tensor_profile_shape(INPUT_IMAGE, 0))
        limits = [hi[0], art.profile.max if art.profile else hi[0], self.max_batch or hi[0]]
        self.min_batch, self.batch = lo[0], min(limits)
        if self.batch < self.min_batch:
            raise ValueError(f"max_batch={self.max_batch} is below the engine's minimum batch {self.min_batch}")
        size = self.manifest.image_size
        expected = {INPUT_IMAGE: (3, size, size), INPUT_LABEL: (self.manifest.c_dim,), OUTPUT_IMAGE: (3, size, size)}
        specs = {}
        for name in names:
            shape = tuple(int(d) for d in eng.get_tensor_shape(name))
            if shape[1:] != expected[name]:
                raise BundleError(f"engine tensor {name!r} has shape {shape}; the manifest says (N, *{expected[name]})")
            specs[name] = ((self.batch, *shape[1:]), np.dtype(trt.nptype(eng.get_tensor_dtype(name))))
        return specs

    def input_buffers(self) -> dict[str, np.ndarray]:
        """Slot 0's pinned max-batch input arrays: write rows [0, n) (e.g. from preprocessing), then call
        `infer_staged(n)`. Hold `backend.lock` across both calls when threads share this backend."""
        self._require_loaded()
        return {name: self._slots[0].host[name].array for name in INPUTS}

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._require_loaded()
        with self.lock:
            self._not_pipelining()
            return self._run_sync(self._stage(self._slots[0], feeds))

    def infer_staged(self, batch: int) -> dict[str, np.ndarray]:
        """Run the first `batch` rows already written into `input_buffers()`."""
        self._require_loaded()
        with self.lock:
            self._not_pipelining()
            return self._run_sync(self._check_batch(batch))

    def infer_pipelined(self, batches: Iterable[dict[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
        """Yield each batch's outputs in order; batch k+1 is staged and uploaded while batch k computes."""
        self._require_loaded()
        with self.lock:
            self._not_pipelining()
            self._pipelining = True
            compute, copy = self._streams
            pending: deque[tuple[_Slot, int]] = deque()
            try:
                for k, feeds in enumerate(batches):
                    slot = self._slots[k % 2]
                    if len(pending) == 2:  # this slot still holds batch k-2: finish it before overwriting
                        yield self._collect(*pending.popleft())
                    n = self._stage(slot, feeds)
                    cuda.set_device(self.device)
                    slot.upload(n, copy)
                    slot.uploaded.record(copy)
                    compute.wait(slot.uploaded)
                    self._execute(slot, n)
                    slot.download(n, compute)
                    slot.finished.record(compute)
                    pending.append((slot, n))
                while pending:
                    yield self._collect(*pending.popleft())
            finally:
                self._pipelining = False
                for stream in self._streams:  # an abandoned pipeline must not leave copies in flight
                    stream.synchronize()

    def _not_pipelining(self) -> None:
        if self._pipelining:
            raise StarGANError("this thread is iterating infer_pipelined(); finish or close it before calling infer")

    def _check_batch(self, n: int) -> int:
        if not self.min_batch <= n <= self.batch:
            raise ImageInputError(f"batch of {n}: this engine runs {self.min_batch} to {self.batch}; split the batch")
        return n

    def _stage(self, slot: _Slot, feeds: dict[str, np.ndarray]) -> int:
        missing = [name for name in INPUTS if name not in feeds]
        if missing:
            raise ImageInputError(f"infer needs the inputs {list(INPUTS)}; missing {missing}")
        n = self._check_batch(len(feeds[INPUT_IMAGE]))
        for name in INPUTS:
            arr, dst = np.asarray(feeds[name]), slot.host[name].array
            if arr.shape != (n, *dst.shape[1:]):
                raise ImageInputError(f"input {name!r} has shape {arr.shape}, expected {(n, *dst.shape[1:])}")
            np.copyto(dst[:n], arr, casting="same_kind")
        return n

    def _run_sync(self, n: int) -> dict[str, np.ndarray]:
        slot, compute = self._slots[0], self._streams[0]
        cuda.set_device(self.device)  # the current device is per thread, and callers may be any thread
        slot.upload(n, compute)
        self._execute(slot, n)
        slot.download(n, compute)
        compute.synchronize()
        return slot.result(n)

    def _collect(self, slot: _Slot, n: int) -> dict[str, np.ndarray]:
        slot.finished.synchronize()
        return slot.result(n)

    def _execute(self, slot: _Slot, n: int) -> None:
        """Queue the engine on the compute stream: replay the graph of (slot, n), or enqueue and then capture
        one. Capture follows a real enqueue of the same shape and addresses, as TensorRT requires after a
        shape change; capture only records, so this call's result comes from that enqueue."""
        key, compute = (slot.index, n), self._streams[0]
        if key in self._graphs:
            self._graphs[key].launch(compute)
            return
        self._enqueue(slot, n)
        if self.cuda_graphs and key not in self._graph_failed:
            try:
                self._graphs[key] = cuda.CudaGraph.capture(compute, lambda: self._enqueue(slot, n))
            except StarGANError as e:
                self._graph_failed.add(key)  # logged once: this batch size runs plain enqueues from now on
                log.warning("CUDA graph capture failed for batch %d (slot %d), using plain enqueue: %s",
                            n, slot.index, e)

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
                    raise StarGANError(f"TensorRT refused batch {n} for {name!r} ({self.min_batch}..{self.batch})")
            self._bound_batch = n

    def _enqueue(self, slot: _Slot, n: int) -> None:
        self._bind(slot, n)
        if not self._context.execute_async_v3(self._streams[0].handle):
            raise StarGANError("TensorRT execute_async_v3 failed (see the TensorRT log above)")

    def graph_batches(self) -> list[int]:
        """Batch sizes with a captured CUDA graph (either slot)."""
        return sorted({n for _, n in self._graphs})

    def describe(self) -> dict[str, Any]:
        art = self.manifest.artifact(role="generator", kind="tensorrt")
        info: dict[str, Any] = {"backend": self.name, "cuda_graphs": self.cuda_graphs, "engine": art and art.file}
        if art is not None:
            info.update(precision=art.precision, profile=asdict(art.profile) if art.profile else None)
        if self.loaded:
            gpu = self._gpu
            info.update(tensorrt=self._trt_version, device=gpu.name, compute_capability=gpu.compute_capability)
            info.update(max_batch=self.batch, graph_batches=self.graph_batches())
        return info

    def close(self) -> None:
        with self.lock:
            for stream in self._streams:
                _quietly(stream.synchronize)
            graphs = list(self._graphs.values())
            for graph in graphs:  # graphs run the context's kernels: free them before the context
                _quietly(graph.close)
            self._context = self._engine = self._runtime = None
            for res in [*self._slots, *self._streams]:
                _quietly(res.close)
            self._reset()
            self.loaded = False


def _quietly(fn: Any) -> None:
    """Teardown goes on after a CUDA error (e.g. a sticky one) so that every other resource is still freed."""
    try:
        fn()
    except StarGANError as e:
        log.warning("while closing the TensorRT backend: %s", e)
