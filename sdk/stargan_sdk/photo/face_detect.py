"""Face detectors for the photo pipeline: OpenCV's Haar cascade (default) and YuNet, behind one callable contract.

Usage: boxes = HaarDetector()(rgb_uint8_hwc)  # -> [FaceBox(x, y, w, h), ...]

A detector is any callable `(rgb: np.ndarray[H, W, 3] uint8) -> sequence of (x, y, w, h)` in pixels of
that array. OpenCV is imported lazily (extra `photo`: `opencv-python-headless>=4.8,<5`; 5.0 dropped the
Haar cascade files), so the SDK itself stays importable without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from stargan_sdk.errors import BackendUnavailableError, FaceDetectorError, StarGANError

HAAR_CASCADE = "haarcascade_frontalface_default.xml"


class FaceBox(NamedTuple):
    """A detected face in pixels of the photo: top-left corner, width, height."""

    x: int
    y: int
    w: int
    h: int


Detector = Callable[[np.ndarray], Sequence[Sequence[float]]]


def import_cv2() -> Any:
    """OpenCV, or a BackendUnavailableError that says what to install."""
    try:
        import cv2
    except ImportError as e:
        raise BackendUnavailableError(
            "face detection needs OpenCV 4.x: pip install 'stargan[photo]' (opencv-python-headless>=4.8,<5)"
        ) from e
    return cv2


def _detection_scale(height: int, width: int, max_side: int) -> float:
    """Factor (<= 1) that brings the longer side down to max_side; faces stay far above the minimum size."""
    return min(1.0, max_side / max(height, width))


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, the file shipped inside opencv-python-headless 4.x.

    Args:
        scale_factor: image pyramid step; 1.1 is OpenCV's usual trade-off between recall and speed.
        min_neighbors: overlapping hits needed to keep a face; 5 suppresses most false positives.
        min_face: smallest face, as a fraction of the photo's shorter side (never below the cascade's
            24-pixel window).
        max_side: photos are downscaled to this longer side before detection (boxes are scaled back), so
            a 24-megapixel photo costs about as much as a 1-megapixel one.
    """

    def __init__(
        self,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_face: float = 0.05,
        max_side: int = 1280,
    ) -> None:
        if scale_factor <= 1.0 or min_neighbors < 0 or not 0.0 <= min_face < 1.0 or max_side < 24:
            raise ValueError(
                "HaarDetector needs scale_factor > 1, min_neighbors >= 0, 0 <= min_face < 1, max_side >= 24"
            )
        cv2 = import_cv2()
        path = Path(cv2.data.haarcascades) / HAAR_CASCADE
        if not path.is_file():
            raise FaceDetectorError(
                f"{HAAR_CASCADE} is not in this OpenCV install ({path.parent}); OpenCV 5 removed the "
                "cascades: pip install 'opencv-python-headless>=4.8,<5'"
            )
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise FaceDetectorError(f"OpenCV could not load the Haar cascade {path}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face = min_face
        self.max_side = max_side

    def __call__(self, rgb: np.ndarray) -> list[FaceBox]:
        cv2 = import_cv2()
        s = _detection_scale(rgb.shape[0], rgb.shape[1], self.max_side)
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        if s < 1.0:
            size = (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        # Equalising makes the cascade far less sensitive to exposure (it was trained on normalised patches).
        grey = cv2.equalizeHist(grey)
        side = max(24, round(self.min_face * min(grey.shape)))
        found = self._cascade.detectMultiScale(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side)
        )
        return [FaceBox(*(round(v / s) for v in box)) for box in np.asarray(found).reshape(-1, 4)]


class YuNetDetector:
    """OpenCV's YuNet CNN face detector (`cv2.FaceDetectorYN`), for a model file the user supplies.

    The model (e.g. `face_detection_yunet_2023mar.onnx`) comes from the OpenCV model zoo; nothing is
    downloaded here.

    Args:
        model_path: the YuNet ONNX file.
        score_threshold: minimum face confidence.
        nms_threshold: IoU above which overlapping detections are merged.
        max_side: photos are downscaled to this longer side before detection.
    """

    def __init__(
        self, model_path: str | Path, score_threshold: float = 0.8, nms_threshold: float = 0.3, max_side: int = 1280
    ) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise FaceDetectorError(
                f"YuNet model file not found: {path} (get face_detection_yunet_2023mar.onnx from the "
                "OpenCV model zoo, github.com/opencv/opencv_zoo, models/face_detection_yunet)"
            )
        cv2 = import_cv2()
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold)
        except cv2.error as e:
            raise FaceDetectorError(f"OpenCV could not load {path} as a YuNet model: {_first_line(e)}") from e
        self.max_side = max_side

    def __call__(self, rgb: np.ndarray) -> list[FaceBox]:
        cv2 = import_cv2()
        s = _detection_scale(rgb.shape[0], rgb.shape[1], self.max_side)
        bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
        if s < 1.0:
            bgr = cv2.resize(bgr, (round(rgb.shape[1] * s), round(rgb.shape[0] * s)), interpolation=cv2.INTER_AREA)
        try:
            self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, faces = self._net.detect(bgr)
        except cv2.error as e:
            raise FaceDetectorError(f"YuNet failed on a {rgb.shape[1]}x{rgb.shape[0]} photo: {_first_line(e)}") from e
        if faces is None:
            return []
        # Rows are x, y, w, h, five landmarks, score; only the box is used.
        return [FaceBox(*(round(float(v) / s) for v in row[:4])) for row in faces]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[-1] if text else type(e).__name__


def run_detector(detector: Detector, rgb: np.ndarray) -> list[FaceBox]:
    """Call `detector` on an RGB uint8 HWC array and check its answer; faces sorted by (x, then y).

    Boxes entirely outside the photo are dropped; a detector that fails or answers nonsense raises
    FaceDetectorError.
    """
    if not callable(detector):
        raise FaceDetectorError(f"detector must be a callable (rgb array) -> boxes, got {type(detector).__name__}")
    try:
        raw = detector(rgb)
    except StarGANError:
        raise
    except Exception as e:
        raise FaceDetectorError(f"face detector {type(detector).__name__} failed: {_first_line(e)}") from e
    height, width = rgb.shape[:2]
    boxes = [_checked_box(b, width, height) for b in _rows(raw)]
    return sorted((b for b in boxes if b is not None), key=lambda b: (b.x, b.y))


def _rows(raw: Any) -> list[Any]:
    if raw is None:
        return []
    try:
        return list(raw)
    except TypeError as e:
        raise FaceDetectorError(f"a detector must return a list of (x, y, w, h) boxes, got {raw!r}") from e


def _checked_box(row: Any, width: int, height: int) -> FaceBox | None:
    """The box in whole pixels, None when it lies entirely outside the photo.

    A box reaching past the border is kept as it is (not clipped): clipping would move the face centre.
    """
    try:
        x, y, w, h = (float(v) for v in row)
    except (TypeError, ValueError) as e:
        raise FaceDetectorError(f"a detector box must be 4 numbers (x, y, w, h), got {row!r}") from e
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise FaceDetectorError(f"a detector box needs finite values and w, h > 0, got {row!r}")
    box = FaceBox(round(x), round(y), max(1, round(w)), max(1, round(h)))
    if box.x >= width or box.y >= height or box.x + box.w <= 0 or box.y + box.h <= 0:
        return None
    return box
