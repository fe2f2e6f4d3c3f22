"""The bundle's classifier as a TensorRT engine beside the generator's: uint8 crops in, logits out, on the GPU.

Usage: clf = TrtClassifier(trt, (pre_plan, classifier_plan), image_size=128, width=5, batches=(1, 64), device=0)
       logits = clf.logits_uint8(crops)  # or clf.logits(x) for normalised float32 NCHW; clf.close()

`preprocess.plan` (the uint8 boundary's, `tensorrt_uint8`) writes the float input of `classifier.plan` in device
memory, so only uint8 goes up and [N, k] logits come down. Its own runtime, contexts, buffers and stream: the
Translator may ask for an estimate from any thread while the generator's engine runs. Only calls the generator's
runner already makes are used (`trt_api` tests).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from stargan_sdk import cuda
from stargan_sdk.backends.tensorrt_engine import _logger, _quietly
from stargan_sdk.backends.tensorrt_uint8 import _Converter
from stargan_sdk.bundle.constants import (
    CLASSIFIER_INPUT,
    CLASSIFIER_OUTPUT,
    CLASSIFIER_PLAN,
    INPUT_IMAGE,
    PIXELS,
    PREPROCESS_PLAN,
)
from stargan_sdk.errors import BundleError, ImageInputError


class TrtClassifier:
    """preprocess.plan → classifier.plan on one stream, with pinned and device buffers for the profile's max batch.

    Args:
        trt: the imported tensorrt module.
        plans: (preprocess plan bytes, classifier plan bytes).
        image_size: the crops' side; width: logits per image.
        batches: the engines' profile (min, max): smaller calls are padded, larger ones split.
        device: CUDA device ordinal.
    """

    uint8_on_device = True  # `logits_uint8` normalises on the GPU: the Translator hands it uint8 crops

    def __init__(
        self,
        trt: Any,
        plans: tuple[bytes, bytes],
        *,
        image_size: int,
        width: int,
        batches: tuple[int, int],
        device: int,
    ) -> None:
        self.device, (self.min_batch, self.max_batch), self.width = device, batches, width
        self._lock = threading.Lock()
        self._resources: list[Any] = []
        cuda.set_device(device)
        self._runtime = trt.Runtime(_logger(trt))
        try:
            self._pre = _Converter(trt, self._runtime, plans[0], PREPROCESS_PLAN, (PIXELS, INPUT_IMAGE))
            self._clf = _Converter(trt, self._runtime, plans[1], CLASSIFIER_PLAN, (CLASSIFIER_INPUT, CLASSIFIER_OUTPUT))
            s, n = image_size, self.max_batch
            out = tuple(int(d) for d in self._clf.engine.get_tensor_shape(CLASSIFIER_OUTPUT))[1:]
            if (self._pre.row, self._clf.row, out) != ((s, s, 3), (3, s, s), (width,)):
                raise BundleError(  # the buffers below are sized from the manifest: the plans must agree with it
                    f"{PREPROCESS_PLAN} takes {self._pre.row} and {CLASSIFIER_PLAN} {self._clf.row} -> {out}; the "
                    f"manifest says ({s}, {s}, 3), (3, {s}, {s}) -> ({width},): re-export the bundle"
                )
            self._host = {
                "u8": self._keep(cuda.PinnedBuffer((n, s, s, 3), np.uint8)),
                "x": self._keep(cuda.PinnedBuffer((n, 3, s, s), np.float32)),
                "logits": self._keep(cuda.PinnedBuffer((n, width), np.float32)),
            }
            self._dev = {k: self._keep(cuda.DeviceBuffer(v.nbytes)) for k, v in self._host.items()}
            self._stream = self._keep(cuda.Stream())
        except BaseException:
            self.close()
            raise

    def _keep(self, resource: Any) -> Any:
        self._resources.append(resource)
        return resource

    def logits_uint8(self, images: np.ndarray) -> np.ndarray:
        """float32 [N, k] logits for uint8 [N, S, S, 3] RGB crops (normalised on the GPU by preprocess.plan)."""
        return self._chunks(images, "u8")

    def logits(self, images: np.ndarray) -> np.ndarray:
        """float32 [N, k] logits for normalised float32 [N, 3, S, S] images (as ONNX Runtime's `logits`)."""
        return self._chunks(np.asarray(images, np.float32), "x")

    def _chunks(self, images: np.ndarray, kind: str) -> np.ndarray:
        buffer = self._host[kind].array
        if images.ndim != 4 or images.shape[1:] != buffer.shape[1:] or images.dtype != buffer.dtype:
            want = f"{buffer.dtype}[N, {', '.join(map(str, buffer.shape[1:]))}]"
            raise ImageInputError(f"the classifier takes {want}, got {images.dtype}{list(images.shape)}")
        step = self.max_batch
        parts = [self._run(images[i : i + step], kind) for i in range(0, len(images), step)]
        return np.concatenate(parts) if parts else np.zeros((0, self.width), np.float32)

    def _run(self, batch: np.ndarray, kind: str) -> np.ndarray:
        n = len(batch)
        m = max(n, self.min_batch)  # rows past n are zeros: each image's logits depend on that image alone
        with self._lock:
            cuda.set_device(self.device)  # per thread: the caller may be any thread
            host, dev, stream = self._host, self._dev, self._stream
            np.copyto(host[kind].array[:n], batch, casting="same_kind")
            host[kind].array[n:m] = 0
            cuda.memcpy_htod_async(dev[kind], host[kind], host[kind].array[:m].nbytes, stream)
            if kind == "u8":
                self._pre.enqueue(m, dev["u8"].ptr, dev["x"].ptr, stream)
            self._clf.enqueue(m, dev["x"].ptr, dev["logits"].ptr, stream)
            cuda.memcpy_dtoh_async(host["logits"], dev["logits"], host["logits"].array[:m].nbytes, stream)
            stream.synchronize()
            return host["logits"].array[:n].copy()

    def describe(self) -> str:
        return f"tensorrt on cuda:{self.device}"

    def close(self) -> None:
        """Wait for a running call, then free everything; a CUDA error on one resource does not keep the rest."""
        with self._lock:
            stream = getattr(self, "_stream", None)
            if stream is not None and stream in self._resources:
                _quietly(stream.synchronize)
            for resource in reversed(self._resources):
                _quietly(resource.close)
            self._resources = []
            self._pre = self._clf = self._runtime = None  # contexts and engines before the runtime
