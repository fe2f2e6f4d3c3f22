"""The bundle's attribute classifier (the discriminator's domain head) on ONNX Runtime CPU.

Usage: clf = AttributeClassifier.from_bundle(Bundle.open("models/toyfaces-64"))
       logits = clf.logits(x)  # x float32 NCHW [-1, 1]

It estimates what a photo already shows so that edits can be applied on top ("make blond" keeps age and
gender). It runs on the CPU, except beside a backend on a GPU (`load_classifier`), where the backend's own
classifier (torch's run of this graph, `classifier_torch`, or TensorRT's classifier.plan, `tensorrt_classifier`)
runs once it matches this one.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from stargan_sdk.backends.ort_session import session_options
from stargan_sdk.bundle.checks import check_classifier_io
from stargan_sdk.bundle.constants import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.bundle.manifest import Manifest
from stargan_sdk.bundle.tolerances import TOLERANCES
from stargan_sdk.errors import BundleError, StarGANError


class AttributeClassifier:
    """An ONNX Runtime CPU session over `classifier.onnx`.

    `gpu_refused` says why a GPU backend's device does not run it (`load_classifier`), "" otherwise.

    Args:
        path: the verified classifier ONNX file.
        threads: intra-op threads (default: physical cores).
    """

    uint8_on_device = False  # the host normalises the crops for it

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        import onnxruntime as ort

        options = session_options(threads)
        # No spin-waiting after a run: the classifier runs between generator calls, and ORT's spinning threads
        # would take the cores the generator's engine (OpenVINO's threads, say) is about to use.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT's own exception types; its message names the problem
            raise BundleError(f"ONNX Runtime could not load {Path(path).name}: {e}") from None
        self.gpu_refused = ""

    @classmethod
    def from_bundle(
        cls, bundle: Bundle | str | os.PathLike[str], manifest: Manifest | None = None
    ) -> AttributeClassifier | None:
        """The bundle's classifier, checksum and input shape verified; None when the bundle has none or
        onnxruntime is not installed (then callers must be told the original attributes)."""
        bundle = Bundle.of(bundle, manifest)
        manifest = bundle.manifest
        art = manifest.artifact(role="classifier", kind="onnx")
        if art is None or importlib.util.find_spec("onnxruntime") is None:
            return None
        clf = cls(bundle.verified(art))  # I/O checked on the protobuf first
        check_classifier_io(
            manifest,
            {i.name: tuple(i.shape) for i in clf._session.get_inputs()},
            {o.name: tuple(o.shape) for o in clf._session.get_outputs()},
            art.file,
        )
        return clf

    def logits(self, images: np.ndarray) -> np.ndarray:
        """float32 [N, k] domain logits for normalised float32 [N, 3, H, W] images (thread-safe)."""
        return self._session.run([CLASSIFIER_OUTPUT], {CLASSIFIER_INPUT: images})[0]

    def describe(self) -> str:
        return "onnxruntime on cpu" + (f" (not on the GPU: {self.gpu_refused})" if self.gpu_refused else "")


def load_classifier(bundle: Bundle, runner: Any) -> Any | None:
    """The bundle's classifier where it runs best beside `runner`: on the runner's GPU when the runner makes one
    there (`device_classifier`: torch's graph, or TensorRT's classifier.plan) whose logits match ONNX Runtime's
    within TOLERANCES["classifier_gpu"] on seeded images; else on ONNX Runtime's CPU (None: no classifier), with
    `gpu_refused` saying why."""
    cpu = AttributeClassifier.from_bundle(bundle)
    if cpu is None:
        return None
    from stargan_sdk.backends.base import error_reason
    from stargan_sdk.images.imaging import Normalizer

    gpu = None
    try:
        gpu = runner.device_classifier()
        if gpu is None:
            return cpu
        size = bundle.manifest.image_size
        images = np.random.default_rng(0).integers(0, 256, (4, size, size, 3), dtype=np.uint8)
        norm = Normalizer.of_manifest(bundle.manifest)
        error = logits_error(cpu.logits(norm.preprocess(images)), gpu.logits_uint8(images))
        tolerance = TOLERANCES["classifier_gpu"]
        if not tolerance.passes(error, 0.0):
            raise BundleError(f"its logits differ from ONNX Runtime's: {tolerance.describe(error, 0.0)} (relative)")
    except Exception as e:  # an optional speed-up: whatever fails on the GPU, the CPU one stays
        if gpu is not None:
            gpu.close()
        cpu.gpu_refused = error_reason(e) if isinstance(e, (StarGANError, RuntimeError)) else f"{type(e).__name__}: {e}"
        return cpu
    return gpu


def logits_error(want: np.ndarray, got: np.ndarray) -> float:
    """Largest logit difference as a fraction of the largest reference logit (at least 1)."""
    return float(np.max(np.abs(want - got))) / max(1.0, float(np.max(np.abs(want))))
