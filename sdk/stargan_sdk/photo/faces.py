"""Photo pipeline: find the faces in an ordinary photo, edit each one at the model's size, blend it back.

Usage: out = translate_photo(translator, open_photo("me.jpg"), {"Blond_Hair": 1})

Framing follows CelebA, the data the models are trained on: its aligned 178x218 images, centre-cropped
to 178x178, show the whole face with forehead, hair and chin, eyes at about 0.51 and mouth at about 0.74
of the side (CelebA's aligned landmarks: eye line y~111, mouth y~152, minus the 20-pixel crop). A Haar box
spans brow to just below the mouth with the eyes at about 0.38 of its height, so the square crop is
(1 + 2 * margin) = 1.9 times the box and centred CELEBA_SHIFT = 0.14 box heights above the box centre.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from stargan_sdk.errors import ImageInputError, NoFaceFoundError, OptionError
from stargan_sdk.images.imaging import MAX_IMAGE_PIXELS, check_pixels, upright
from stargan_sdk.images.modes import PhotoCodec
from stargan_sdk.photo.face_detect import Detector, FaceBox, HaarDetector, run_detector

MAX_PHOTO_PIXELS = MAX_IMAGE_PIXELS  # the same cap as translate() and the CLI
CELEBA_MARGIN = 0.45  # crop side = (1 + 2 * margin) * box side
CELEBA_SHIFT = 0.14  # crop centre sits this many box heights above the box centre
DEFAULT_FEATHER = 0.15  # the blend ramps from 0 to 1 over this fraction of the crop side
NO_FACE_ACTIONS = ("raise", "return")


class CropBox(NamedTuple):
    """A square crop in photo pixels; it may reach past the photo's borders."""

    left: int
    top: int
    side: int


def open_photo(path: str | Path, *, max_pixels: int = MAX_PHOTO_PIXELS) -> Image.Image:
    """Open and decode an image file, refusing decompression bombs before decoding them.

    The EXIF orientation is left in place; `translate_photo`, `detect_faces` and `translate` apply it.
    Raises ImageInputError for a missing, unreadable or oversized file.
    """
    try:
        with warnings.catch_warnings():  # our own limit below is lower and says what to do
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except FileNotFoundError as e:
        raise ImageInputError(f"no such photo: {path}") from e
    except Image.DecompressionBombError as e:
        raise ImageInputError(f"{path}: refused as a decompression bomb ({e})") from e
    except (UnidentifiedImageError, OSError) as e:
        raise ImageInputError(f"{path}: not a readable image ({e})") from e
    except Exception as e:  # noqa: BLE001  a plugin may fail on a malformed header with any type
        raise ImageInputError(f"{path}: not a readable image ({type(e).__name__}: {e})") from e
    try:
        check_pixels(image.width, image.height, max_pixels)  # from the header, before any pixel is decoded
        image.load()
    except ImageInputError:
        image.close()
        raise
    except Exception as e:  # noqa: BLE001  PIL's decoders raise many types on malformed data
        image.close()
        raise ImageInputError(f"{path}: truncated or corrupt image ({type(e).__name__}: {e})") from e
    return image


def detect_faces(
    photo: Image.Image | np.ndarray, *, detector: Detector | None = None, max_pixels: int = MAX_PHOTO_PIXELS
) -> list[FaceBox]:
    """The faces in `photo` (after EXIF orientation), sorted left to right, then top to bottom."""
    codec, _ = _decode(photo, max_pixels)
    return run_detector(detector or default_detector(), codec.to_rgb())


_DETECTOR_LOCK = threading.Lock()
_PER_THREAD = threading.local()


def default_detector() -> HaarDetector:
    """The Haar detector of this thread: loading the cascade costs more than a detection on a small photo, so
    it is kept; one per thread, as one OpenCV CascadeClassifier used from two threads at once misses faces (the
    pipeline's workers detect in parallel). Made under a lock: OpenCV's first import is not thread-safe."""
    detector = getattr(_PER_THREAD, "haar", None)
    if detector is None:
        with _DETECTOR_LOCK:
            detector = _PER_THREAD.haar = HaarDetector()
    return detector


def _forget_detectors() -> None:
    """Drop the cached detector (tests change how OpenCV loads); other threads' ones end with their threads."""
    _PER_THREAD.__dict__.pop("haar", None)


default_detector.cache_clear = _forget_detectors  # type: ignore[attr-defined]


def celeba_crop_box(box: FaceBox, margin: float = CELEBA_MARGIN) -> CropBox:
    """The CelebA-like square crop around a detected face box (see the module docstring for the factors)."""
    x, y, w, h = box
    side = max(2, round(max(w, h) * (1.0 + 2.0 * margin)))
    cx = x + w / 2.0
    cy = y + h / 2.0 - CELEBA_SHIFT * h
    return CropBox(round(cx - side / 2.0), round(cy - side / 2.0), side)


def feather_mask(side: int, feather: float = DEFAULT_FEATHER) -> np.ndarray:
    """float32 [side, side] blend weights: exactly 0 on the crop's outer ring, rising smoothly to 1.

    The rise is a smoothstep over `feather * side` pixels (slope at most 1.5 / ramp), so an edited crop
    shows no step at its border; feather 0 pastes the crop with a hard edge.
    """
    if feather <= 0.0:
        return np.ones((side, side), np.float32)
    ramp = max(1.0, feather * side)
    i = np.arange(side, dtype=np.float32)
    t = np.clip(np.minimum(i, side - 1 - i) / ramp, 0.0, 1.0)
    edge = t * t * (3.0 - 2.0 * t)
    return np.outer(edge, edge).astype(np.float32)


class PhotoPlan(NamedTuple):
    """A photo ready for the engine: its faces cropped at the model size, and what pasting them back needs.

    `faces` are all cut from the original pixels, so the faces of many photos can go to the engine in one
    batch (the pipeline does); `paste(edited)` blends the edited faces back in order.
    """

    codec: PhotoCodec
    rgb: np.ndarray
    crops: list[CropBox]
    faces: list[np.ndarray]  # uint8 [size, size, 3], one per crop
    shape: tuple[int, ...] | None  # the numpy shape to return, None for a PIL photo
    feather: float

    def paste(self, edited: list[np.ndarray]) -> Image.Image | np.ndarray:
        """The whole photo with `edited` (one uint8 RGB model-size face per crop) blended in, in its own mode."""
        canvas = self.rgb.copy()
        for crop, face in zip(self.crops, edited, strict=True):
            _blend(canvas, crop, face, self.feather)
        result = self.codec.encode(self.rgb, canvas, [_clip(c, self.rgb.shape) for c in self.crops])
        return result if self.shape is None else np.asarray(result).reshape(self.shape).copy()


def plan_photo(
    photo: Image.Image | np.ndarray,
    size: int,
    *,
    face_index: int | None = None,
    on_no_face: str = "raise",
    detector: Detector | None = None,
    margin: float = CELEBA_MARGIN,
    feather: float = DEFAULT_FEATHER,
    max_pixels: int = MAX_PHOTO_PIXELS,
) -> PhotoPlan:
    """Decode, detect and crop (the CPU half of `translate_photo`, run in the pipeline's workers)."""
    _check_options(on_no_face, margin, feather)
    codec, shape = _decode(photo, max_pixels)
    rgb = codec.to_rgb()
    faces = run_detector(detector or default_detector(), rgb)
    if not faces:
        if on_no_face == "raise":
            raise NoFaceFoundError(
                "no face found in the photo; pass a face box through detector=, or on_no_face='return'"
            )
        faces, face_index = [], None  # nothing to edit, whatever face was asked for
    crops = [c for c in (celeba_crop_box(face, margin) for face in _pick(faces, face_index)) if _inside(c, rgb.shape)]
    return PhotoPlan(codec, rgb, crops, [_model_face(rgb, c, size) for c in crops], shape, feather)


def translate_photo(
    translator: Any,
    photo: Image.Image | np.ndarray,
    changes: Mapping[str, Any] | None = None,
    *,
    original: Any = None,
    face_index: int | None = None,
    on_no_face: str = "raise",
    detector: Detector | None = None,
    margin: float = CELEBA_MARGIN,
    feather: float = DEFAULT_FEATHER,
    max_pixels: int = MAX_PHOTO_PIXELS,
) -> Image.Image | np.ndarray:
    """Edit every face (or face `face_index`) of a photo and return the whole photo.

    PIL in, PIL out, of the same size and mode, in the EXIF-corrected orientation (the returned image is
    upright; its pixels are those of `ImageOps.exif_transpose`). Any mode works: editing happens in RGB and
    changed pixels are converted back; RGBA and LA keep their alpha, palette images keep their palette
    (nearest colour, no dither), palette images with transparency come back as RGBA. A uint8 numpy array
    (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) comes back as a new array of the same shape.

    Each face is cropped CelebA-style from the original photo and resized to `translator.image_size`; all
    faces are edited in one batch (`translator.edit_rgb`, or `translate(crop, changes, original=...)` face
    by face for a translator without it), resized back and blended in with a feathered mask, left to right
    (where crops overlap, the later face's blend lies on top). Crops reaching past the border are
    reflect-padded so the face stays centred, and only their in-photo part is pasted back. Pixels outside
    every crop are returned bit-identical.

    Args:
        translator: anything with `image_size` (int) and `translate(image, changes, original=...)`.
        photo: a PIL image or uint8 numpy array.
        changes: attribute name -> target value, passed to the translator unchanged.
        original: the source attributes, passed to the translator unchanged.
        face_index: edit only this face; faces are sorted left to right (then top to bottom).
        on_no_face: "raise" (NoFaceFoundError) or "return" (the photo unchanged).
        detector: a callable (rgb uint8 HWC) -> [(x, y, w, h), ...]; default: OpenCV's Haar cascade.
        margin: crop margin on each side, as a fraction of the face box.
        feather: blend ramp, as a fraction of the crop side, in [0, 0.5].
        max_pixels: larger photos raise ImageInputError.
    """
    size = _model_size(translator)
    plan = plan_photo(
        photo,
        size,
        face_index=face_index,
        on_no_face=on_no_face,
        detector=detector,
        margin=margin,
        feather=feather,
        max_pixels=max_pixels,
    )
    return plan.paste(_edit_faces(translator, plan.faces, dict(changes or {}), original, size))


def _edit_faces(translator: Any, faces: list[np.ndarray], changes: dict, original: Any, size: int) -> list[np.ndarray]:
    if not faces:
        return []
    if callable(getattr(translator, "edit_rgb", None)):  # a Translator: every face in one engine call
        return list(translator.edit_rgb(faces, changes, original=original))
    return [_rgb_array(translator.translate(Image.fromarray(f), changes, original=original), size) for f in faces]


def _check_options(on_no_face: str, margin: float, feather: float) -> None:
    if not isinstance(on_no_face, str) or on_no_face not in NO_FACE_ACTIONS:
        raise OptionError(f"on_no_face must be one of {', '.join(map(repr, NO_FACE_ACTIONS))}, got {on_no_face!r}")
    if not 0.0 <= margin <= 4.0:
        raise OptionError(f"margin must be in [0, 4] (a fraction of the face box), got {margin}")
    if not 0.0 <= feather <= 0.5:
        raise OptionError(f"feather must be in [0, 0.5] (a fraction of the crop side), got {feather}")


def _model_size(translator: Any) -> int:
    size = getattr(translator, "image_size", None)
    if not isinstance(size, int) or size < 1 or not callable(getattr(translator, "translate", None)):
        raise TypeError("translator needs an int `image_size` and a `translate(image, changes, original=)` method")
    return size


def _decode(photo: Any, max_pixels: int) -> tuple[PhotoCodec, tuple[int, ...] | None]:
    """The photo as a codec (upright PIL image), and the numpy shape to return (None for PIL input)."""
    if isinstance(photo, np.ndarray):
        ok = photo.ndim == 2 or (photo.ndim == 3 and photo.shape[2] in (1, 3, 4))
        if photo.dtype != np.uint8 or not ok:
            raise ImageInputError(
                "a numpy photo must be uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); "
                f"got {photo.dtype} {photo.shape}"
            )
        check_pixels(photo.shape[1], photo.shape[0], max_pixels)
        squeezed = photo[:, :, 0] if photo.ndim == 3 and photo.shape[2] == 1 else photo
        return PhotoCodec(Image.fromarray(np.ascontiguousarray(squeezed))), photo.shape
    if not isinstance(photo, Image.Image):
        raise ImageInputError(f"a photo must be a PIL image or a uint8 numpy array, got {type(photo).__name__}")
    check_pixels(photo.width, photo.height, max_pixels)
    return PhotoCodec(upright(photo)), None


def _pick(faces: list[FaceBox], face_index: int | None) -> list[FaceBox]:
    if face_index is None:
        return faces
    if isinstance(face_index, bool) or not isinstance(face_index, int) or not 0 <= face_index < len(faces):
        raise ImageInputError(
            f"face_index {face_index!r} is out of range: {len(faces)} face(s) found, indexed 0.. left to right"
        )
    return [faces[face_index]]


def _clip(crop: CropBox, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The in-photo part of a crop as a PIL box (x0, y0, x1, y1); may be empty."""
    height, width = shape[:2]
    x0, y0 = min(max(crop.left, 0), width), min(max(crop.top, 0), height)
    return x0, y0, max(x0, min(crop.left + crop.side, width)), max(y0, min(crop.top + crop.side, height))


def padded_crop(rgb: np.ndarray, crop: CropBox) -> np.ndarray:
    """The square crop; parts outside the photo are mirrored in, so the face keeps its place in the crop."""
    x0, y0, x1, y1 = _clip(crop, rgb.shape)
    inner = rgb[y0:y1, x0:x1]
    pads = ((y0 - crop.top, crop.top + crop.side - y1), (x0 - crop.left, crop.left + crop.side - x1), (0, 0))
    if not any(p for pair in pads for p in pair):
        return inner
    mode = "reflect" if min(inner.shape[:2]) > 1 else "edge"
    return np.pad(inner, pads, mode=mode)


def _inside(crop: CropBox, shape: tuple[int, ...]) -> bool:
    x0, y0, x1, y1 = _clip(crop, shape)
    return x1 > x0 and y1 > y0


def _model_face(rgb: np.ndarray, crop: CropBox, size: int) -> np.ndarray:
    """The crop from the original pixels at the model size, uint8 RGB."""
    face = Image.fromarray(np.ascontiguousarray(padded_crop(rgb, crop)))
    if crop.side != size:
        face = face.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(face)


def _blend(canvas: np.ndarray, crop: CropBox, face: np.ndarray, feather: float) -> None:
    """Resize one edited model-size face back to its crop and blend it into `canvas` (uint8 RGB, in place)."""
    x0, y0, x1, y1 = _clip(crop, canvas.shape)
    back = Image.fromarray(face)
    if crop.side != face.shape[0]:
        back = back.resize((crop.side, crop.side), Image.Resampling.BICUBIC)
    inside = (slice(y0 - crop.top, y1 - crop.top), slice(x0 - crop.left, x1 - crop.left))
    weight = feather_mask(crop.side, feather)[inside][:, :, None]
    old = canvas[y0:y1, x0:x1].astype(np.float32)
    new = np.asarray(back, dtype=np.float32)[inside]
    # Where the weight is 0 this is exactly `old`, so pixels on and outside the crop border stay bit-identical.
    canvas[y0:y1, x0:x1] = np.clip(np.rint(old + (new - old) * weight), 0, 255).astype(np.uint8)


def _rgb_array(image: Any, size: int) -> np.ndarray:
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != (size, size, 3):
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ImageInputError(f"the translator must return a {size}x{size} RGB uint8 image, got {got}")
    return image
