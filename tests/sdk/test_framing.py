"""The `auto` framing rule (stargan_sdk.photo.framing), branch by branch, with detectors that answer what we choose.

Usage: pytest -q tests/sdk/test_framing.py
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from stargan_sdk.errors import BackendUnavailableError, FaceDetectorError
from stargan_sdk.photo.framing import Framing, is_aligned_shape


def noise(width: int, height: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(width * height).integers(0, 256, (height, width, 3), np.uint8))


@pytest.mark.parametrize(
    ("size", "boxes", "why", "whole"),
    [
        ((178, 218), [(40, 70, 100, 100)], "fills", True),  # crop side 190 >= 0.6 * 178
        ((512, 512), [(200, 100, 90, 90)], "faces", False),  # crop side 171 < 0.6 * 512: a photo
        ((512, 512), [(200, 100, 90, 90), (10, 10, 200, 200)], "fills", True),  # the largest face decides
        ((178, 218), [], "aligned", True),  # CelebA's aligned shape (and stargan-train toyfaces')
        ((178, 178), [], "aligned", True),  # its centre square (the shipped example face)
        ((64, 64), [], "aligned", True),  # the model's own size
        ((65, 65), [], "no-face", False),  # another square: a photo without a face
        ((218, 178), [], "no-face", False),  # CelebA's shape turned sideways is not it
    ],
)
def test_the_rule(size: tuple[int, int], boxes: list, why: str, whole: bool) -> None:
    framing = Framing(detector=lambda rgb: boxes, model_size=64)
    choice = framing.choose(noise(*size))
    assert (choice.why, choice.whole, len(choice.faces)) == (why, whole, len(boxes))
    assert framing.edit_whole(noise(*size)) is whole


def test_a_missing_detector_is_said_once_and_the_shape_decides() -> None:
    def no_opencv(rgb):
        raise BackendUnavailableError("face detection needs OpenCV 4.x: pip install 'stargan[photo]'")

    notes: list[str] = []
    framing = Framing(note=notes.append, detector=no_opencv, model_size=64)
    first, second = framing.choose(noise(178, 218)), framing.choose(noise(300, 200))
    assert (first.why, first.whole, second.why, second.whole) == ("aligned", True, "no-face", False)
    assert first.detector_missing == second.detector_missing != ""
    assert notes == [
        "note: face detection needs OpenCV 4.x: pip install 'stargan[photo]'; without a face detector, "
        "images of an aligned shape are edited whole and others need --crop"
    ]


def test_a_callers_detector_that_fails_is_the_callers_error() -> None:
    def broken(rgb):
        raise RuntimeError("model file damaged")

    with pytest.raises(FaceDetectorError, match="model file damaged"):
        Framing(detector=broken, model_size=64).choose(noise(178, 218))


def test_aligned_shapes() -> None:
    assert is_aligned_shape((178, 218), 128) and is_aligned_shape((128, 128), 128)
    assert not is_aligned_shape((256, 256), 128) and not is_aligned_shape((179, 218), 128)
