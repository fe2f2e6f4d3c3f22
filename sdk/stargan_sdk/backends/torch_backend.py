"""torch backend: the bundle's generator in eager PyTorch on the CPU or a CUDA GPU (the reference GPU path).

Usage: with TorchBackend(bundle, manifest, precision="fp16", cuda_graphs=True) as b: y = b.infer(feeds)["output"]

The weights come from `generator.safetensors` (never from a pickle) into the SDK's own copy of the official
architecture. On CUDA it mirrors the TensorRT path (`torch_cuda.CudaGraphRunner`: pinned staging, a private
stream, one CUDA graph per batch size). FP16 is mixed precision like `generator.fp16.onnx`: convolutions in
half, every InstanceNorm (statistics and affine parameters) in float32. torch is imported lazily:
constructing the backend or asking its availability never imports it.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

import numpy as np

from stargan_sdk.backends.base import Backend, Plan
from stargan_sdk.bundle.constants import INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE, WEIGHTS_KIND
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.errors import BackendUnavailableError
from stargan_sdk.host.hostmem import check_image_range, value_range

DEFAULT_CUDA_MAX_BATCH = 64  # the export's default optimisation profile; buffers are sized for it


def torch_plan(bundle: Bundle) -> Plan:
    """Shared by the torch-based backends: torch and safetensors installed, weights in the bundle."""
    missing = [m for m in ("torch", "safetensors") if importlib.util.find_spec(m) is None]
    if missing:
        raise BackendUnavailableError(f"{' and '.join(missing)} not installed (pip install 'stargan[torch]')")
    art = bundle.artifact(role="generator", kind=WEIGHTS_KIND)
    if art is None:
        raise BackendUnavailableError(
            "the bundle has no generator.safetensors (re-export it with stargan-export build)"
        )
    return Plan(f"{art.file} (CPU, or CUDA when torch sees a GPU)", art)


def want_cuda(torch: Any, kind: str) -> bool:
    """Whether to run on CUDA for device_type `kind` ("auto" | "cpu" | "cuda")."""
    if kind not in ("auto", "cpu", "cuda"):
        raise BackendUnavailableError(f"device_type must be auto, cpu or cuda, got {kind!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError("torch sees no CUDA GPU (a CPU-only torch build, or no driver)")
    return kind != "cpu" and torch.cuda.is_available()


def open_generator(bundle: Bundle, options: dict[str, Any], name: str) -> tuple[Any, Any, bool, str]:
    """What both torch-based backends start from (after `torch_plan` passed): torch, the bundle's float32
    generator on the CPU, whether to run on CUDA, and the precision ("fp16" default on CUDA, "fp32")."""
    import torch

    from stargan_sdk.backends.torch_generator import load_generator

    use_cuda = want_cuda(torch, options.get("device_type", "auto"))
    precision = options.get("precision", "fp16" if use_cuda else "fp32")
    if precision not in ("fp32", "fp16") or (precision == "fp16" and not use_cuda):
        raise BackendUnavailableError(f"{name} precision {precision!r} is not available here (fp16 needs CUDA)")
    return torch, load_generator(bundle), use_cuda, precision


def to_precision(torch: Any, module: Any, fp16: bool) -> Any:
    """Convolutions in half when `fp16`; InstanceNorm parameters stay float32 either way."""
    from stargan_sdk.backends.torch_generator import InstanceNorm32

    if fp16:
        module = module.half()
        for m in module.modules():
            if isinstance(m, InstanceNorm32):
                m.float()
    return module


class TorchBackend(Backend):
    """Runs the generator eagerly with PyTorch.

    Args:
        bundle: the opened Bundle (or its folder, with or without its manifest).
        device: CUDA device ordinal.
        max_batch: largest batch per call (CUDA default 64; CPU: any).
        options: `device_type` ("auto" | "cpu" | "cuda"), `precision` ("fp16" default on CUDA, "fp32"),
            `cuda_graphs` (default True), `cudnn_benchmark` (default True), `channels_last` (default False:
            NHWC weights on CUDA). Both cuDNN switches are process-wide: benchmark mode is turned on, and
            TF32 off when precision is "fp32".
    """

    name = "torch"
    accepted_options = ("device_type", "precision", "cudnn_benchmark", "channels_last")
    thread_safe = True  # one lock around the shared staging buffers and graphs
    checks_input_range = True  # CUDA: inside the captured graph; CPU: one host scan here
    times_transfers = True  # on CUDA (`timed_infer`)
    _runner: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()

    @classmethod
    def check_impl(cls, bundle: Bundle, device: int, options: dict[str, Any]) -> Plan:
        return torch_plan(bundle)

    def load_impl(self, plan: Plan) -> None:
        torch, module, use_cuda, precision = open_generator(self.bundle, self.options, "torch backend")
        self.uint8_on_device = use_cuda  # on the CPU the host normalises once, as for every CPU backend
        self._torch, self._precision = torch, precision
        if use_cuda:
            self._load_cuda(torch, module, precision == "fp16")
        else:
            self._module, self._runner = module, None

    def _load_cuda(self, torch: Any, module: Any, fp16: bool) -> None:
        from stargan_sdk.backends.torch_cuda import CudaGraphRunner

        device = torch.device("cuda", self.device)
        torch.backends.cudnn.benchmark = bool(self.options.get("cudnn_benchmark", True))
        if not fp16:  # "fp32" means FP32: cuDNN would otherwise run convolutions in TF32 on Ampere and later
            torch.backends.cudnn.allow_tf32 = False
        module = to_precision(torch, module.to(device), fp16)
        if self.options.get("channels_last", False):
            # NHWC weights steer cuDNN to its tensor-core NHWC kernels; activations follow the weights.
            module = module.to(memory_format=torch.channels_last)
        self.max_batch = self.max_batch or DEFAULT_CUDA_MAX_BATCH
        size = self.manifest.image_size
        self._module = module
        self._runner = CudaGraphRunner(
            torch,
            module,
            device,
            self.max_batch,
            (3, size, size),
            self.manifest.c_dim,
            bool(self.options.get("cuda_graphs", True)),
        )

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        image, label = feeds[INPUT_IMAGE], feeds[INPUT_LABEL]
        with self._lock:
            self._require_loaded()  # close() may have run while this call waited for the lock
            torch = self._torch
            if self._runner is not None:
                with torch.no_grad():  # not inference_mode: the static buffers outlive this call
                    (out,), ((low, high),) = self._runner.run([(image, label)])
                check_image_range(low, high)
                return {OUTPUT_IMAGE: out}
            check_image_range(*value_range(image))
            with torch.inference_mode():
                x, c = (torch.from_numpy(np.ascontiguousarray(a)) for a in (image, label))
                out = self._module(x, c)
            return {OUTPUT_IMAGE: out.numpy()}

    def infer_uint8(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """uint8 in and out, normalised on the generator's device (`torch_uint8`); eager, outside the CUDA graphs."""
        from stargan_sdk.backends.torch_uint8 import run_uint8
        from stargan_sdk.images.imaging import Normalizer

        self._require_loaded()
        with self._lock:
            self._require_loaded()
            torch = self._torch
            device = torch.device("cuda", self.device) if self._runner is not None else torch.device("cpu")
            norm = Normalizer.of_manifest(self.manifest)
            return run_uint8(torch, self._module, images, labels, norm, device)

    def timed_infer(self, feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """`infer` plus the H2D / compute / D2H split measured with CUDA events (CUDA only; benchmarks)."""
        self._require_loaded()
        self.check_feeds(feeds)
        if self._runner is None:
            raise BackendUnavailableError("timed_infer splits GPU transfers from compute; this backend runs on the CPU")
        timings: dict[str, float] = {}
        with self._lock, self._torch.no_grad():
            (out,), ((low, high),) = self._runner.run([(feeds[INPUT_IMAGE], feeds[INPUT_LABEL])], timings)
        check_image_range(low, high)
        return {OUTPUT_IMAGE: out}, timings

    def close_impl(self) -> None:
        with self._lock:  # wait for a running call instead of pulling its buffers away
            self._module = self._runner = None
            self.loaded = False  # inside the lock: a call waiting for it sees the backend closed

    def graph_batches(self) -> list[int]:
        runner = self._runner if self.loaded else None
        return sorted(runner.graphs) if runner is not None else []

    def device_classifier(self) -> Any | None:
        from stargan_sdk.backends.classifier_torch import TorchClassifier

        if not self.loaded or self._runner is None:
            return None
        device = self._torch.device("cuda", self.device)
        return TorchClassifier.from_bundle(self.bundle, self._torch, device, lock=self._lock)  # one GPU user at a time

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"backend": self.name}
        if self.loaded:
            runner = self._runner
            info.update(device="cpu" if runner is None else f"cuda:{self.device}", precision=self._precision)
            if runner is not None:
                info.update(
                    cuda_graphs=runner.graphs_enabled,
                    graph_batch_sizes=sorted(runner.graphs),
                    graph_error=runner.graph_error,
                    max_batch=self.max_batch,
                    channels_last=bool(self.options.get("channels_last", False)),
                )
        return info
