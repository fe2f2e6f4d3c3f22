"""OpenVINO backend: the bundle's generator ONNX compiled for the CPU in FP32, BF16 or INT8.

Usage: with OpenVinoBackend(bundle, manifest, precision="auto") as b: y = b.infer({"image": x, "label": c})["output"]

FP32 on a CPU is near its arithmetic limit in every engine, so the large CPU win is lower precision:
OpenVINO's CPU plugin runs BF16 on AVX512-BF16/AMX and the bundle's QDQ INT8 graph on VNNI/AMX kernels.
Shapes are made static per batch size (one compiled model per size and performance hint, cached), which
lets the plugin pick blocked layouts and fold the label tiling. `infer` uses the LATENCY hint (one stream,
every core on one batch); `infer_batches` uses THROUGHPUT (several streams, one request each, in flight
together). Not thread-safe: one infer request per compiled model.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from stargan_sdk.backends.base import Backend, Plan, error_reason
from stargan_sdk.bundle.artifacts import fp32_artifact, int8_artifact
from stargan_sdk.bundle.constants import INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.bundle.manifest import Manifest
from stargan_sdk.bundle.tolerances import AUTO_INT8_MIN_PSNR_DB
from stargan_sdk.errors import BackendOptionError, BackendUnavailableError, BundleError
from stargan_sdk.host.hardware import physical_cores

PRECISIONS = ("auto", "fp32", "bf16", "int8")
HINTS = ("auto", "latency", "throughput")
OPTIONS = ("precision", "threads", "performance_hint", "cpu_capabilities", "num_requests")
IGNORED_OPTIONS = ("cuda_graphs",)  # passed to every backend by Translator.load; GPU-only
_OV_TYPE = {"fp32": "f32", "bf16": "bf16"}
CAPABILITIES_ENV = "STARGAN_CPU_CAPABILITIES"
_INSTALL = "openvino is not installed (pip install 'stargan[openvino]')"


def resolve_precision(requested: str, capabilities: Sequence[str], manifest: Manifest | None = None) -> str:
    """The precision to run (see `choose_precision`); BF16 without CPU support is refused."""
    return choose_precision(requested, capabilities, manifest)[0]


def choose_precision(requested: str, capabilities: Sequence[str], manifest: Manifest | None = None) -> tuple[str, str]:
    """(precision, why). `auto`: BF16 where the CPU reports it, else the bundle's INT8 model when its recorded
    PSNR vs FP32 is at least AUTO_INT8_MIN_PSNR_DB, else FP32."""
    if requested not in PRECISIONS:
        raise BackendOptionError(f"openvino precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    has_bf16 = "BF16" in capabilities
    if requested == "auto":
        if has_bf16:
            return "bf16", "auto: the CPU reports BF16"
        return _auto_without_bf16(manifest)
    if requested == "bf16" and not has_bf16:
        raise BackendUnavailableError(
            f"this CPU has no BF16 support (OpenVINO reports {', '.join(capabilities) or 'nothing'}); "
            f"use precision='fp32' or 'auto'"
        )
    return requested, f"requested precision={requested!r}"


def _auto_without_bf16(manifest: Manifest | None) -> tuple[str, str]:
    art = None if manifest is None else manifest.artifact(role="generator", kind="onnx", precision="int8")
    if art is None:
        return "fp32", "auto: no BF16 on this CPU and the bundle has no INT8 model"
    psnr = (art.parity or {}).get("psnr_db")
    if psnr is None or (art.parity or {}).get("usable") != 1.0 or psnr < AUTO_INT8_MIN_PSNR_DB:
        measured = "no recorded PSNR" if psnr is None else f"PSNR {psnr:.1f} dB"
        return "fp32", (f"auto: no BF16 on this CPU; the INT8 model's {measured} is below {AUTO_INT8_MIN_PSNR_DB:g} dB")
    return "int8", f"auto: no BF16 on this CPU; the INT8 model's PSNR {psnr:.1f} dB >= {AUTO_INT8_MIN_PSNR_DB:g} dB"


def cpu_capabilities() -> tuple[str, ...]:
    """What this CPU can run fast, as OpenVINO reports it (e.g. FP32, INT8, BF16 with AVX-512 BF16 or AMX).

    `STARGAN_CPU_CAPABILITIES=FP32,INT8` overrides the report for the whole process and its children: the way
    to see (and test) on a BF16 machine what an AVX2-only CPU gets. Ask this before choosing a precision.
    """
    override = os.environ.get(CAPABILITIES_ENV, "").strip()  # empty or unset: ask the CPU
    if override:
        return tuple(c.strip().upper() for c in override.split(",") if c.strip())
    if importlib.util.find_spec("openvino") is None:
        raise BackendUnavailableError(_INSTALL)
    import openvino as ov

    return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options with defaults filled in; unknown names and bad values raise BackendOptionError."""
    unknown = sorted(set(options) - set(OPTIONS) - set(IGNORED_OPTIONS))
    if unknown:
        raise BackendOptionError(f"unknown openvino option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
    out = {"precision": options.get("precision", "auto"), "performance_hint": options.get("performance_hint", "auto")}
    if out["precision"] not in PRECISIONS:
        raise BackendOptionError(f"openvino precision must be one of {', '.join(PRECISIONS)}, got {out['precision']!r}")
    if out["performance_hint"] not in HINTS:
        raise BackendOptionError(f"performance_hint must be one of {', '.join(HINTS)}, got {out['performance_hint']!r}")
    for key in ("threads", "num_requests"):
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise BackendOptionError(f"{key} must be a positive integer or None, got {value!r}")
        out[key] = value
    caps = options.get("cpu_capabilities")
    if caps is not None and (isinstance(caps, str) or not all(isinstance(c, str) for c in caps)):
        raise BackendOptionError(f"cpu_capabilities must be a list of names such as ['FP32', 'BF16'], got {caps!r}")
    out["cpu_capabilities"] = None if caps is None else tuple(caps)
    return out


class OpenVinoBackend(Backend):
    """Runs `generator.onnx` (FP32/BF16) or `generator.int8.onnx` with OpenVINO on the CPU.

    Args:
        bundle: the opened Bundle (or its folder, with or without its manifest).
        device: ignored (CPU only).
        max_batch: largest batch per call (None: any; each new size compiles once).
        options: `precision` ("auto" | "fp32" | "bf16" | "int8"; INT8 runs its float ops in BF16 where the
            CPU has it), `threads` (default: physical cores), `performance_hint` ("auto": LATENCY for
            `infer`, THROUGHPUT for `infer_batches`; or force one), `num_requests` (requests in flight in
            `infer_batches`; default OpenVINO's optimum), `cpu_capabilities` (override what the CPU
            reports, e.g. ["FP32"] to test the fallback on a CPU without BF16).
    """

    name = "openvino"
    accepted_options = OPTIONS
    thread_safe = False
    compile_count = 0  # models compiled since load (one per batch size and hint)

    @classmethod
    def check_impl(cls, bundle: Bundle, device: int, options: dict[str, Any]) -> Plan:
        if importlib.util.find_spec("openvino") is None:
            raise BackendUnavailableError(_INSTALL)
        precision = options.get("precision", "auto")
        art = int8_artifact(bundle.manifest) if precision == "int8" else fp32_artifact(bundle.manifest)
        if not (bundle.folder / art.file).is_file():
            raise BackendUnavailableError(f"{art.file} is missing from the bundle")
        return Plan(f"{art.file} on the CPU ({precision})", art)

    def load_impl(self, plan: Plan) -> None:
        opts = check_options(self.options)
        import openvino as ov

        core = ov.Core()
        caps = opts["cpu_capabilities"]
        if caps is None:
            caps = cpu_capabilities()
        precision, self._reason = choose_precision(opts["precision"], caps, self.manifest)
        art = int8_artifact(self.manifest) if precision == "int8" else fp32_artifact(self.manifest)
        path = self.bundle.verified(art)
        try:
            model = core.read_model(str(path))
        except Exception as e:  # OpenVINO raises RuntimeError subclasses with the parser's message
            raise BundleError(f"OpenVINO could not read {art.file}: {error_reason(e)}") from None
        self._ov, self._core, self._model, self._artifact = ov, core, model, art
        # Declared shapes, kept before `compiled_model` reshapes the graph to static batch sizes.
        self._declared = {i.get_any_name(): _dims(i.get_partial_shape()) for i in model.inputs}
        self._opts, self._caps, self._precision = opts, caps, precision
        # INT8 graphs keep InstanceNorm, ReLU, Tanh and the dequantised tensors in float: BF16 there is ~3x
        # faster at the same PSNR (the INT8 rounding dominates), so it follows the CPU like `auto`.
        self._float = "fp32" if precision == "fp32" or "BF16" not in caps else "bf16"
        self._threads = opts["threads"] or physical_cores()
        self._compiled: dict[tuple[int, str], Any] = {}
        self._requests: dict[int, Any] = {}  # one synchronous request per batch size, for `infer`
        self._pools: dict[int, list[Any]] = {}  # requests per batch size, for `infer_batches`
        self.compile_count = 0

    def compiled_model(self, batch: int, hint: str = "latency") -> Any:
        """The model compiled for a static batch size and performance hint (compiled once, then cached)."""
        self._require_loaded()
        forced = self._opts["performance_hint"]
        key = (batch, hint if forced == "auto" else forced)
        if key not in self._compiled:
            size, c_dim = self.manifest.image_size, self.manifest.c_dim
            try:
                self._model.reshape({INPUT_IMAGE: [batch, 3, size, size], INPUT_LABEL: [batch, c_dim]})
                self._compiled[key] = self._core.compile_model(
                    self._model,
                    "CPU",
                    {
                        "INFERENCE_PRECISION_HINT": _OV_TYPE[self._float],
                        "INFERENCE_NUM_THREADS": self._threads,
                        "PERFORMANCE_HINT": key[1].upper(),
                    },
                )
            except Exception as e:  # wrong input names or an op the CPU plugin lacks
                raise BundleError(
                    f"OpenVINO could not compile {self._artifact.file} for batch {batch}: {error_reason(e)}"
                ) from None
            self.compile_count += 1
        return self._compiled[key]

    def input_shapes(self) -> dict[str, tuple[Any, ...]]:
        """The graph's declared input shapes (dynamic dims as "N"), for the bundle consistency check."""
        self._require_loaded()
        return dict(self._declared)

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = self._inputs(feeds)
        n = inputs[INPUT_IMAGE].shape[0]
        if n not in self._requests:
            self._requests[n] = self.compiled_model(n, "latency").create_infer_request()
        request = self._requests[n]
        request.infer(inputs, share_inputs=True)  # contiguous float32 inputs are read in place
        return {OUTPUT_IMAGE: request.get_tensor(OUTPUT_IMAGE).data.copy()}

    def infer_batches_impl(self, batches: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Run many batches with several infer requests in flight; results come back in input order.

        Requests are used round-robin and waited on from this thread. Not `AsyncInferQueue`: its Python
        completion callback takes the GIL on an OpenVINO worker thread after `wait_all` has returned, and
        freeing the compiled model then (close()) deadlocks the interpreter (hit within 30 load/run/close
        cycles on OpenVINO 2026.4).
        """
        results: list[dict[str, np.ndarray]] = []
        pending: list[tuple[Any, int]] = []  # (request, result index), oldest first
        try:
            for feeds in batches:
                inputs = self._inputs(feeds)
                pool = self._pool(inputs[INPUT_IMAGE].shape[0])
                busy = {id(r) for r, _ in pending}
                request = next((r for r in pool if id(r) not in busy), None)
                if request is None:  # every request of this size is in flight: collect the oldest of them
                    request = self._collect(pending, results, pool)
                results.append({})
                request.start_async(inputs)  # copies the inputs: the caller may reuse its arrays
                pending.append((request, len(results) - 1))
        finally:  # also on a bad batch: requests in flight must finish before anything is freed
            while pending:
                self._collect(pending, results, None)
        return results

    @staticmethod
    def _collect(pending: list[tuple[Any, int]], results: list[dict[str, np.ndarray]], pool: list[Any] | None) -> Any:
        """Wait for the oldest pending request (of `pool` if given), store its output, return it."""
        at = next(i for i, (r, _) in enumerate(pending) if pool is None or any(r is p for p in pool))
        request, index = pending.pop(at)
        request.wait()
        results[index] = {OUTPUT_IMAGE: request.get_tensor(OUTPUT_IMAGE).data.copy()}
        return request

    def _pool(self, batch: int) -> list[Any]:
        if batch not in self._pools:
            compiled = self.compiled_model(batch, "throughput")
            jobs = self._opts["num_requests"] or compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
            self._pools[batch] = [compiled.create_infer_request() for _ in range(jobs)]
        return self._pools[batch]

    @staticmethod
    def _inputs(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Checked feeds (`Backend.check_feeds`) as contiguous float32, read in place by the requests."""
        return {k: np.ascontiguousarray(feeds[k], np.float32) for k in (INPUT_IMAGE, INPUT_LABEL)}

    def close_impl(self) -> None:
        self._requests, self._pools, self._compiled = {}, {}, {}
        self._model = self._core = None

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"backend": self.name, "precision": self.options.get("precision", "auto")}
        if not self.loaded:
            return info
        info.update(
            precision=self._precision,
            requested_precision=self._opts["precision"],
            precision_reason=self._reason,
            float_precision=self._float,
            file=self._artifact.file,
            openvino_version=self._ov.get_version(),
            cpu=self._core.get_property("CPU", "FULL_DEVICE_NAME"),
            cpu_capabilities=list(self._caps),
            threads=self._threads,
            compiled=[
                {"batch": b, "hint": h, "inference_precision": c.get_property("INFERENCE_PRECISION_HINT").to_string()}
                for (b, h), c in sorted(self._compiled.items())
            ],
        )
        return info


def _dims(shape: Any) -> tuple[int | str, ...]:
    return tuple(d.get_length() if d.is_static else "N" for d in shape)
