"""torch backend: runs the bundle's `generator.pt2` (torch.export program) on the CPU or a CUDA GPU.

Usage: with TorchBackend(bundle, manifest, precision="fp16", cuda_graphs=True) as b: y = b.infer(feeds)["output"]

On CUDA it mirrors the TensorRT path: pinned host staging buffers and device buffers allocated once for
`max_batch`, async copies on a private stream, and one CUDA graph per batch size (captured after a warm-up
run; eager execution if capture fails). FP16 is mixed precision like `generator.fp16.onnx`: convolution
weights are stored in half and run under autocast, while every InstanceNorm gets its input cast back to
float32 (FP16 variance overflows), so norms and their affine parameters stay FP32. Plain autocast alone
would run the norms on half inputs; converting the whole module to half would too. torch is imported
lazily: constructing the backend or asking its availability never imports it.
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np

from stargan_sdk.backends.base import Availability, Backend
from stargan_sdk.constants import INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
from stargan_sdk.errors import BackendUnavailableError, BundleError
from stargan_sdk.manifest import Manifest, verify_artifact

DEFAULT_CUDA_MAX_BATCH = 64  # the export's default optimisation profile; buffers are sized for it
_CONV_OPS = ("conv2d.default", "conv_transpose2d.input", "convolution.default")
_NORM_OPS = ("instance_norm.default", "batch_norm.default", "_native_batch_norm_legit.no_stats", "native_batch_norm.default")


def _aten_ops(torch: Any, names: tuple[str, ...]) -> set[Any]:
    ops = set()
    for name in names:
        packet, _, overload = name.partition(".")
        op = getattr(getattr(torch.ops.aten, packet, None), overload, None)
        if op is not None:
            ops.add(op)
    return ops


def to_mixed_fp16(torch: Any, gm: Any) -> tuple[int, int]:
    """Halve conv weights and make every norm take float32 input, in place. Returns (weights, norms)."""
    convs, norms = _aten_ops(torch, _CONV_OPS), _aten_ops(torch, _NORM_OPS)
    halved, cast = 0, 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function":
            continue
        if node.target in convs and getattr(node.args[1], "op", None) == "get_attr":
            param = reduce(getattr, node.args[1].target.split("."), gm)
            param.data = param.data.half()
            halved += 1
        elif node.target in norms:
            x = node.args[0]
            with gm.graph.inserting_before(node):
                up = gm.graph.call_function(torch.ops.aten.to.dtype, (x, torch.float32))
            node.replace_input_with(x, up)
            cast += 1
    gm.recompile()
    return halved, cast


def _program_on(torch: Any, program: Any, device: Any) -> Any:
    """The program moved to `device`. Exported graphs carry device-specific checks
    (`_assert_tensor_metadata(..., device=cpu)`), so `module().to("cuda")` alone fails at the first call."""
    from torch.export.passes import move_to_device_pass

    return move_to_device_pass(program, str(device))


def _program_input_shapes(program: Any) -> dict[str, tuple[Any, ...]]:
    """Declared shapes of the program's user inputs (image, label by position); symbolic dims as "N"."""
    user = list(program.graph_signature.user_inputs)
    nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    shapes = []
    for name in user:
        val = nodes[name].meta.get("val")
        shapes.append(tuple(d if isinstance(d, int) else "N" for d in getattr(val, "shape", ())))
    return dict(zip((INPUT_IMAGE, INPUT_LABEL), shapes))


class _CudaRunner:
    """Staging buffers, a private stream and per-batch-size CUDA graphs around one module."""

    def __init__(self, torch: Any, module: Any, device: Any, max_batch: int, image: tuple[int, ...], c_dim: int,
                 fp16: bool, graphs: bool) -> None:
        self.torch, self.module, self.device, self.fp16 = torch, module, device, fp16
        self.graphs_enabled, self.graph_error = graphs, ""
        self.stream = torch.cuda.Stream(device)
        pinned = dict(dtype=torch.float32, pin_memory=True)
        self.host_img = torch.empty((max_batch, *image), **pinned)
        self.host_lbl = torch.empty((max_batch, c_dim), **pinned)
        self.host_out = torch.empty((max_batch, *image), **pinned)
        self.dev_img = torch.empty((max_batch, *image), dtype=torch.float32, device=device)
        self.dev_lbl = torch.empty((max_batch, c_dim), dtype=torch.float32, device=device)
        self.graphs: dict[int, tuple[Any, Any]] = {}
        self.pool = torch.cuda.graph_pool_handle()  # graphs replay one at a time, so they can share memory

    def forward(self, x: Any, c: Any) -> Any:
        with self.torch.autocast("cuda", dtype=self.torch.float16, enabled=self.fp16, cache_enabled=False):
            return self.module(x, c)

    def _capture(self, n: int) -> tuple[Any, Any] | None:
        torch = self.torch
        x, c = self.dev_img[:n], self.dev_lbl[:n]
        try:
            with torch.cuda.stream(self.stream):
                self.forward(x, c)  # warm-up: cuDNN algorithm choice and lazy init must not happen in capture
            self.stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool, stream=self.stream):
                out = self.forward(x, c)
            return graph, out
        except Exception as e:  # capture is an optimisation: any failure means eager from now on
            torch.cuda.synchronize(self.device)
            self.graphs_enabled, self.graph_error = False, f"{type(e).__name__}: {e}"
            warnings.warn(f"CUDA graph capture failed, running eagerly: {self.graph_error}", RuntimeWarning, stacklevel=3)
            return None

    def run(self, image: np.ndarray, label: np.ndarray, timings: dict[str, float] | None = None) -> np.ndarray:
        """One batch; with `timings`, CUDA events split it into h2d_ms / compute_ms / d2h_ms."""
        torch, n = self.torch, image.shape[0]
        self.host_img[:n].numpy()[...] = image  # the one host copy, straight into pinned memory
        self.host_lbl[:n].numpy()[...] = label
        if self.graphs_enabled and n not in self.graphs:
            captured = self._capture(n)
            if captured is not None:
                self.graphs[n] = captured
        events = [torch.cuda.Event(enable_timing=True) for _ in range(4)] if timings is not None else None
        with torch.cuda.stream(self.stream):
            self._mark(events, 0)
            self.dev_img[:n].copy_(self.host_img[:n], non_blocking=True)
            self.dev_lbl[:n].copy_(self.host_lbl[:n], non_blocking=True)
            self._mark(events, 1)
            if n in self.graphs:
                graph, out = self.graphs[n]
                graph.replay()
            else:
                out = self.forward(self.dev_img[:n], self.dev_lbl[:n])
            self._mark(events, 2)
            self.host_out[:n].copy_(out, non_blocking=True)
            self._mark(events, 3)
        self.stream.synchronize()
        if events is not None and timings is not None:
            for i, key in enumerate(("h2d_ms", "compute_ms", "d2h_ms")):
                timings[key] = events[i].elapsed_time(events[i + 1])
        return self.host_out[:n].numpy().copy()  # the pinned buffer is reused by the next call

    def _mark(self, events: list[Any] | None, i: int) -> None:
        if events is not None:
            events[i].record(self.stream)


class TorchBackend(Backend):
    """Runs `generator.pt2` with PyTorch.

    Args:
        bundle_dir: the bundle folder.
        manifest: its parsed manifest.
        device: CUDA device ordinal.
        max_batch: largest batch per call (CUDA default 64; CPU: any).
        options: `device_type` ("auto" | "cpu" | "cuda"), `precision` ("fp16" default on CUDA, "fp32"),
            `cuda_graphs` (default True), `cudnn_benchmark` (default True), `channels_last` (default False:
            NHWC weights on CUDA). Both cuDNN switches are
            process-wide: benchmark mode is turned on, and TF32 off when precision is "fp32".
    """

    name = "torch"
    accepted_options = ("device_type", "precision", "cudnn_benchmark", "channels_last")
    thread_safe = True  # one lock around the shared staging buffers and graphs

    @classmethod
    def availability(cls, bundle_dir: str | Path, manifest: Manifest, device: int = 0) -> Availability:
        if importlib.util.find_spec("torch") is None:
            return Availability(False, "torch is not installed (pip install 'stargan[torch]')")
        art = manifest.artifact(role="generator", kind="torch_export")
        if art is None:
            return Availability(False, "the bundle has no torch.export program (generator.pt2)")
        return Availability(True, f"{art.file} (CPU, or CUDA when torch sees a GPU)")

    def load(self) -> None:
        if self.loaded:
            return
        art = self.manifest.artifact(role="generator", kind="torch_export")
        if art is None or importlib.util.find_spec("torch") is None:
            raise BackendUnavailableError(self.availability(self.bundle_dir, self.manifest).reason)
        import torch

        path = verify_artifact(self.bundle_dir, art)
        use_cuda = self._want_cuda(torch)
        precision = self.options.get("precision", "fp16" if use_cuda else "fp32")
        if precision not in ("fp32", "fp16") or (precision == "fp16" and not use_cuda):
            raise BackendUnavailableError(f"torch backend precision {precision!r} is not available here (fp16 needs CUDA)")
        try:
            program = torch.export.load(str(path))
        except Exception as e:  # a corrupt or incompatible archive surfaces as many different types
            raise BundleError(f"torch could not load {art.file}: {e}") from None
        self._shapes = _program_input_shapes(program)
        module = (_program_on(torch, program, torch.device("cuda", self.device)) if use_cuda else program).module()
        self._fp16_stats = (0, 0)
        self._lock = threading.Lock()
        self._torch, self._precision = torch, precision
        if use_cuda:
            self._load_cuda(torch, module, precision == "fp16")
        else:
            self._module, self._runner = module, None
        self.loaded = True

    def _want_cuda(self, torch: Any) -> bool:
        kind = self.options.get("device_type", "auto")
        if kind not in ("auto", "cpu", "cuda"):
            raise BackendUnavailableError(f"device_type must be auto, cpu or cuda, got {kind!r}")
        if kind == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError("torch sees no CUDA GPU (a CPU-only torch build, or no driver)")
        return kind != "cpu" and torch.cuda.is_available()

    def _load_cuda(self, torch: Any, module: Any, fp16: bool) -> None:
        device = torch.device("cuda", self.device)
        torch.backends.cudnn.benchmark = bool(self.options.get("cudnn_benchmark", True))
        if not fp16:  # "fp32" means FP32: cuDNN would otherwise run convolutions in TF32 on Ampere and later
            torch.backends.cudnn.allow_tf32 = False
        module = module.to(device)
        if fp16:
            self._fp16_stats = to_mixed_fp16(torch, module)
        if self.options.get("channels_last", False):
            # NHWC weights steer cuDNN to its tensor-core NHWC kernels; activations follow the weights.
            module = module.to(memory_format=torch.channels_last)
        self.max_batch = self.max_batch or DEFAULT_CUDA_MAX_BATCH
        size = self.manifest.image_size
        self._module = module
        self._runner = _CudaRunner(torch, module, device, self.max_batch, (3, size, size), self.manifest.c_dim, fp16,
                                   bool(self.options.get("cuda_graphs", True)))

    def input_shapes(self) -> dict[str, tuple[Any, ...]]:
        self._require_loaded()
        return dict(self._shapes)

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._require_loaded()
        image, label = feeds[INPUT_IMAGE], feeds[INPUT_LABEL]
        with self._lock:
            torch = self._torch
            if self._runner is not None:
                with torch.no_grad():  # not inference_mode: the static buffers outlive this call
                    return {OUTPUT_IMAGE: self._runner.run(image, label)}
            with torch.inference_mode():
                x, c = (torch.from_numpy(np.ascontiguousarray(a)) for a in (image, label))
                out = self._module(x, c)
            return {OUTPUT_IMAGE: out.numpy()}

    def timed_infer(self, feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """`infer` plus the H2D / compute / D2H split measured with CUDA events (CUDA only; benchmarks)."""
        self._require_loaded()
        if self._runner is None:
            raise BackendUnavailableError("timed_infer splits GPU transfers from compute; this backend runs on the CPU")
        timings: dict[str, float] = {}
        with self._lock, self._torch.no_grad():
            out = self._runner.run(feeds[INPUT_IMAGE], feeds[INPUT_LABEL], timings)
        return {OUTPUT_IMAGE: out}, timings

    def close(self) -> None:
        if self.loaded:
            self._module = self._runner = None
            self.loaded = False

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"backend": self.name}
        if self.loaded:
            runner = self._runner
            info.update(device="cpu" if runner is None else f"cuda:{self.device}", precision=self._precision)
            if runner is not None:
                info.update(cuda_graphs=runner.graphs_enabled, graph_batch_sizes=sorted(runner.graphs),
                            graph_error=runner.graph_error, fp16_conv_weights=self._fp16_stats[0],
                            fp32_norms=self._fp16_stats[1], max_batch=self.max_batch,
                            channels_last=bool(self.options.get("channels_last", False)))
        return info
