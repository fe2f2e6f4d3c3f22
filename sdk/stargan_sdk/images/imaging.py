"""Pre- and post-processing between user images (PIL, uint8 numpy) and the engine's float32 NCHW [-1, 1].

Usage: rgb, meta = to_model_rgb(image, 128); x = preprocess([rgb]); edited = restore(postprocess(y)[0], meta)

Conventions (documented in Translator.translate too):
- Images are edited as the model was trained: the largest centred square (CelebA's centre crop: 178x178 of
  an aligned 178x218 face) is resized to the model size (bilinear), and the result is resized back
  (bicubic) and put back in place, so the caller gets an image of its own size. Square images are edited
  whole. Photos where the face is small go through `Translator.translate_photo`, which finds the face.
- A PIL image's EXIF orientation is applied first: the result is upright, as viewers show the input.
- Transparency is composited on white before the model sees it, and the original alpha is re-attached
  to the result. Greyscale comes back greyscale; palette, 1-bit, CMYK and YCbCr images come back RGB.
- 16-bit and 32-bit greyscale (I;16, I, F) are scaled to 8 bits as the photo pipeline does, and the edited
  pixels come back in the image's own mode (`stargan_sdk.images.modes`).
- Images above MAX_IMAGE_PIXELS are refused from their size, before a lazily opened file is decoded; a
  truncated or corrupt file raises ImageInputError.
- uint8 is exact: preprocess followed by postprocess returns the same bytes.
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from stargan_sdk.bundle.constants import NORM_MEAN, NORM_STD
from stargan_sdk.errors import ImageInputError
from stargan_sdk.host.files import atomic_write_bytes
from stargan_sdk.images.modes import HIGH_DEPTH_MODES, PhotoCodec

MAX_IMAGE_PIXELS = 64_000_000  # one cap for translate(), the photo pipeline and the CLI: 64 MP is 192 MB as RGB
# PNG zlib level of every image we write. Level 1 encodes a 178x178 face ~5x faster than PIL's default 6 (2 ms vs
# 10 ms on one core) for files ~17% larger (benchmarks/pipeline.py --png-levels); PNG stays lossless either way, and
# at 6 encoding alone costs a 2-core CPU more than the engine does (README, "Folders of files").
PNG_LEVEL = 1
# ...and zlib's RLE strategy at every level: on faces and photos it encodes as fast as level 1 with the default
# strategy and as small as level 6 (100 edited 178x178 faces, one core: 1.4 vs 1.6 ms, 25.0 vs 29.6 kB; level 6
# 24.7 kB at 5.8 ms), since PNG's row filters already leave little for longer matches to find. Flat synthetic
# graphics compress better with the default strategy; we write photos.
PNG_STRATEGY = zlib.Z_RLE

_RETURN_MODE = {"L": "L", "LA": "LA", "RGB": "RGB", "RGBA": "RGBA", "PA": "RGBA"}
_ACCEPTED_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr")
_EXIF_ORIENTATION = 0x0112
_NO_LA = {"BMP": "RGBA", "PPM": "L"}


@dataclass(frozen=True)
class ImageMeta:
    """How to give a result back in the form the caller passed in."""

    kind: str  # "pil" | "numpy"
    size: int  # side of the square that was edited
    mode: str  # PIL mode to return ("L", "LA", "RGB", "RGBA"); for numpy the matching channel layout
    alpha: np.ndarray | None  # uint8 [H, W] to re-attach
    shape: tuple[int, ...] = ()  # numpy input shape
    full: np.ndarray | None = None  # uint8 RGB [H, W, 3] of a non-square input, to put the edited square back in
    offset: tuple[int, int] = (0, 0)  # (top, left) of the edited square in `full`
    deep: tuple[PhotoCodec, np.ndarray] | None = None  # high-bit-depth greyscale: its codec and 8-bit RGB view


class Normalizer:
    """Affine uint8 <-> float maps from the manifest's mean/std (per channel).

    Args:
        mean: per-channel mean in [0, 1] units.
        std: per-channel std in [0, 1] units.
    """

    def __init__(self, mean: Sequence[float] = NORM_MEAN, std: Sequence[float] = NORM_STD) -> None:
        m, s = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        if m.shape != (3,) or s.shape != (3,) or np.any(s <= 0):
            raise ImageInputError(f"normalisation needs 3 means and 3 positive stds, got {mean} / {std}")
        # x = v * scale + shift, with v the uint8 value; shapes broadcast over [N, 3, H, W].
        self.scale = (1.0 / (255.0 * s)).reshape(1, 3, 1, 1).astype(np.float32)
        self.shift = (-m / s).reshape(1, 3, 1, 1).astype(np.float32)
        self.out_scale = (255.0 * s).reshape(1, 3, 1, 1).astype(np.float32)  # exact for std 0.5: 127.5
        self.out_shift = (255.0 * m).reshape(1, 3, 1, 1).astype(np.float32)

    @classmethod
    def of_manifest(cls, manifest: Any) -> Normalizer:
        """The normalisation a bundle's manifest records (`manifest.normalization`: mean and std)."""
        return cls(manifest.normalization["mean"], manifest.normalization["std"])

    def preprocess_into(self, images: np.ndarray | Sequence[np.ndarray], out: np.ndarray) -> np.ndarray:
        """Write uint8 HWC RGB images at model size into `out[:n]` (float32 NCHW, e.g. a pinned buffer)."""
        batch = images if isinstance(images, np.ndarray) else np.stack(images)
        n = batch.shape[0]
        if out.dtype != np.float32 or out.ndim != 4 or out.shape[0] < n or out.shape[1:] != (3, *batch.shape[1:3]):
            raise ImageInputError(
                f"output buffer {out.dtype}{list(out.shape)} cannot hold {n} images of {batch.shape[1:]}"
            )
        dst = out[:n]
        np.multiply(batch.transpose(0, 3, 1, 2), self.scale, out=dst)  # uint8 -> float32 in one pass
        dst += self.shift
        return dst

    def preprocess(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        batch = images if isinstance(images, np.ndarray) else np.stack(images)
        out = np.empty((batch.shape[0], 3, batch.shape[1], batch.shape[2]), np.float32)
        return self.preprocess_into(batch, out)

    def postprocess(self, outputs: np.ndarray) -> np.ndarray:
        """float32 NCHW model outputs -> uint8 NHWC, rounding halves up as torchvision's save_image."""
        v = outputs * self.out_scale + self.out_shift
        return np.clip(np.floor(v + 0.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1).copy()


def _composite_on_white(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.rint(rgb).astype(np.uint8), rgba[..., 3].copy()


# The image files a folder run reads (the CLIs, INT8 calibration): what PIL decodes and people keep faces in.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def check_pixels(width: int, height: int, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """ImageInputError for an empty image or one above `max_pixels` (checked from the size, before decoding)."""
    if width < 1 or height < 1:
        raise ImageInputError(f"empty image ({width}x{height} pixels)")
    if width * height > max_pixels:
        raise ImageInputError(
            f"image of {width}x{height} = {width * height / 1e6:.1f} megapixels exceeds the limit of "
            f"{max_pixels / 1e6:.0f} (decompression bomb?); downscale it or raise max_pixels"
        )


def upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation tag says (the image itself when it needs no turn).

    An EXIF block that cannot be parsed has no orientation to apply: the image is used as stored, as
    viewers show it.
    """
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001  PIL's EXIF parser raises many types on a malformed block
        return image
    if orientation == 1:
        return image
    try:
        return ImageOps.exif_transpose(image)
    except Exception as e:  # noqa: BLE001  PIL's EXIF parser raises many types on a malformed block
        raise ImageInputError(f"cannot read or apply the image's EXIF orientation: {e}") from e


def _decoded(image: Image.Image, max_pixels: int) -> Image.Image:
    """The image decoded and upright; a lazily opened file is sized before its pixels are read."""
    check_pixels(image.width, image.height, max_pixels)
    try:
        image.load()
    except Exception as e:  # noqa: BLE001  PIL's decoders raise many types (OSError: truncated) on bad data
        raise ImageInputError(f"truncated or corrupt image ({type(e).__name__}: {e})") from e
    return upright(image)


def _pil_to_rgb(image: Image.Image) -> tuple[np.ndarray, str, np.ndarray | None]:
    if image.mode not in _ACCEPTED_MODES:
        raise ImageInputError(
            f"PIL images of mode {image.mode!r} are not supported (modes: {', '.join(_ACCEPTED_MODES)} and "
            f"greyscale {', '.join(sorted(HIGH_DEPTH_MODES))}); convert first, e.g. image.convert('RGB')"
        )
    mode = _RETURN_MODE.get(image.mode, "RGB")
    has_alpha = image.mode in ("LA", "PA", "RGBA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgb, alpha = _composite_on_white(np.asarray(image.convert("RGBA")))
        return rgb, ("RGBA" if mode == "RGB" else mode), alpha
    return np.asarray(image.convert("RGB")), mode, None


def _numpy_to_rgb(array: np.ndarray) -> tuple[np.ndarray, str, np.ndarray | None]:
    if array.dtype != np.uint8:
        raise ImageInputError(
            f"numpy images must be uint8 (0-255), got {array.dtype}; convert with "
            f"(x * 255).round().astype(np.uint8), or pass normalised float32 NCHW arrays to Translator.infer"
        )
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 1):
        grey = array.reshape(array.shape[:2])
        return np.repeat(grey[..., None], 3, axis=2), "L", None
    if array.ndim == 3 and array.shape[2] == 3:
        return array, "RGB", None
    if array.ndim == 3 and array.shape[2] == 4:
        rgb, alpha = _composite_on_white(array)
        return rgb, "RGBA", alpha
    raise ImageInputError(f"numpy images must be HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA), got shape {array.shape}")


def to_model_rgb(image: Any, image_size: int, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[np.ndarray, ImageMeta]:
    """uint8 RGB [image_size, image_size, 3] for the model, and how to give the result back."""
    deep = None
    if isinstance(image, Image.Image):
        image = _decoded(image, max_pixels)
        if image.mode == "RGB" and image.width == image.height > 0:
            return _square_rgb(image, image_size)
        if image.mode in HIGH_DEPTH_MODES:  # as the photo path: scaled to 8 bits, edited pixels scaled back
            codec = PhotoCodec(image)
            rgb, mode, alpha = codec.to_rgb(), codec.mode, None
            deep = (codec, rgb)
        else:
            rgb, mode, alpha = _pil_to_rgb(image)
        kind, shape = "pil", ()
    elif isinstance(image, np.ndarray):
        rgb, mode, alpha = _numpy_to_rgb(image)
        kind, shape = "numpy", image.shape
    else:
        raise ImageInputError(f"expected a PIL image or a uint8 numpy array, got {type(image).__name__}")
    h, w = rgb.shape[:2]
    if h == 0 or w == 0:
        raise ImageInputError(f"image is empty ({w}x{h})")
    check_pixels(w, h, max_pixels)
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    full = np.ascontiguousarray(rgb) if h != w else None
    square = rgb[top : top + side, left : left + side]
    if side != image_size:
        square = np.asarray(
            Image.fromarray(np.ascontiguousarray(square)).resize((image_size, image_size), Image.Resampling.BILINEAR)
        )
    return np.ascontiguousarray(square), ImageMeta(kind, side, mode, alpha, shape, full, (top, left), deep)


def _square_rgb(image: Image.Image, image_size: int) -> tuple[np.ndarray, ImageMeta]:
    """`to_model_rgb` of a square RGB PIL image (an aligned face: the pipeline's common case), without the
    array round trips: PIL resizes the image itself. Same pixels as the general path (the same resize of the
    same bytes), ~0.15 ms less a 178 px face."""
    small = image if image.width == image_size else image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(small), ImageMeta("pil", image.width, "RGB", None, (), None, (0, 0), None)


def restore(rgb: np.ndarray, meta: ImageMeta) -> Any:
    """The model's uint8 RGB result in the caller's form: same type, size and (where sensible) mode."""
    if meta.kind == "pil" and meta.mode == "RGB" and meta.alpha is None and meta.full is None and meta.deep is None:
        # The common case (an RGB face): PIL resizes, no array round trips (~0.25 ms less a 178 px face).
        pil = Image.fromarray(rgb)
        return pil if rgb.shape[0] == meta.size else pil.resize((meta.size, meta.size), Image.Resampling.BICUBIC)
    if rgb.shape[0] != meta.size:
        rgb = np.asarray(Image.fromarray(rgb).resize((meta.size, meta.size), Image.Resampling.BICUBIC))
    if meta.full is not None:  # a non-square input: the edited centre square goes back into the whole image
        top, left = meta.offset
        whole = meta.full.copy()
        whole[top : top + meta.size, left : left + meta.size] = rgb
        rgb = whole
    if meta.deep is not None:
        codec, source = meta.deep
        return codec.encode(source, rgb, [(0, 0, rgb.shape[1], rgb.shape[0])])
    if meta.mode in ("L", "LA"):
        channels = [np.asarray(Image.fromarray(rgb).convert("L"))]
    else:
        channels = [rgb[..., i] for i in range(3)]
    if meta.alpha is not None:
        channels.append(meta.alpha)
    out = np.stack(channels, axis=-1) if len(channels) > 1 else channels[0]
    if meta.kind == "numpy":
        return out.reshape(meta.shape) if len(meta.shape) == 2 or meta.shape[-1] == 1 else out
    return Image.fromarray(out)  # HxW -> L, x2 -> LA, x3 -> RGB, x4 -> RGBA


def center_crop(image: Any) -> Any:
    """The largest centred square of a PIL image or HWC numpy array (CelebA-style framing)."""
    if isinstance(image, Image.Image):
        w, h = image.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        return image.crop((left, top, left + s, top + s))
    if isinstance(image, np.ndarray) and image.ndim in (2, 3):
        h, w = image.shape[:2]
        s = min(w, h)
        top, left = (h - s) // 2, (w - s) // 2
        return image[top : top + s, left : left + s].copy()
    raise ImageInputError(f"center_crop expects a PIL image or an HxW[xC] numpy array, got {type(image).__name__}")


def save_image(image: Image.Image | np.ndarray, path: str | os.PathLike[str], png_level: int = PNG_LEVEL) -> Path:
    """Save atomically (temp file + rename), the format taken from the suffix; PNGs at zlib level `png_level`."""
    path = Path(path)
    return atomic_write_bytes(path, image_bytes(image, path.name, png_level))


def image_bytes(image: Image.Image | np.ndarray, name: str, png_level: int = PNG_LEVEL) -> bytes:
    """The file `save_image` would write for `name`, as bytes: for writers that are not a local file system, and
    for the pipeline, which encodes on its CPU threads and writes on its I/O threads (one write of the whole file
    also costs less than PIL's many small ones: 0.5 vs 0.9 ms a JPEG face)."""
    pil, fmt = _for_format(image, name)
    if not (isinstance(png_level, int) and not isinstance(png_level, bool) and 0 <= png_level <= 9):
        raise ImageInputError(f"png_level must be 0..9 (zlib), got {png_level!r}")
    buffer = io.BytesIO()
    options = {"compress_level": png_level, "compress_type": PNG_STRATEGY} if fmt == "PNG" else {}
    pil.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _for_format(image: Image.Image | np.ndarray, name: str) -> tuple[Image.Image, str]:
    """The image in a mode the format named by `name`'s suffix can hold, and that format."""
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    fmt = Image.registered_extensions().get(Path(name).suffix.lower())
    if fmt is None:
        raise ImageInputError(f"cannot tell the image format from {name!r}; use .png or .jpg")
    if pil.mode in HIGH_DEPTH_MODES and not (fmt == "TIFF" or (fmt == "PNG" and pil.mode != "F")):
        # 8-bit formats: scaled as on the way in (PIL's own conversion clips 16-bit values to white)
        pil = Image.fromarray(PhotoCodec(pil).to_rgb()[..., 0])
    if fmt == "JPEG" and pil.mode not in ("RGB", "L"):
        pil = pil.convert("RGB")  # JPEG has no alpha
    elif pil.mode == "LA" and fmt in _NO_LA:
        pil = pil.convert(_NO_LA[fmt])  # formats without grey + alpha: keep what they can hold
    return pil, fmt
