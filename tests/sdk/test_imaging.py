"""Pre/post-processing: exact uint8 round trip, buffer fast path, modes, sizes, atomic saves."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from stargan_sdk.errors import ImageInputError
from stargan_sdk.images.imaging import Normalizer, center_crop, restore, save_image, to_model_rgb

N = Normalizer()


def test_every_uint8_value_round_trips_exactly() -> None:
    values = np.arange(256, dtype=np.uint8)
    images = np.stack(
        [np.stack([values.reshape(16, 16)] * 3, axis=-1), np.roll(values, 7).reshape(16, 16, 1).repeat(3, 2)]
    )
    x = N.preprocess(images)
    assert x.dtype == np.float32 and x.shape == (2, 3, 16, 16)
    assert x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_allclose(x[0, 0], values.reshape(16, 16) / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(N.postprocess(x), images)


def test_preprocess_into_writes_a_prefix_of_a_larger_buffer() -> None:
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    buffer = np.full((5, 3, 8, 8), 7.0, np.float32)
    view = N.preprocess_into(images, buffer)
    assert np.shares_memory(view, buffer) and view.shape == (3, 3, 8, 8)
    np.testing.assert_array_equal(buffer[:3], N.preprocess(images))
    assert (buffer[3:] == 7.0).all()
    with pytest.raises(ImageInputError, match="cannot hold"):
        N.preprocess_into(images, np.empty((2, 3, 8, 8), np.float32))


def test_postprocess_clips_out_of_range_outputs() -> None:
    y = np.array([-3.0, -1.0, 0.0, 1.0, 3.0], np.float32).reshape(1, 1, 1, 5).repeat(3, axis=1)
    np.testing.assert_array_equal(N.postprocess(y)[0, 0, :, 0], [0, 0, 128, 255, 255])


def test_manifest_normalisation_is_used() -> None:
    n = Normalizer(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    x = n.preprocess(np.full((1, 2, 2, 3), 255, np.uint8))
    np.testing.assert_allclose(x, 1.0)


@pytest.mark.parametrize(
    "mode, returned",
    [("RGB", "RGB"), ("L", "L"), ("RGBA", "RGBA"), ("LA", "LA"), ("P", "RGB"), ("1", "RGB"), ("CMYK", "RGB")],
)
def test_pil_modes_come_back_as_expected(mode: str, returned: str) -> None:
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 20, 3), dtype=np.uint8)).convert(mode)
    rgb, meta = to_model_rgb(image, 16)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    out = restore(rgb, meta)
    assert isinstance(out, Image.Image) and out.mode == returned and out.size == (20, 20)


def test_transparency_is_composited_on_white_and_alpha_restored() -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255  # top half opaque red-ish, bottom half fully transparent
    rgb, meta = to_model_rgb(Image.fromarray(rgba), 8)
    assert (rgb[:4, :, 0] == 200).all() and (rgb[4:] == 255).all()
    out = np.asarray(restore(rgb, meta))
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    palette = Image.fromarray(rgba).convert("P")
    palette.info["transparency"] = 0
    assert to_model_rgb(palette, 8)[1].mode == "RGBA"


@pytest.mark.parametrize("shape", [(12, 12), (12, 12, 1), (12, 12, 3), (12, 12, 4)])
def test_numpy_layouts_round_trip_shape(shape: tuple[int, ...]) -> None:
    array = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)
    rgb, meta = to_model_rgb(array, 12)
    out = restore(rgb, meta)
    assert isinstance(out, np.ndarray) and out.shape == shape and out.dtype == np.uint8
    if shape == (12, 12, 3):
        np.testing.assert_array_equal(out, array)  # no resize, no conversion: bytes unchanged


def test_square_images_are_resized_to_model_size_and_back() -> None:
    array = np.full((64, 64, 3), 90, np.uint8)
    rgb, meta = to_model_rgb(array, 16)
    assert rgb.shape == (16, 16, 3) and (rgb == 90).all()
    assert restore(rgb, meta).shape == (64, 64, 3)


def test_non_square_images_edit_the_centre_square_and_keep_their_size() -> None:
    """CelebA's recipe: the aligned 178x218 face is centre-cropped to 178x178 and resized; the edited
    square goes back in place, the bands above and below stay as they were."""
    image = np.random.default_rng(3).integers(0, 256, (218, 178, 3), dtype=np.uint8)
    rgb, meta = to_model_rgb(image, 16)
    expected = np.asarray(Image.fromarray(image[20:198]).resize((16, 16), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(rgb, expected)
    out = restore(255 - rgb, meta)
    assert out.shape == image.shape
    np.testing.assert_array_equal(out[:20], image[:20])
    np.testing.assert_array_equal(out[198:], image[198:])
    inverted = np.asarray(Image.fromarray(255 - rgb).resize((178, 178), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(out[20:198], inverted)
    wide = Image.fromarray(image.transpose(1, 0, 2)).convert("LA")  # 218x178 landscape, grey + alpha
    rgb, meta = to_model_rgb(wide, 16)
    back = restore(rgb, meta)
    assert back.size == wide.size and back.mode == "LA"
    np.testing.assert_array_equal(np.asarray(back)[:, :20], np.asarray(wide)[:, :20])


def test_exif_orientation_is_applied_to_pil_images() -> None:
    upright_pixels = np.random.default_rng(4).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    stored = Image.fromarray(np.rot90(upright_pixels))  # sideways on the sensor
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="PNG", exif=exif)
    camera = Image.open(io.BytesIO(buffer.getvalue()))
    rgb, meta = to_model_rgb(camera, 16)
    np.testing.assert_array_equal(rgb, upright_pixels)
    np.testing.assert_array_equal(np.asarray(restore(rgb, meta)), upright_pixels)


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((16, 16, 3), np.float32), "must be uint8"),
        (np.zeros((16, 16, 3), bool), "must be uint8"),
        (np.zeros((16, 16, 2), np.uint8), "HxWx3"),
        (np.zeros((2, 16, 16, 3), np.uint8), "HxWx3"),
        (np.zeros((0, 0, 3), np.uint8), "empty"),
        (Image.new("HSV", (16, 16)), "mode 'HSV'"),  # 16-bit and float greyscale are scaled (test_api_edges)
        (Image.new("LAB", (16, 16)), "mode 'LAB'"),
        ("face.png", "PIL image or a uint8 numpy array"),
    ],
)
def test_bad_images_are_refused(image: object, message: str) -> None:
    with pytest.raises(ImageInputError, match=message):
        to_model_rgb(image, 16)


def test_center_crop() -> None:
    array = np.arange(4 * 6, dtype=np.uint8).reshape(4, 6)
    np.testing.assert_array_equal(center_crop(array), array[:, 1:5])
    assert center_crop(Image.new("RGB", (30, 10))).size == (10, 10)
    with pytest.raises(ImageInputError):
        center_crop([1, 2, 3])


def test_save_image_is_atomic_and_picks_format(tmp_path) -> None:
    target = tmp_path / "sub" / "out.png"
    save_image(np.full((4, 4, 3), 10, np.uint8), target)
    assert np.asarray(Image.open(target)).mean() == 10
    save_image(Image.new("RGBA", (4, 4)), tmp_path / "x.jpg")  # alpha dropped for JPEG
    assert Image.open(tmp_path / "x.jpg").mode == "RGB"
    save_image(Image.new("LA", (4, 4), (90, 255)), tmp_path / "la.bmp")  # BMP has no grey + alpha
    assert np.asarray(Image.open(tmp_path / "la.bmp").convert("L")).max() == 90
    save_image(Image.new("LA", (4, 4)), tmp_path / "la.ppm")
    assert Image.open(tmp_path / "la.ppm").mode == "L"
    with pytest.raises(ImageInputError, match="format"):
        save_image(Image.new("RGB", (4, 4)), tmp_path / "out.unknown")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["la.bmp", "la.ppm", "out.png", "x.jpg"]


@settings(max_examples=40, deadline=None)
@given(side=st.integers(1, 90), model=st.sampled_from([8, 16, 32]), seed=st.integers(0, 2**16))
def test_square_rgb_fast_path_equals_the_general_path(side: int, model: int, seed: int) -> None:
    """A square RGB PIL image (the pipeline's aligned face) skips the array round trips; a numpy array of the same
    pixels takes the general path: model input and restored output must be the same pixels."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    fast, fast_meta = to_model_rgb(Image.fromarray(pixels), model)
    general, general_meta = to_model_rgb(pixels, model)
    np.testing.assert_array_equal(fast, general)
    edited = np.random.default_rng(seed + 1).integers(0, 256, (model, model, 3), dtype=np.uint8)
    back = restore(edited, fast_meta)
    assert isinstance(back, Image.Image) and back.mode == "RGB" and back.size == (side, side)
    np.testing.assert_array_equal(np.asarray(back), restore(edited, general_meta))
