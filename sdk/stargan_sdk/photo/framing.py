"""The CLI's `auto` rule: edit an image whole when it is an aligned face crop, else run the photo pipeline.

Usage: rule = Framing(note=print); rule.edit_whole(image)  # True for a face filling the frame

A face "fills the frame" when the CelebA-style crop around the largest detected face (the framing the
models are trained on) spans at least FILL of the image's shorter side: an aligned CelebA image (178x218)
gives about 1.0, scikit-image's 512x512 astronaut 0.35. Without a detector (OpenCV not installed) or
without a detected face, the shape decides as before: square images are edited whole, others go to the
photo pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PIL import Image

from stargan_sdk.errors import BackendUnavailableError

FILL = 0.6


class Framing:
    """Decides, image by image, between editing whole and the photo pipeline.

    Args:
        note: called once, with one line, when no face detector can be loaded.
        detector: a face detector (default: the photo pipeline's Haar detector).
    """

    def __init__(self, note: Callable[[str], None], detector: Any = None) -> None:
        self.note = note
        self.detector = detector
        self._detector_missing = False

    def edit_whole(self, image: Image.Image) -> bool:
        shape_rule = image.width == image.height
        if self._detector_missing:
            return shape_rule
        from stargan_sdk.photo.faces import celeba_crop_box, detect_faces  # OpenCV only when a detection runs

        try:
            faces = detect_faces(image, detector=self.detector)
        except BackendUnavailableError as e:
            self._detector_missing = True
            self.note(f"note: {e}; without a face detector square images are edited whole, others need --crop")
            return shape_rule
        if not faces:
            return shape_rule
        largest = max(faces, key=lambda f: f.w * f.h)
        return celeba_crop_box(largest).side >= FILL * min(image.size)
