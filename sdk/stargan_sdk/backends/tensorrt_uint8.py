"""uint8 at a TensorRT engine's boundary: two tiny plans chained around the generator's on its stream.

Usage: boundary = Uint8Boundary(trt, runtime, (pre_plan, post_plan), image_size=128, max_batch=64)
       sources = boundary.stage(n, pixels); boundary.upload(n, sources, stream)
       boundary.normalise(n, image_ptr, stream); ...generator...; boundary.denormalise(n, output_ptr, stream)
       boundary.download(n, stream); stream.synchronize(); out = boundary.result(n)

`preprocess.plan` turns uint8 NHWC crops into the generator's float32 NCHW input and `postprocess.plan` its output
back into uint8 NHWC, in device memory between them (`stargan_export.uint8_graphs`: the host Normalizer's
arithmetic as graph ops). So 4x less crosses PCIe each way and the float plan's I/O contract stays as it is.
TensorRT itself runs the conversion (no extra kernel compiler or CUDA library in the SDK), and the whole chain is
captured in one CUDA graph per batch size by the caller. Only calls the generator's runner already makes are used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stargan_sdk import cuda
from stargan_sdk.bundle.constants import INPUT_IMAGE, OUTPUT_IMAGE, PIXELS
from stargan_sdk.errors import BundleError, EngineMismatchError, ImageInputError, StarGANError


class _Converter:
    """One tiny plan with one input and one output, bound to caller-owned device buffers at each enqueue."""

    def __init__(self, trt: Any, runtime: Any, plan: bytes, source: str, tensors: tuple[str, str]) -> None:
        self.source, (self.input, self.output) = source, tensors
        self.engine = runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise EngineMismatchError(f"TensorRT {trt.__version__} could not deserialize {source}; rebuild the bundle")
        eng = self.engine
        names = {eng.get_tensor_name(i): eng.get_tensor_mode(eng.get_tensor_name(i)) for i in range(eng.num_io_tensors)}
        if names != {self.input: trt.TensorIOMode.INPUT, self.output: trt.TensorIOMode.OUTPUT}:
            raise BundleError(f"{source} has tensors {sorted(names)}, expected {self.input!r} -> {self.output!r}")
        self.row = tuple(int(d) for d in eng.get_tensor_shape(self.input))[1:]
        self.context = eng.create_execution_context()
        if self.context is None:
            raise StarGANError(f"TensorRT could not create an execution context for {source} (out of GPU memory?)")

    def enqueue(self, n: int, src: int, dst: int, stream: Any) -> None:
        ctx = self.context
        if not (ctx.set_input_shape(self.input, (n, *self.row)) and ctx.set_tensor_address(self.input, src)):
            raise StarGANError(f"TensorRT refused batch {n} or the input address of {self.source}")
        if not ctx.set_tensor_address(self.output, dst):
            raise StarGANError(f"TensorRT refused the output address of {self.source}")
        if not ctx.execute_async_v3(stream.handle):
            raise StarGANError(f"TensorRT execute_async_v3 failed for {self.source} (see the TensorRT log above)")


class Uint8Boundary:
    """The two converters plus pinned and device uint8 buffers for `max_batch` crops each way.

    Args:
        trt: the imported tensorrt module; runtime: the generator's trt.Runtime.
        plans: (preprocess plan bytes, postprocess plan bytes).
        image_size: the crops' side; max_batch: the generator runner's max batch.
    """

    def __init__(self, trt: Any, runtime: Any, plans: tuple[bytes, bytes], *, image_size: int, max_batch: int) -> None:
        self.pre = _Converter(trt, runtime, plans[0], "preprocess.plan", (PIXELS, INPUT_IMAGE))
        self.post = _Converter(trt, runtime, plans[1], "postprocess.plan", (OUTPUT_IMAGE, PIXELS))
        self.shape = (max_batch, image_size, image_size, 3)
        self.row_bytes = image_size * image_size * 3
        self._buffers: list[Any] = []
        try:
            self.host_in, self.host_out = (
                cuda.PinnedBuffer(self.shape, np.uint8),
                cuda.PinnedBuffer(self.shape, np.uint8),
            )
            self._buffers += [self.host_in, self.host_out]
            self.dev_in, self.dev_out = cuda.DeviceBuffer(self.host_in.nbytes), cuda.DeviceBuffer(self.host_out.nbytes)
            self._buffers += [self.dev_in, self.dev_out]
        except BaseException:
            self.close()
            raise

    def _keep(self, buffer: Any) -> Any:
        self._buffers.append(buffer)
        return buffer

    def stage(self, n: int, pixels: np.ndarray) -> Any:
        """Where the crops are uploaded from: in place when they already lie in page-locked memory."""
        if pixels.dtype != np.uint8 or pixels.shape != (n, *self.shape[1:]):
            got = f"{pixels.dtype}{list(pixels.shape)}"
            raise ImageInputError(f"uint8 crops must be uint8 {[n, *self.shape[1:]]}, got {got}")
        region = cuda.page_locked(pixels)
        if region is None:
            np.copyto(self.host_in.array[:n], pixels)
        return self.host_in if region is None else region

    def upload(self, n: int, source: Any, stream: Any) -> None:
        cuda.memcpy_htod_async(self.dev_in, source, self.row_bytes * n, stream)

    def normalise(self, n: int, image_ptr: int, stream: Any) -> None:
        self.pre.enqueue(n, self.dev_in.ptr, image_ptr, stream)

    def denormalise(self, n: int, output_ptr: int, stream: Any) -> None:
        self.post.enqueue(n, output_ptr, self.dev_out.ptr, stream)

    def download(self, n: int, stream: Any) -> None:
        cuda.memcpy_dtoh_async(self.host_out, self.dev_out, self.row_bytes * n, stream)

    def result(self, n: int) -> np.ndarray:
        return self.host_out.array[:n].copy()

    def close(self) -> None:
        for buf in self._buffers:
            buf.close()
        self._buffers = []
        self.pre = self.post = None  # type: ignore[assignment]  # contexts before the engines, engines before the runtime
