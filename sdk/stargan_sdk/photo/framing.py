"""The `auto` framing rule, one for `stargan translate` and the web page: edit an image whole, or find its faces.

Usage: choice = Framing(model_size=64).choose(image)  # choice.whole, choice.faces, choice.why

The rule, in order (README "Use" and `stargan translate --help` describe it in these words):
1. A detected face "fills the frame" when the CelebA-style crop around the largest one (the framing the models
   are trained on) spans at least FILL of the image's shorter side (an aligned CelebA image gives about 1.0,
   scikit-image's 512x512 astronaut 0.35): the image is an aligned face and is edited whole.
2. Any other detected face: each face is edited and blended back into the photo.
3. No face detected (or no detector: OpenCV missing): an image of an aligned shape is an aligned face the
   detector missed (the Haar cascade does not see the toy faces) and is edited whole; callers say so. The
   aligned shapes are CelebA's 178x218 (what `stargan-train toyfaces` writes too), its 178x178 centre crop,
   and the model's own square size. Anything else is not edited: callers say that no face was found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from stargan_sdk.errors import BackendUnavailableError, FaceDetectorError
from stargan_sdk.images.imaging import MAX_IMAGE_PIXELS
from stargan_sdk.photo.face_detect import FaceBox
from stargan_sdk.photo.faces import celeba_crop_box, detect_faces

FILL = 0.6
ALIGNED_SHAPES = ((178, 218), (178, 178))  # (width, height): CelebA's aligned images and their centre crop


def is_aligned_shape(size: tuple[int, int], model_size: int) -> bool:
    """True for (width, height) of an aligned face: CelebA's 178x218 or 178x178, or the model's square size."""
    return tuple(size) in ALIGNED_SHAPES or tuple(size) == (model_size, model_size)


def shape_name(size: tuple[int, int], model_size: int) -> str:
    """Why a size counts as aligned, in words for a message."""
    w, h = size
    if (w, h) == (178, 218):
        return "178x218, CelebA's aligned shape"
    if (w, h) == (178, 178):
        return "178x178, CelebA's aligned centre square"
    return f"{w}x{h}, the model's own size"


@dataclass(frozen=True)
class Choice:
    """What the rule decided for one image.

    Args:
        whole: edit the image whole (True) or each face in `faces` (False); with no face and not whole: refuse.
        faces: the detected faces, left to right (empty when none was found or no detector ran).
        why: "fills" (rule 1), "faces" (rule 2), "aligned" (rule 3, edited whole) or "no-face" (rule 3, refused).
        detector_missing: why no detector could run ("" when one did).
    """

    whole: bool
    faces: tuple[FaceBox, ...]
    why: str
    detector_missing: str = ""


class Framing:
    """Applies the rule image by image; a missing detector is tried once, then remembered.

    Args:
        note: called once, with one `note: ...` line, when no face detector can be loaded.
        detector: a face detector (default: the photo pipeline's Haar detector).
        model_size: the bundle's image size (an image of exactly that square size is an aligned face).
        max_pixels: larger images raise ImageInputError before detection.
    """

    def __init__(
        self,
        note: Callable[[str], None] | None = None,
        detector: Any = None,
        model_size: int = 0,
        max_pixels: int | None = None,
    ) -> None:
        self.note = note
        self.detector = detector
        self.model_size = model_size
        self.max_pixels = max_pixels
        self.detector_missing = ""

    def edit_whole(self, image: Image.Image) -> bool:
        """The rule's two-way answer, for callers that send everything else to the photo pipeline (whose
        NoFaceFoundError then says that no face was found)."""
        return self.choose(image).whole

    def choose(self, image: Image.Image) -> Choice:
        """The rule (module docstring) for one upright image."""
        faces = () if self.detector_missing else self._detect(image)
        if faces:
            largest = max(faces, key=lambda f: f.w * f.h)
            fills = celeba_crop_box(largest).side >= FILL * min(image.size)
            return Choice(fills, faces, "fills" if fills else "faces")
        if is_aligned_shape(image.size, self.model_size):
            return Choice(True, (), "aligned", self.detector_missing)
        return Choice(False, (), "no-face", self.detector_missing)

    def _detect(self, image: Image.Image) -> tuple[FaceBox, ...]:
        try:  # OpenCV is imported here, by the first detection
            return tuple(detect_faces(image, detector=self.detector, max_pixels=self.max_pixels or MAX_IMAGE_PIXELS))
        except (BackendUnavailableError, FaceDetectorError) as e:
            if self.detector is not None and not isinstance(e, BackendUnavailableError):
                raise  # the caller's own detector failed on this image: that is the caller's error to see
            self.detector_missing = str(e)
            if self.note is not None:
                self.note(
                    f"note: {e}; without a face detector, images of an aligned shape are edited whole and "
                    "others need --crop"
                )
            return ()
