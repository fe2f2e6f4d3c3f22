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


@pytest.fixture(scope="session")
def tiny_bundle(official_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FP32 + FP16 generator, classifier and generator.safetensors for the 32 px, c_dim 5 model (no engine here)."""
    from stargan_export.bundle import build_bundle

    out = tmp_path_factory.mktemp("bundle") / "tiny"
    build_bundle(official_checkpoint, out, attributes=TINY_ATTRS, image_size=TINY_SIZE, classifier=True,
                 max_batch=MAX_BATCH, engine=False)
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
