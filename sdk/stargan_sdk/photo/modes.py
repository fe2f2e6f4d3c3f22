"""Any PIL image mode to RGB for editing, and the edited pixels back into the photo's own mode.

Usage: codec = PhotoCodec(image); rgb = codec.to_rgb(); out = codec.encode(rgb, edited, [box, ...])

Only pixels that the edit changed are converted back, so every other pixel (values, palette indices,
alpha) is returned bit-identical whatever the mode.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from stargan_sdk.errors import ImageInputError

# Modes that survive RGB -> mode conversion well enough to be returned as they came.
_ROUND_TRIP = {"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "HSV"}
_HIGH_DEPTH = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601-2, as PIL's RGB -> L


class PhotoCodec:
    """Converts one photo to RGB and edited RGB pixels back to the photo's mode.

    Args:
        image: the upright photo, in any mode.
    """

    def __init__(self, image: Image.Image) -> None:
        self.image = image
        self.base = _output_base(image)
        self.grey_scale = _grey_scale(image)

    @property
    def mode(self) -> str:
        """The mode the photo is returned in."""
        return self.base.mode

    def to_rgb(self) -> np.ndarray:
        """The photo as a new uint8 [H, W, 3] RGB array (alpha dropped, palette expanded)."""
        if self.grey_scale:
            grey = np.asarray(self.image, dtype=np.float32) / self.grey_scale
            grey8 = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
            return np.repeat(grey8[:, :, None], 3, axis=2)
        try:
            return np.array(self.image.convert("RGB"))
        except (ValueError, OSError) as e:
            raise ImageInputError(f"cannot convert a {self.image.mode} photo to RGB: {e}") from e

    def encode(self, rgb: np.ndarray, edited: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> Image.Image:
        """The photo in `self.mode` with the pixels that differ between `rgb` and `edited` replaced.

        Only the `boxes` (x0, y0, x1, y1) are compared: callers promise nothing changed outside them.
        """
        if self.grey_scale:
            return self._encode_grey(rgb, edited, boxes)
        out = self.base.copy()
        out.info = dict(self.image.info)
        for x0, y0, x1, y1 in boxes:
            patch = edited[y0:y1, x0:x1]
            changed = np.any(patch != rgb[y0:y1, x0:x1], axis=2)
            if changed.any():
                mask = Image.fromarray(changed.astype(np.uint8) * 255)
                out.paste(self._patch(np.ascontiguousarray(patch), (x0, y0, x1, y1)), (x0, y0), mask)
        return out

    def _encode_grey(self, rgb: np.ndarray, edited: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> Image.Image:
        """High-bit-depth greyscale, merged in numpy: Pillow's paste garbles 16-bit modes at an offset."""
        values = np.array(self.base)
        for x0, y0, x1, y1 in boxes:
            patch = edited[y0:y1, x0:x1]
            changed = np.any(patch != rgb[y0:y1, x0:x1], axis=2)
            grey = patch.astype(np.float32) @ _LUMA * self.grey_scale
            new = grey if values.dtype.kind == "f" else np.rint(grey)
            values[y0:y1, x0:x1][changed] = new[changed].astype(values.dtype)
        # np.array(image) has the mode's raw memory layout (endianness included), so the bytes go straight back.
        out = Image.frombytes(self.mode, self.base.size, np.ascontiguousarray(values).tobytes())
        out.info = dict(self.image.info)
        return out

    def _patch(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> Image.Image:
        """An RGB patch converted to `self.mode`; alpha comes from the photo at `box`."""
        mode = self.mode
        image = Image.fromarray(rgb)
        if mode in ("RGBA", "LA"):
            image.putalpha(self.base.getchannel("A").crop(box))
            return image.convert(mode)
        if mode == "P":
            return image.quantize(palette=self.base, dither=Image.Dither.NONE)
        if mode == "1":
            return image.convert("1", dither=Image.Dither.NONE)
        return image.convert(mode)


def _output_base(image: Image.Image) -> Image.Image:
    """The photo in the mode it will be returned in."""
    mode = image.mode
    if mode == "P" and "transparency" in image.info:
        # A palette cannot hold new colours together with its transparent entry reliably: return RGBA.
        return image.convert("RGBA")
    if mode == "P" and image.palette is not None and image.palette.mode != "RGB":
        return image.convert("RGBA" if "A" in image.palette.mode else "RGB")
    if mode in _ROUND_TRIP or mode in _HIGH_DEPTH:
        return image
    try:
        return image.convert("RGBA" if "A" in image.getbands() else "RGB")
    except (ValueError, OSError) as e:
        raise ImageInputError(f"unsupported photo mode {mode}: {e}") from e


def _grey_scale(image: Image.Image) -> float:
    """Values per 8-bit step for high-bit-depth greyscale modes, 0 for the others.

    16-bit modes are 0..65535 by definition; for 32-bit int/float images only the data tells, so values
    above 255 are read as 16-bit and smaller ones as 8-bit.
    """
    mode = image.mode
    if mode not in _HIGH_DEPTH:
        return 0.0
    if mode.startswith("I;16"):
        return 257.0
    _, high = image.getextrema()
    return 257.0 if high > 255 else 1.0
