"""The bundle's attribute classifier (the discriminator's domain head) on ONNX Runtime CPU.

Usage: clf = AttributeClassifier.from_bundle(Bundle.open("models/toyfaces-64"))
       logits = clf.logits(x)  # x float32 NCHW [-1, 1]

It estimates what a photo already shows so that edits can be applied on top ("make blond" keeps age and
gender). It is small, so it always runs on the CPU whichever backend runs the generator.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from stargan_sdk.backends.ort_session import session_options
from stargan_sdk.bundle.checks import check_classifier_io
from stargan_sdk.bundle.constants import CLASSIFIER_INPUT, CLASSIFIER_OUTPUT
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.bundle.manifest import Manifest
from stargan_sdk.errors import BundleError


class AttributeClassifier:
    """An ONNX Runtime CPU session over `classifier.onnx`.

    Args:
        path: the verified classifier ONNX file.
        threads: intra-op threads (default: physical cores).
    """

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
