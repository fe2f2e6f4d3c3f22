"""inductor backend: the generator compiled by TorchInductor for static batch sizes, replayed as CUDA graphs.

Usage: with InductorBackend(bundle, manifest, batch_sizes=(1, 8, 64)) as b: y = b.infer(feeds)["output"]

The GPU engine we can build and measure without TensorRT. On CUDA: FP16 convolutions with float32
InstanceNorm statistics (fused by Inductor into its norm kernels), channels_last, one compiled graph per
batch size (a symbolic batch keeps convolutions NCHW, pytorch#102670) captured as a CUDA graph, pinned
staging on a private stream. Batches are covered by the compiled sizes (padded up, or split). On the CPU it
compiles FP32 (what the CPU tests use). Every compiled size is checked against the FP32 eager model when
the backend loads and a miss refuses the backend (Inductor miscompiles have been reported, e.g.
pytorch#183601), so `auto` falls through to the next one. Inductor's on-disk caches live in `cache_dir`
(default $STARGAN_CACHE_DIR or ~/.cache/stargan/inductor), so a second process skips code generation.

uint8 at the boundary (`uint8_graphs`, default on CUDA): a second graph per size takes uint8 NHWC crops and
returns uint8 NHWC (`torch_uint8.uint8_forward` compiled whole, so the cast and scale fuse into the kernels
around the generator), captured with its own uint8 buffers; 4x less to copy each way. It doubles compile
time per size, and is checked like the float graphs; a miss (or a failed compile) keeps the float path,
with the reason in `describe()`. On the CPU the host normalises unless `uint8_graphs=True` asks for it.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from stargan_sdk.backends.base import Backend, Plan
from stargan_sdk.backends.compiled_sizes import cover, joined
from stargan_sdk.backends.torch_backend import open_generator, to_precision, torch_plan
from stargan_sdk.bundle.constants import INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.bundle.tolerances import TOLERANCES, psnr_db
from stargan_sdk.errors import BackendUnavailableError
from stargan_sdk.host.hostmem import check_image_range, value_range

CUDA_BATCH_SIZES = (1, 8, 64, 256)
# Off by default: measured on an H200, chunks of 32 made batch 64 slower (9.0 vs 6.5 ms) and batch 256 too (40.8
# vs 21.3 ms) than one launch; kept as an option for hosts where the copy, not the GPU, dominates.
PIPELINE_CHUNK = 0
CPU_BATCH_SIZES = (1, 8)
MODES = ("default", "max-autotune-no-cudagraphs")  # CUDA graphs are ours, so Inductor's own are never asked for


def default_cache_dir() -> Path:
    base = os.environ.get("STARGAN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "stargan"
    )
    return Path(base) / "inductor"


def parity_inputs(n: int, size: int, c_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Two image-like inputs with different labels, repeated to `n` (per-instance norms: rows are independent)."""
    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = np.stack([np.sin(7 * xx + 1), np.cos(5 * yy), np.sin(3 * (xx - yy))])
    images = np.clip(base[None] * 0.8 + 0.15 * rng.standard_normal((2, 3, size, size)), -1, 1).astype(np.float32)
    labels = np.stack([np.arange(c_dim) % 2, 1 - np.arange(c_dim) % 2]).astype(np.float32)
    idx = np.arange(n) % 2
    return images[idx], labels[idx]


class InductorBackend(Backend):
    """Runs the generator compiled with TorchInductor.

    Args:
        bundle: the opened Bundle (or its folder, with or without its manifest).
        device: CUDA device ordinal.
        max_batch: ignored beyond validation; the largest compiled size is the backend's max batch.
        options: `batch_sizes` (compiled static sizes; CUDA default 1, 8, 64, 256; CPU 1, 8), `precision`
            ("fp16" default on CUDA, "fp32"), `channels_last` (CUDA default True), `cuda_graphs` (default True),
            `mode` ("default" or "max-autotune-no-cudagraphs"), `cache_dir` (Inductor's caches; process-wide),
            `cudnn_benchmark` (default True; process-wide), `pipeline_chunk` (CUDA: batches of at least twice
            this size run as chunks of it, copies overlapping compute; default 0 = off; compiled too),
            `uint8_graphs` (compile `infer_uint8`'s uint8-in, uint8-out graph per size; default True on CUDA,
            False on the CPU), `device_type` ("auto" | "cpu" | "cuda").
    """

    name = "inductor"
    accepted_options = (
        "device_type",
        "batch_sizes",
        "precision",
        "mode",
        "channels_last",
        "cache_dir",
        "cudnn_benchmark",
        "pipeline_chunk",
        "uint8_graphs",
    )
    thread_safe = True  # one lock around the staging buffers and graphs
    checks_input_range = True  # CUDA: inside the captured graph; CPU: one host scan here
    times_transfers = True  # on CUDA (`timed_infer`)

    _runner: Any = None
    _u8_runner: Any = None
    _u8_compiled: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()

    @classmethod
    def check_impl(cls, bundle: Bundle, device: int, options: dict[str, Any]) -> Plan:
        art = torch_plan(bundle).artifact
        return Plan("compiles the generator with TorchInductor (CUDA: FP16 + CUDA graphs; CPU: FP32)", art)

    def load_impl(self, plan: Plan) -> None:
        torch, reference, use_cuda, precision = open_generator(self.bundle, self.options, "inductor")
        self._settings(use_cuda, precision)
        self._prepare_compiler(torch)
        self._torch = torch
        self._compile_s: dict[int, float] = {}
        self._parity: dict[int, float] = {}
        self._u8_sizes, self._u8_error, self._u8_parity, self._u8_compile_s = (), "", {}, {}
        if use_cuda:
            self._load_cuda(torch, reference)
        else:
            self._runner = None
            self._module = reference
            self._compiled = torch.compile(reference, dynamic=False, fullgraph=True, mode=self._mode)
        self._warm_and_check(torch, reference)
        if self._want_uint8:
            self._load_uint8(torch, reference)
        self.max_batch = max(self._sizes)
        # one graph per static size (and per size again for uint8), all compiled (and checked) here
        self.compile_count = len(self._sizes) + len(self._u8_sizes)
        self.uint8_on_device = bool(self._u8_sizes)

    def _settings(self, use_cuda: bool, precision: str) -> None:
        sizes = tuple(self.options.get("batch_sizes") or (CUDA_BATCH_SIZES if use_cuda else CPU_BATCH_SIZES))
        if not sizes or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in sizes):
            raise BackendUnavailableError(f"batch_sizes must be positive integers, got {sizes!r}")
        mode = self.options.get("mode", "default")
        if mode not in MODES:
            raise BackendUnavailableError(f"inductor mode must be one of {', '.join(MODES)}, got {mode!r}")
        chunk = self.options.get("pipeline_chunk", PIPELINE_CHUNK) if use_cuda else 0
        if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 0:
            raise BackendUnavailableError(f"pipeline_chunk must be a non-negative integer, got {chunk!r}")
        self._chunk = chunk if chunk and chunk * 2 <= max(sizes) else 0  # no chunking below the largest size
        sizes = sizes + ((self._chunk,) if self._chunk else ())
        self._sizes, self._precision, self._mode, self._cuda = tuple(sorted(set(sizes))), precision, mode, use_cuda
        self._channels_last = bool(self.options.get("channels_last", use_cuda))
        want_uint8 = self.options.get("uint8_graphs", use_cuda)
        if not isinstance(want_uint8, bool):
            raise BackendUnavailableError(f"uint8_graphs must be True or False, got {want_uint8!r}")
        self._want_uint8 = want_uint8

    def _prepare_compiler(self, torch: Any) -> None:
        cache = Path(self.options.get("cache_dir") or default_cache_dir()).expanduser()
        cache.mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)  # read by Inductor at each compile: set before any
        self._cache_dir = cache
        import torch._dynamo.config as dynamo_config

        # One guard entry per (module, batch size); several translators in one process must not hit the
        # limit, past which dynamo would silently run the model eagerly.
        for key in ("recompile_limit", "cache_size_limit"):
            if hasattr(dynamo_config, key):
                setattr(dynamo_config, key, max(getattr(dynamo_config, key), 64))

    def _load_cuda(self, torch: Any, reference: Any) -> None:
        from stargan_sdk.backends.torch_cuda import CudaGraphRunner

        device = torch.device("cuda", self.device)
        # Process-wide cuDNN switches, as in the torch backend: Inductor leaves convolutions to cuDNN, whose
        # algorithm search pays off for static shapes; "fp32" means IEEE FP32, not TF32 (parity is 1e-4).
        torch.backends.cudnn.benchmark = bool(self.options.get("cudnn_benchmark", True))
        if self._precision == "fp32":
            torch.backends.cudnn.allow_tf32 = False
        module = to_precision(torch, _copy(reference).to(device), self._precision == "fp16")
        if self._channels_last:
            module = module.to(memory_format=torch.channels_last)
        self._module = module
        compiled = torch.compile(module, dynamic=False, fullgraph=True, mode=self._mode)
        channels_last = self._channels_last

        def forward(x: Any, c: Any) -> Any:
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            return compiled(x, c)

        self._compiled = forward
        size = self.manifest.image_size
        self._runner = CudaGraphRunner(
            torch,
            forward,
            device,
            max(self._sizes),
            (3, size, size),
            self.manifest.c_dim,
            bool(self.options.get("cuda_graphs", True)),
        )

    def _warm_and_check(self, torch: Any, reference: Any) -> None:
        """Compile every size (the first call does) and compare it with the FP32 eager model."""
        size, c_dim = self.manifest.image_size, self.manifest.c_dim
        x2, c2 = parity_inputs(2, size, c_dim)
        with torch.inference_mode():
            expected2 = reference(torch.from_numpy(x2), torch.from_numpy(c2)).numpy()
        tolerance = TOLERANCES[self._precision]
        for n in self._sizes:
            x, c = parity_inputs(n, size, c_dim)
            t0 = time.perf_counter()
            actual = self._run_size(x, c)
            self._compile_s[n] = time.perf_counter() - t0
            expected = expected2[np.arange(n) % 2]
            psnr = psnr_db(expected, actual)
            max_abs = float(np.max(np.abs(expected - actual))) if np.all(np.isfinite(actual)) else float("inf")
            self._parity[n] = psnr
            if not tolerance.passes(max_abs, psnr):
                missed = tolerance.describe(max_abs, psnr)
                raise BackendUnavailableError(
                    f"the Inductor-compiled generator at batch {n} misses FP32 parity ({missed}); "
                    f"refusing it (torch {torch.__version__})"
                )

    def _load_uint8(self, torch: Any, reference: Any) -> None:
        """Compile, capture and check the uint8 graphs; any failure keeps the float path and says why."""
        from stargan_sdk.backends.inductor_uint8 import check_uint8, compile_uint8

        try:
            self._u8_compiled, self._u8_runner = compile_uint8(
                torch, self._module, self._normalizer(), self._runner, self._mode
            )
            self._u8_sizes = tuple(self._sizes)  # what `_run_u8_sizes` runs; cleared again on a miss
            inputs = parity_inputs(2, self.manifest.image_size, self.manifest.c_dim)
            self._u8_parity, self._u8_compile_s = check_uint8(
                torch, reference, self._normalizer(), self._sizes, self._run_u8_sizes, self._precision, inputs
            )
        except BackendUnavailableError as e:  # a parity miss: the float graphs were checked, keep them
            self._drop_uint8(str(e))
        except Exception as e:  # noqa: BLE001  the uint8 graph is an optimisation (as a CUDA graph capture is):
            # whatever Dynamo or Inductor raise compiling it, the checked float path still serves infer_uint8
            why = f"{type(e).__name__}: {str(e)[:300]}"
            self._drop_uint8(f"the uint8 graph did not compile ({why}); the host normalises")

    def _drop_uint8(self, reason: str) -> None:
        self._u8_compiled = self._u8_runner = None
        self._u8_sizes, self._u8_error = (), reason
        warnings.warn(f"inductor: {reason}", RuntimeWarning, stacklevel=4)

    def _normalizer(self) -> Any:
        from stargan_sdk.images.imaging import Normalizer

        return Normalizer.of_manifest(self.manifest)

    def _run_u8_sizes(self, chunks: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Compiled sizes exactly, uint8 in and out (every value is a pixel: no range check)."""
        torch = self._torch
        with torch.no_grad():
            if self._u8_runner is not None:
                return self._u8_runner.run(chunks)[0]
            return [self._u8_compiled(torch.from_numpy(x), torch.from_numpy(c)).numpy() for x, c in chunks]

    def _run_sizes(self, chunks: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Compiled sizes exactly (each len(image) is in self._sizes), pipelined on CUDA; checks the input range."""
        torch = self._torch
        with torch.no_grad():  # not inference_mode: the runner's static buffers outlive this call
            if self._runner is not None:
                outs, ranges = self._runner.run(chunks)
                for low, high in ranges:  # one by one: Python's min/max would step over a NaN
                    check_image_range(low, high)
                return outs
            for x, _ in chunks:
                check_image_range(*value_range(x))
            return [self._compiled(torch.from_numpy(x), torch.from_numpy(c)).numpy() for x, c in chunks]

    def _run_size(self, image: np.ndarray, label: np.ndarray) -> np.ndarray:
        return self._run_sizes([(image, label)])[0]

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        chunks, takes = cover(feeds[INPUT_IMAGE], feeds[INPUT_LABEL], self._sizes, self._chunk)
        with self._lock:
            self._require_loaded()  # close() may have run while this call waited
            outs = self._run_sizes(chunks)
        return {OUTPUT_IMAGE: joined(outs, takes)}

    def infer_uint8(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, 3] and float32 [N, c] -> uint8 [N, S, S, 3] through the uint8 graphs (split and padded
        over the compiled sizes as `infer` is); without them (refused, or not asked for) the host normalises."""
        self._require_loaded()
        if not self._u8_sizes:
            return super().infer_uint8(images, labels)
        chunks, takes = cover(images, labels, self._sizes, self._chunk)
        with self._lock:
            self._require_loaded()
            outs = self._run_u8_sizes(chunks)
        return joined(outs, takes)

    def timed_infer(self, feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """One compiled batch size plus its H2D / compute / D2H split from CUDA events (benchmarks)."""
        self._require_loaded()
        self.check_feeds(feeds)
        image, label = feeds[INPUT_IMAGE], feeds[INPUT_LABEL]
        if self._runner is None or len(image) not in self._sizes:
            raise BackendUnavailableError("timed_infer needs CUDA and a compiled batch size")
        timings: dict[str, float] = {}
        with self._lock, self._torch.no_grad():
            (out,), ((low, high),) = self._runner.run([(image, label)], timings)
        check_image_range(low, high)
        return {OUTPUT_IMAGE: out}, timings

    def close_impl(self) -> None:
        with self._lock:  # wait for a running call
            self._compiled = self._runner = self._module = None
            self._u8_compiled = self._u8_runner = None
            self.loaded = False

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
            info.update(
                device=f"cuda:{self.device}" if runner else "cpu",
                precision=self._precision,
                mode=self._mode,
                batch_sizes=list(self._sizes),
                pipeline_chunk=self._chunk,
                channels_last=self._channels_last,
                cache_dir=str(self._cache_dir),
                torch=self._torch.__version__,
                first_call_s={str(k): round(v, 3) for k, v in self._compile_s.items()},
                parity_psnr_db={str(k): round(v, 2) for k, v in self._parity.items()},
                uint8_on_device=self.uint8_on_device,
                uint8_batch_sizes=list(self._u8_sizes),  # sizes with a compiled uint8-in, uint8-out graph
                uint8_first_call_s={str(k): round(v, 3) for k, v in self._u8_compile_s.items()},
                uint8_parity_psnr_db={str(k): round(v, 2) for k, v in self._u8_parity.items()},
                uint8_error=self._u8_error,  # why there are none, when they were asked for
            )
            if runner is not None:
                info.update(
                    cuda_graphs=runner.graphs_enabled,
                    graph_batch_sizes=sorted(runner.graphs),
                    graph_error=runner.graph_error,
                )
            if self._u8_runner is not None:
                info.update(uint8_graph_batch_sizes=sorted(self._u8_runner.graphs))
        return info


def _copy(module: Any) -> Any:
    import copy

    return copy.deepcopy(module)
