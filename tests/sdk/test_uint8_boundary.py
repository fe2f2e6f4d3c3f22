"""uint8 at the engine boundary: normalise and denormalise where the generator runs, equal to the float path.

Usage: pytest -q tests/sdk/test_uint8_boundary.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stargan_sdk import Translator
from stargan_sdk.errors import AttributeValueError, ImageInputError

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def crops(bundle: Path) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    with Translator.load(bundle, backend="onnxruntime") as t:
        images = rng.integers(0, 256, (5, t.image_size, t.image_size, 3), dtype=np.uint8)
        labels = rng.integers(0, 2, (5, t.manifest.c_dim)).astype(np.float32)
    return images, labels


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_infer_uint8_equals_the_float_path(bundle: Path, crops, backend: str) -> None:
    images, labels = crops
    with Translator.load(bundle, backend=backend, max_batch=2) as t:  # 5 images: split into 2 + 2 + 1
        got = t.infer_uint8(images, labels)
        want = t.normalizer.postprocess(t.infer(t.normalizer.preprocess(images), labels))
    assert got.dtype == np.uint8 and got.shape == images.shape
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert not np.array_equal(got, images)  # the generator ran


def test_torch_uint8_on_the_device_equals_host_normalisation(bundle: Path, crops) -> None:
    """The device-side op itself (torch_uint8.run_uint8, here on the CPU device) against the host's arithmetic."""
    import torch

    from stargan_sdk.backends.torch_uint8 import run_uint8

    images, labels = crops
    with Translator.load(bundle, backend="torch") as t:
        module = t.backend._module
        got = run_uint8(torch, module, images, labels, t.normalizer, torch.device("cpu"))
        with torch.inference_mode():
            out = module(torch.from_numpy(t.normalizer.preprocess(images)), torch.from_numpy(labels)).numpy()
    assert np.abs(got.astype(int) - t.normalizer.postprocess(out).astype(int)).max() <= 1


def test_edit_rgb_on_a_uint8_backend_equals_translate(bundle: Path, crops, monkeypatch) -> None:
    """A backend that takes uint8 (as torch on a GPU) gets the crops as uint8; results equal translate's."""
    images, _ = crops
    original = {"Black_Hair": 1, "Male": 0, "Young": 1}
    with Translator.load(bundle, backend="torch") as t:
        seen = []
        infer_uint8 = t.backend.infer_uint8
        monkeypatch.setattr(t.backend, "uint8_on_device", True)
        monkeypatch.setattr(t.backend, "infer_uint8", lambda x, c: seen.append(x.dtype) or infer_uint8(x, c))
        for orig in (original, None):  # None: the classifier estimates (from float images), uint8 still goes up
            got = t.edit_rgb(list(images), {"Blond_Hair": 1}, original=orig)
            want = np.stack([t.translate(im, {"Blond_Hair": 1}, original=orig) for im in images])
            assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
        assert seen == [np.uint8, np.uint8]


def test_infer_uint8_refuses_bad_input(bundle: Path, crops) -> None:
    images, labels = crops
    with Translator.load(bundle, backend="torch") as t:
        with pytest.raises(ImageInputError, match="uint8"):
            t.infer_uint8(images.astype(np.float32), labels)
        with pytest.raises(AttributeValueError, match="labels"):
            t.infer_uint8(images, labels[:2])
        with pytest.raises(ImageInputError, match="empty"):
            t.infer_uint8(images[:0], labels[:0])
