"""A CPU simulation of TensorRT and a GPU behind the real bindings' surface: build, serialize, load, run.

Usage: sim = Simulation(surface("11.4.0.106")); sim.install(monkeypatch); ...project code...; sim.assert_clean()

The fake `tensorrt` module (see fake.py) only answers names and calls that the real module of that version has.
Behind it: parsing checks the file is an ONNX model ONNX Runtime can load; a "plan" is a small header (the
TensorRT version, the profile) followed by the ONNX bytes; deserializing returns None for a plan of another
version, as TensorRT does; `execute_async_v3` runs the ONNX model with ONNX Runtime on the simulated device
memory at the addresses and shapes bound on the context, with each I/O tensor's name, mode and dtype (float32, or
uint8 for the boundary converters) read from the ONNX graph. `stargan_sdk.cuda` is replaced by host memory: copies
happen at once, and CUDA graph capture records work that `launch` replays, with the addresses baked in.
"""

from __future__ import annotations

import ctypes
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from trtsim.fake import FakeObject, FakeTensorRT

MAGIC = b"STARGAN-SIMULATED-TRT\n"
_ONNX_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(float16)": "float16"}
_DATA_TYPES = {"float32": "FLOAT", "uint8": "UINT8", "float16": "HALF"}
GPU_NAME, CAPABILITY = "Simulated GPU", "9.0"


def _dims(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in (value._fk_state["items"] if isinstance(value, FakeObject) else value))


class Device:
    """Host memory standing in for device memory; work queued during a capture is recorded, not run."""

    def __init__(self) -> None:
        self.allocations: dict[int, np.ndarray] = {}
        self.pinned: dict[int, np.ndarray] = {}  # page-locked host allocations (PinnedBuffer) by address
        self.capturing: list[Callable[[], None]] | None = None
        self.handles = itertools.count(0x1000)

    def run(self, work: Callable[[], None]) -> None:
        if self.capturing is not None:
            self.capturing.append(work)
        else:
            work()

    def view(self, ptr: int, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        for base, buf in self.allocations.items():
            if base <= ptr and ptr + nbytes <= base + buf.nbytes:
                return buf[ptr - base : ptr - base + nbytes].view(dtype).reshape(shape)
        raise AssertionError(f"address {ptr:#x} (+{nbytes} bytes) is not inside any simulated allocation")

    def cuda_namespace(self) -> dict[str, Any]:
        """Replacements for what `stargan_sdk.cuda` exports."""
        from stargan_sdk.backends.base import Availability
        from stargan_sdk.cuda import DeviceInfo

        device = self

        class Resource:
            closed = False

            def close(self) -> None:
                self.closed = True

            def __enter__(self) -> Any:
                return self

            def __exit__(self, *exc: object) -> None:
                self.close()

        class PinnedBuffer(Resource):
            def __init__(self, shape: Any, dtype: Any = np.float32) -> None:
                self.array = np.zeros(shape, dtype)
                self.shape, self.dtype, self.nbytes = self.array.shape, self.array.dtype, self.array.nbytes
                self.ptr = self.array.ctypes.data
                device.pinned[self.ptr] = self.array

            def close(self) -> None:
                device.pinned.pop(self.ptr, None)
                self.closed = True

        def page_locked(array: np.ndarray) -> Any:
            """Like the real one: a region when all of the C-contiguous array lies in one live PinnedBuffer."""
            from stargan_sdk.cuda import HostRegion

            start, nbytes = array.ctypes.data, array.nbytes
            if not array.flags.c_contiguous or nbytes == 0:
                return None
            inside = any(base <= start and start + nbytes <= base + buf.nbytes for base, buf in device.pinned.items())
            return HostRegion(start, nbytes) if inside else None

        class DeviceBuffer(Resource):
            def __init__(self, nbytes: int) -> None:
                self.buf = np.zeros(int(nbytes), np.uint8)
                self.nbytes, self.ptr = int(nbytes), self.buf.ctypes.data
                device.allocations[self.ptr] = self.buf

            def close(self) -> None:
                device.allocations.pop(self.ptr, None)
                self.closed = True

        class Stream(Resource):
            def __init__(self) -> None:
                self.handle = next(device.handles)

            def synchronize(self) -> None:
                pass

            def wait(self, event: Any) -> None:
                pass

        class Event(Resource):
            def __init__(self, timing: bool = True) -> None:
                pass

            def record(self, stream: Any) -> None:
                pass

            def synchronize(self) -> None:
                pass

        class CudaGraph(Resource):
            def __init__(self, work: list[Callable[[], None]]) -> None:
                self.work = work

            @classmethod
            def capture(cls, stream: Any, work: Callable[[], None]) -> CudaGraph:
                device.capturing = []
                try:
                    work()
                    return cls(device.capturing)
                finally:
                    device.capturing = None

            def launch(self, stream: Any) -> None:
                for job in self.work:
                    job()

        def copy(dst: Any, src: Any, nbytes: int, stream: Any) -> None:
            assert 0 < nbytes <= min(dst.nbytes, src.nbytes), (nbytes, dst.nbytes, src.nbytes)
            device.run(lambda: ctypes.memmove(dst.ptr, src.ptr, nbytes))

        return {
            "PinnedBuffer": PinnedBuffer, "DeviceBuffer": DeviceBuffer, "Stream": Stream, "Event": Event,
            "CudaGraph": CudaGraph, "memcpy_htod_async": copy, "memcpy_dtoh_async": copy,
            "page_locked": page_locked,
            "set_device": lambda index: None, "device_count": lambda: 1,
            "cuda_available": lambda: Availability(True, "1 simulated CUDA device"),
            "device_properties": lambda index=0: DeviceInfo(index, GPU_NAME, CAPABILITY, 80 << 30),
        }  # fmt: skip


class Simulation:
    def __init__(self, surface: dict[str, Any]) -> None:
        self.device = Device()
        self.fake = FakeTensorRT(surface, self._handlers())
        self.trt = self.fake.module
        self.version = self.fake.version
        self.plans: list[bytes] = []  # every plan built, as serialized

    def install(self, monkeypatch: Any) -> Simulation:
        """Make `import tensorrt` give the fake module and `stargan_sdk.cuda` the simulated device."""
        import sys

        from stargan_sdk import cuda

        monkeypatch.setitem(sys.modules, "tensorrt", self.trt)
        for name, value in self.device.cuda_namespace().items():
            monkeypatch.setattr(cuda, name, value)
        return self

    def assert_clean(self) -> None:
        """No call outside this release's API, no name it lacks, and no argument type left unjudged."""
        assert not (self.fake.problems or self.fake.missing or self.fake.unchecked), self.fake.report()

    # -- handlers ----------------------------------------------------------------------------------------------
    def _handlers(self) -> dict[str, Callable[..., Any]]:
        return {
            "nptype": lambda _, trt_type: {"FLOAT": np.float32, "HALF": np.float16, "UINT8": np.uint8}[trt_type.name],
            "Dims.__init__": lambda d, shape=(): d._fk_state.update(items=tuple(int(v) for v in shape)),
            "Builder.create_network": lambda b, flags=0: self.fake.make("INetworkDefinition", flags=int(flags)),
            "OnnxParser.__init__": lambda p, network, logger: p._fk_state.update(network=network, errors=[]),
            "OnnxParser.parse_from_file": self._parse,
            "OnnxParser.num_errors": lambda p: len(p._fk_state["errors"]),
            "OnnxParser.get_error": lambda p, index: self.fake.make("ParserError", error=p._fk_state["errors"][index]),
            "ParserError.node": lambda e: e._fk_state["error"][0],
            "ParserError.desc": lambda e: e._fk_state["error"][1],
            "IOptimizationProfile.set_shape": self._set_shape,
            "IBuilderConfig.add_optimization_profile": self._add_profile,
            "IBuilderConfig.create_timing_cache": lambda c, serialized_timing_cache: self.fake.make(
                "ITimingCache", bytes=b"simulated timing cache " + self.version.encode()),
            "ITimingCache.serialize": lambda t: self.fake.make("IHostMemory", bytes=t._fk_state["bytes"]),
            "Builder.build_serialized_network": self._build,
            "Runtime.deserialize_cuda_engine": self._deserialize,
            "ICudaEngine.num_io_tensors": lambda e: len(e._fk_state["tensors"]),
            "ICudaEngine.get_tensor_name": lambda e, index: list(e._fk_state["tensors"])[index],
            "ICudaEngine.get_tensor_mode": lambda e, name: self.fake.member(
                "TensorIOMode", "OUTPUT" if name in e._fk_state["outputs"] else "INPUT"),
            "ICudaEngine.get_tensor_shape": lambda e, name: self._dims_obj((-1, *e._fk_state["tensors"][name])),
            "ICudaEngine.get_tensor_dtype": lambda e, name: self.fake.member(
                "DataType", _DATA_TYPES[e._fk_state["dtypes"][name]]),
            "ICudaEngine.get_tensor_profile_shape": lambda e, name, profile_index: [
                self._dims_obj(d) for d in e._fk_state["profile"][name]],
            "ICudaEngine.create_execution_context": lambda e: self.fake.make(
                "IExecutionContext", engine=e, addresses={}, shapes={}),
            "IExecutionContext.set_tensor_address": self._set_address,
            "IExecutionContext.set_input_shape": self._set_input_shape,
            "IExecutionContext.execute_async_v3": self._execute,
        }  # fmt: skip

    def _dims_obj(self, dims: tuple[int, ...]) -> FakeObject:
        return self.fake.make("Dims", items=tuple(int(d) for d in dims))

    def _parse(self, parser: FakeObject, model: str) -> bool:
        import onnxruntime as ort

        data = Path(model).read_bytes()
        try:
            session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        except Exception as e:  # what TensorRT's parser would also reject: unknown ops, broken graphs
            parser._fk_state["errors"] = [(0, f"simulated parser: {str(e).splitlines()[0]}")]
            return False
        network = parser._fk_state["network"]._fk_state
        network["onnx"] = data
        network["inputs"] = {i.name for i in session.get_inputs()}
        return True

    def _set_shape(self, profile: FakeObject, input: str, min: Any, opt: Any, max: Any) -> None:
        profile._fk_state.setdefault("shapes", {})[input] = (_dims(min), _dims(opt), _dims(max))

    def _add_profile(self, config: FakeObject, profile: FakeObject) -> int:
        config._fk_state.setdefault("profiles", []).append(profile._fk_state.get("shapes", {}))
        return len(config._fk_state["profiles"]) - 1

    def _build(self, builder: FakeObject, network: FakeObject, config: FakeObject) -> FakeObject | None:
        profiles = config._fk_state.get("profiles", [])
        if "onnx" not in network._fk_state or len(profiles) != 1 or set(profiles[0]) != network._fk_state["inputs"]:
            return None  # TensorRT also fails the build (and logs why) without a parsed network and a profile
        header = json.dumps({"version": self.version, "flags": network._fk_state["flags"], "profile": profiles[0]})
        plan = MAGIC + header.encode() + b"\n" + network._fk_state["onnx"]
        self.plans.append(plan)
        return self.fake.make("IHostMemory", bytes=plan)

    def _deserialize(self, runtime: FakeObject, serialized_engine: Any) -> FakeObject | None:
        import onnxruntime as ort

        data = bytes(serialized_engine)
        if not data.startswith(MAGIC):
            return None
        header, _, onnx_bytes = data[len(MAGIC) :].partition(b"\n")
        meta = json.loads(header)
        if meta["version"] != self.version:
            return None  # a plan from another TensorRT release does not deserialize
        profile = {name: [tuple(d) for d in dims] for name, dims in meta["profile"].items()}
        session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        tensors = {name: dims[0][1:] for name, dims in profile.items()}  # inputs: the profile's row shape
        first = next(iter(tensors.values()))
        for out in session.get_outputs():  # static row dims from the graph; the generator's output is image-shaped
            rows = out.shape[1:]
            tensors[out.name] = tuple(rows) if all(isinstance(d, int) for d in rows) else first
        dtypes = {t.name: _ONNX_TYPES[t.type] for t in (*session.get_inputs(), *session.get_outputs())}
        outputs = [o.name for o in session.get_outputs()]
        return self.fake.make("ICudaEngine", profile=profile, tensors=tensors, dtypes=dtypes, outputs=outputs,
                              session=session)  # fmt: skip

    def _set_address(self, ctx: FakeObject, name: str, memory: int) -> bool:
        ctx._fk_state["addresses"][name] = int(memory)
        return True

    def _set_input_shape(self, ctx: FakeObject, name: str, shape: Any) -> bool:
        lo, _, hi = ctx._fk_state["engine"]._fk_state["profile"][name]
        shape = _dims(shape)
        if len(shape) != len(lo) or not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
            return False
        ctx._fk_state["shapes"][name] = shape
        return True

    def _execute(self, ctx: FakeObject, stream_handle: int) -> bool:
        state, engine = ctx._fk_state, ctx._fk_state["engine"]._fk_state
        inputs, outputs, dtypes = set(engine["profile"]), engine["outputs"], engine["dtypes"]
        if set(state["shapes"]) != inputs or set(state["addresses"]) != inputs | set(outputs):
            return False
        shapes, addresses = dict(state["shapes"]), dict(state["addresses"])
        session, device = engine["session"], self.device

        def work() -> None:
            feeds = {name: device.view(addresses[name], shapes[name], dtypes[name]).copy() for name in inputs}
            for name, out in zip(outputs, session.run(outputs, feeds)):
                device.view(addresses[name], out.shape, dtypes[name])[...] = out

        device.run(work)
        return True
