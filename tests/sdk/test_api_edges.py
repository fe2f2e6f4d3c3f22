"""SDK edges from the reliability audit: lazily opened files, generators, hostile detectors, bad options, pixel
caps and 16-bit images. Usage: pytest -q tests/sdk/test_api_edges.py"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from stargan_sdk import Translator
from stargan_sdk.cli.stargan import MEGAPIXELS, app
from stargan_sdk.errors import FaceDetectorError, ImageInputError, OptionError
from stargan_sdk.images.imaging import MAX_IMAGE_PIXELS
from stargan_sdk.photo.faces import MAX_PHOTO_PIXELS, translate_photo

ORIGINAL = {"Black_Hair": 1, "Male": 1, "Young": 0}
ORIGINAL_ARGS = ["--original", "Black_Hair=1", "--original", "Male=1", "--original", "Young=0"]


def test_a_lazily_opened_truncated_jpeg_is_an_image_input_error(translator: Translator, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageInputError, match="truncated or corrupt image .OSError: image file is truncated"):
        translator.translate(Image.open(tmp_path / "cut.jpg"), Male=0, original=ORIGINAL)


def test_translate_batch_takes_any_iterable_of_changes(translator: Translator, face: np.ndarray) -> None:
    faces = [face, np.roll(face, 3, axis=1)]
    wanted = [{"Male": 0}, {"Blond_Hair": 1}]
    expected = translator.translate_batch(faces, wanted, original=ORIGINAL)
    got = translator.translate_batch(faces, (c for c in wanted), original=(o for o in [ORIGINAL, ORIGINAL]))
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(got[0], got[1])


def test_a_detector_box_far_larger_than_the_photo_is_refused(translator: Translator, face: np.ndarray) -> None:
    """A box of 10^6 pixels a side used to make the crop allocate terabytes (MemoryError)."""
    started = time.perf_counter()
    with pytest.raises(FaceDetectorError, match="1e\\+06x1e\\+06 pixels is more than 2x the 32x32 photo"):
        translator.translate_photo(face, Male=0, original=ORIGINAL, detector=lambda rgb: [(0, 0, 1e6, 1e6)])
    assert time.perf_counter() - started < 5
    out = translator.translate_photo(face, Male=0, original=ORIGINAL, detector=lambda rgb: [(-8, -8, 48, 48)])
    assert out.shape == face.shape  # a face box reaching past the border, up to twice the photo, still works


@pytest.mark.parametrize("value", ["ignore", None, 0])
def test_on_no_face_names_the_allowed_values(translator: Translator, face: np.ndarray, value: object) -> None:
    with pytest.raises(OptionError, match="on_no_face must be one of 'raise', 'return', got") as info:
        translator.translate_photo(face, Male=0, on_no_face=value)
    assert isinstance(info.value, ValueError)  # still a ValueError for callers that caught that


def test_translate_has_the_cli_pixel_cap(translator: Translator, tmp_path: Path) -> None:
    """One constant: translate(), the photo pipeline and the CLI refuse the same images, before decoding."""
    from test_sdk_cli import png_header_only

    assert MAX_IMAGE_PIXELS == MAX_PHOTO_PIXELS == MEGAPIXELS * 1e6 == 64_000_000
    lazy = Image.open(png_header_only(tmp_path / "big.png", 9_000, 8_000))  # 72 MP, under PIL's own bomb limit
    started = time.perf_counter()
    with pytest.raises(ImageInputError, match="9000x8000 = 72.0 megapixels exceeds the limit of 64"):
        translator.translate(lazy, Male=0, original=ORIGINAL)
    assert time.perf_counter() - started < 1  # refused from the header: nothing decoded
    translator.max_pixels = 80_000_000
    try:  # the caller's own limit: then the header-only file fails as the truncated file it is
        with pytest.raises(ImageInputError, match="truncated or corrupt"):
            translator.translate(lazy, Male=0, original=ORIGINAL)
    finally:
        translator.max_pixels = MAX_IMAGE_PIXELS


def _grey16(seed: int, height: int, width: int) -> Image.Image:
    values = np.random.default_rng(seed).integers(0, 65536, (height, width)).astype(np.uint16)
    return Image.fromarray(values)  # mode I;16


def test_16_bit_greyscale_is_edited_as_the_photo_path_does(translator: Translator) -> None:
    deep = _grey16(1, 40, 32)
    assert deep.mode == "I;16"
    out = translator.translate(deep, Male=0, original=ORIGINAL)
    assert out.mode == "I;16" and out.size == deep.size
    grey8 = np.clip(np.rint(np.asarray(deep, np.float32) / 257), 0, 255).astype(np.uint8)  # the photo path's scale
    reference = np.asarray(translator.translate(Image.fromarray(grey8), Male=0, original=ORIGINAL), np.float32)
    values = np.asarray(out, np.float32)
    assert np.abs(values[4:36] / 257 - reference[4:36]).max() <= 1.0  # the edited centre square, in 16 bits
    np.testing.assert_array_equal(values[:4], np.asarray(deep, np.float32)[:4])  # outside it: bit-identical
    # The photo path: the same scaling, and the same 16-bit mode back.
    photo = translator.translate_photo(deep, Male=0, original=ORIGINAL, detector=lambda rgb: [(4, 8, 24, 24)])
    assert photo.mode == "I;16" and photo.size == deep.size


def test_crop_takes_a_16_bit_png(bundle: Path, translator: Translator, tmp_path: Path) -> None:
    deep = _grey16(2, 40, 32)
    deep.save(tmp_path / "deep.png")
    result = CliRunner().invoke(
        app,
        [
            "translate",
            str(tmp_path / "deep.png"),
            "-b",
            str(bundle),
            "--backend",
            "onnxruntime",
            "--crop",
            "--set",
            "Male=0",
            *ORIGINAL_ARGS,
            "-o",
            str(tmp_path / "out.png"),
        ],
    )
    assert result.exit_code == 0, result.output
    written = Image.open(tmp_path / "out.png")
    expected = translator.translate(deep.crop((0, 4, 32, 36)), Male=0, original=ORIGINAL)
    assert written.mode == expected.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(written), np.asarray(expected))


def test_translate_photo_options_are_option_errors(face: np.ndarray) -> None:
    class Same:
        image_size = 32

        def translate(self, image, changes=None, /, *, original=None):
            return image

    for kwargs in ({"margin": 9.0}, {"feather": 0.9}):
        with pytest.raises(OptionError):
            translate_photo(Same(), face, {}, detector=lambda rgb: [], on_no_face="return", **kwargs)


@pytest.mark.parametrize("suffix", [".jpg", ".bmp", ".webp"])
def test_a_16_bit_result_saved_to_an_8_bit_format_is_scaled_not_clipped(
    bundle: Path, translator: Translator, tmp_path: Path, suffix: str
) -> None:
    deep = _grey16(3, 32, 32)
    deep.save(tmp_path / "deep.png")
    out = tmp_path / f"out{suffix}"
    result = CliRunner().invoke(
        app,
        [
            "translate",
            str(tmp_path / "deep.png"),
            "-b",
            str(bundle),
            "--backend",
            "onnxruntime",
            "--crop",
            "--set",
            "Male=0",
            *ORIGINAL_ARGS,
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    expected = np.rint(np.asarray(translator.translate(deep, Male=0, original=ORIGINAL), np.float32) / 257)
    written = np.asarray(Image.open(out).convert("L"), np.float32)
    assert abs(written.mean() - expected.mean()) < 2  # PIL's own I;16 -> L conversion would make it all white
    if suffix == ".bmp":  # lossless: exactly the 16-bit result scaled to 8 bits
        np.testing.assert_array_equal(written, expected)
