"""TensorRT backend: the bundle's raw engine plan, checked against this machine, run by `TrtEngine`.

Usage: with TrtBackend(Bundle.open(folder)) as b: y = b.infer({"image": x, "label": c})["output"]

`max_batch` is the engine's optimisation-profile limit (or a smaller requested one), known from the manifest
before loading and confirmed from the engine at load, so the Translator splits larger batches as it does for
every backend. TensorRT 10 and 11 differ in how engines are built (11 is strongly typed only); the runtime
calls used here exist with the same signatures in both (the `trt_api` tests check this against both bindings).

A bundle with `preprocess.plan` and `postprocess.plan` (built with the engine) gets uint8 at the boundary on the
GPU (`uint8_on_device`: `infer_uint8` chains them around the generator, `tensorrt_uint8`); without them, or
when they do not match this machine, the host normalises as before and `describe()` says why. With
`classifier.plan` too, the originals' estimate runs on the GPU as well (`device_classifier`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from stargan_sdk import cuda
from stargan_sdk.backends.base import Backend, Plan
from stargan_sdk.backends.tensorrt_compat import check_engine, import_tensorrt, match_engine, rebuild_command
from stargan_sdk.backends.tensorrt_engine import TrtEngine
from stargan_sdk.bundle.constants import CLASSIFIER_PLAN, UINT8_ROLES
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.bundle.manifest import Manifest
from stargan_sdk.errors import BundleError, EngineMismatchError


class TrtBackend(Backend):
    """Runs the bundle's TensorRT engine with the v3 named-tensor API on one GPU.

    Args:
        bundle: the opened Bundle (or its folder, with or without its manifest).
        device: CUDA device ordinal.
        max_batch: largest batch per call (capped by the engine profile's max; None: the profile's max).
        options: `cuda_graphs` (default True): capture one CUDA graph per batch size and replay it.
    """

    name = "tensorrt"
    accepted_options = ()  # cuda_graphs only (common to all backends)

    def __init__(
        self,
        bundle: Bundle | str | Path,
        manifest: Manifest | None = None,
        *,
        device: int = 0,
        max_batch: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(bundle, manifest, device=device, max_batch=max_batch, **options)
        self.cuda_graphs = bool(options.get("cuda_graphs", True))
        self._requested_max_batch = max_batch
        self._engine: TrtEngine | None = None
        self._gpu_name, self._capability = "", ""
        self._uint8_error = ""
        self.max_batch = self._profile_limit()

    def _profile_limit(self) -> int | None:
        art = self.manifest.artifact(role="generator", kind="tensorrt")
        limits = [v for v in (self._requested_max_batch, art and art.profile and art.profile.max) if v]
        return min(limits) if limits else None

    @classmethod
    def check_impl(cls, bundle: Bundle, device: int, options: dict[str, Any]) -> Plan:
        art = check_engine(bundle, device)  # TensorRT release, GPU and engine checked once per Bundle
        return Plan(f"{art.file} matches this GPU and TensorRT", art)

    def load_impl(self, checked: Plan) -> None:
        art = checked.artifact
        assert art is not None
        plan = self.bundle.verified(art).read_bytes()
        gpu = cuda.device_properties(self.device)
        uint8_plans = self._uint8_plans(gpu)
        engine = TrtEngine(plan, image_size=self.manifest.image_size, c_dim=self.manifest.c_dim, device=self.device,
                           max_batch=self._profile_limit(), cuda_graphs=self.cuda_graphs, source=art.file,
                           rebuild=rebuild_command(self.bundle), uint8_plans=uint8_plans)  # fmt: skip
        self._engine = engine  # closed by close_impl if open() fails
        engine.open()
        self._gpu_name, self._capability = gpu.name, gpu.compute_capability
        self.max_batch = engine.max_batch
        self.uint8_on_device = engine.has_uint8

    def _uint8_plans(self, gpu: cuda.DeviceInfo) -> tuple[bytes, bytes] | None:
        """The uint8 boundary plans' bytes when the bundle has them and they fit this machine, else None (and why)."""
        arts = [self.manifest.artifact(role=role, kind="tensorrt") for role in UINT8_ROLES]
        if None in arts:
            self._uint8_error = "the bundle has no uint8 boundary engines (re-export with --engine to add them)"
            return None
        try:
            for a in arts:
                match_engine(a, import_tensorrt().__version__, gpu, rebuild_command(self.bundle))
        except EngineMismatchError as e:
            self._uint8_error = str(e)
            return None
        pre, post = (self.bundle.verified(a).read_bytes() for a in arts)  # type: ignore[arg-type]
        return pre, post

    def device_classifier(self) -> Any | None:
        """classifier.plan behind preprocess.plan on this GPU (`tensorrt_classifier`); BundleError says why not."""
        from stargan_sdk.backends.tensorrt_classifier import TrtClassifier
        from stargan_sdk.images.labels import AttributeSpace

        art = self.manifest.artifact(role="classifier", kind="tensorrt")
        if art is None or art.profile is None:
            raise BundleError(f"the bundle has no {CLASSIFIER_PLAN} (re-export with --classifier --engine to add it)")
        if not self.engine.has_uint8:
            raise BundleError(f"{CLASSIFIER_PLAN} needs the uint8 boundary engines: {self._uint8_error}")
        trt = import_tensorrt()
        match_engine(art, trt.__version__, cuda.device_properties(self.device), rebuild_command(self.bundle))
        pre = self.manifest.artifact(role="preprocess", kind="tensorrt")  # loaded: the engine has the uint8 pair
        assert pre is not None
        return TrtClassifier(
            trt,
            (self.bundle.verified(pre).read_bytes(), self.bundle.verified(art).read_bytes()),
            image_size=self.manifest.image_size,
            width=len(AttributeSpace.from_manifest(self.manifest).editable),
            batches=(art.profile.min, art.profile.max),
            device=self.device,
        )

    def infer_uint8(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """uint8 in and out through the boundary engines on the GPU; the host's Normalizer without them."""
        if not self.engine.has_uint8:
            return super().infer_uint8(images, labels)
        return self.engine.infer_uint8(images, labels)

    @property
    def engine(self) -> TrtEngine:
        self._require_loaded()
        assert self._engine is not None
        return self._engine

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.engine.infer(feeds)

    def infer_batches_impl(self, batches: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Overlaps the upload of batch k+1 with the compute of batch k (two buffer slots, two streams)."""
        return self.engine.infer_batches(batches)

    def graph_batches(self) -> list[int]:
        """Batch sizes with a captured CUDA graph."""
        return self.engine.graph_batches()

    def describe(self) -> dict[str, Any]:
        art = self.manifest.artifact(role="generator", kind="tensorrt")
        info: dict[str, Any] = {"backend": self.name, "cuda_graphs": self.cuda_graphs, "engine": art and art.file}
        if art is not None:
            info.update(precision=art.precision, profile=asdict(art.profile) if art.profile else None)
        info["max_batch"] = self.max_batch
        if self.loaded:
            engine = self.engine
            info.update(tensorrt=engine.tensorrt_version, device=self._gpu_name, compute_capability=self._capability)
            info.update(graph_batches=engine.graph_batches())
            info.update(uint8_on_device=self.uint8_on_device, uint8_graph_batches=engine.uint8_graph_batches())
            info.update(uint8_error=self._uint8_error)  # why the host normalises, when it does
        return info

    def close_impl(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()
        self.max_batch = self._profile_limit()
        self.uint8_on_device = False
