"""Export fixtures: one tiny bundle built once per session from the official-format checkpoint.

Usage: def test_x(tiny_bundle, tiny_generator): ...
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TINY_SIZE = 32  # as the official_checkpoint fixture in tests/conftest.py
TINY_ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
MAX_BATCH = 16
NUM_FACES = 24  # calibration faces: 18 calibrate, 6 held out


@pytest.fixture(scope="session")
def tiny_bundle(official_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FP32 + FP16 generator, classifier and generator.safetensors for the 32 px, c_dim 5 model (no engine here)."""
    from stargan_export.bundle import build_bundle

    out = tmp_path_factory.mktemp("bundle") / "tiny"
    build_bundle(
        official_checkpoint,
        out,
        attributes=TINY_ATTRS,
        image_size=TINY_SIZE,
        classifier=True,
        max_batch=MAX_BATCH,
        engine=False,
    )
    return out


@pytest.fixture
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the session bundle that a test may tamper with."""
    dst = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, dst)
    return dst


@pytest.fixture(scope="session")
def tiny_generator(official_checkpoint: Path):
    from stargan_train.weights import load_generator

    return load_generator(official_checkpoint).model.eval()


@pytest.fixture(scope="session")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Toy faces in CelebA's 178x218-like portrait frame (smaller, to render fast), for INT8 calibration."""
    import numpy as np
    from PIL import Image

    from stargan_train.data.toyfaces import render_face, sample_params

    folder = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    for i in range(NUM_FACES):
        rgb, _ = render_face(sample_params(rng), width=64, height=78)
        Image.fromarray(rgb).save(folder / f"face{i:02d}.png")
    (folder / "notes.txt").write_text("not an image: ignored")
    return folder
