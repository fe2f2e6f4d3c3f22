"""ONNX Runtime backend: the bundle's generator ONNX on the CPU (or CUDA) execution provider.

Usage: with OrtBackend(bundle, manifest, precision="fp32") as b: y = b.infer({"image": x, "label": c})["output"]

Kept deliberately thin (the benchmark holds it to <= 5 % over a raw `InferenceSession.run`): one
`session.run` per call on the caller's arrays, no copies. Plain `run` is used rather than IO binding:
with numpy in and numpy out, binding saves no copy on the CPU provider and costs a binding object per call
(sessions are shared between threads, bindings are not). Set `io_binding=True` to compare.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from stargan_sdk.backends.base import Backend, Plan
from stargan_sdk.backends.ort_session import session_options
from stargan_sdk.bundle.artifacts import generator_onnx
from stargan_sdk.bundle.constants import INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.errors import BackendUnavailableError, BundleError

PROVIDERS = ("auto", "cpu", "cuda")


def pick_providers(provider: str, device: int) -> list[Any]:
    import onnxruntime as ort

    if provider not in PROVIDERS:
        raise BackendUnavailableError(f"onnxruntime provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if provider == "cuda" and not has_cuda:
        raise BackendUnavailableError(
            "onnxruntime has no CUDA execution provider here; install onnxruntime-gpu or use provider='cpu'"
        )
    if has_cuda and provider != "cpu":
        return [("CUDAExecutionProvider", {"device_id": device}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OrtBackend(Backend):
    """Runs `generator.onnx` (or `generator.fp16.onnx`) with ONNX Runtime.

    Args:
        bundle: the opened Bundle (or its folder, with or without its manifest).
        device: CUDA device ordinal for the CUDA provider.
        max_batch: largest batch per call (None: any; ONNX graphs have a dynamic batch).
        options: `precision` ("fp32" default, or "fp16"), `provider` ("auto" | "cpu" | "cuda"),
            `threads` (intra-op threads; default physical cores), `io_binding` (default False).
    """

    name = "onnxruntime"
    accepted_options = ("precision", "provider", "threads", "io_binding")
    thread_safe = True  # InferenceSession.run may be called from several threads at once
    _session: Any = None

    @classmethod
    def check_impl(cls, bundle: Bundle, device: int, options: dict[str, Any]) -> Plan:
        precision = options.get("precision", "fp32")
        if importlib.util.find_spec("onnxruntime") is None:
            raise BackendUnavailableError("onnxruntime is not installed (pip install 'stargan[onnxruntime]')")
        art = generator_onnx(bundle.manifest, precision)
        if art is None:
            hint = " (re-export with fp16 enabled)" if precision == "fp16" else ""
            raise BackendUnavailableError(f"the bundle has no {precision} generator ONNX{hint}")
        return Plan(f"{art.file} ({precision})", art)

    def load_impl(self, plan: Plan) -> None:
        import onnxruntime as ort

        art = plan.artifact
        assert art is not None
        path = self.bundle.verified(art)
        providers = pick_providers(self.options.get("provider", "auto"), self.device)
        try:
            options = session_options(self.options.get("threads"))
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:  # ORT raises its own Fail/InvalidGraph types; the message says what broke
            raise BundleError(f"ONNX Runtime could not load {art.file}: {e}") from None
        self._artifact = art
        self._io_binding = bool(self.options.get("io_binding", False))

    def input_shapes(self) -> dict[str, tuple[Any, ...]]:
        """The graph's declared input shapes (batch dimension symbolic), for the bundle consistency check."""
        self._require_loaded()
        return {i.name: tuple(i.shape) for i in self._session.get_inputs()}

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._io_binding:
            return self._infer_bound(feeds)
        out = self._session.run([OUTPUT_IMAGE], {INPUT_IMAGE: feeds[INPUT_IMAGE], INPUT_LABEL: feeds[INPUT_LABEL]})
        return {OUTPUT_IMAGE: out[0]}

    def _infer_bound(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        image = np.ascontiguousarray(feeds[INPUT_IMAGE])
        out = np.empty_like(image)  # the generator's output has the input's shape
        binding = self._session.io_binding()
        binding.bind_cpu_input(INPUT_IMAGE, image)
        binding.bind_cpu_input(INPUT_LABEL, np.ascontiguousarray(feeds[INPUT_LABEL]))
        binding.bind_output(OUTPUT_IMAGE, "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
        self._session.run_with_iobinding(binding)
        return {OUTPUT_IMAGE: out}

    def close_impl(self) -> None:
        self._session = None

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"backend": self.name, "precision": self.options.get("precision", "fp32")}
        if self.loaded:
            so = self._session.get_session_options()
            info.update(
                file=self._artifact.file,
                providers=self._session.get_providers(),
                intra_op_threads=so.intra_op_num_threads,
                io_binding=self._io_binding,
            )
        return info
