"""SDK fixtures: one tiny bundle exported from the official-format checkpoint, shared by the session.

Usage: def test_x(bundle, translator): translator.translate(image, Blond_Hair=1)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

TINY_SIZE = 32  # as the official_checkpoint fixture in tests/conftest.py
TINY_ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")


@pytest.fixture(scope="session")
def bundle(official_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 32 px, c_dim 5 bundle with FP32 + FP16 ONNX, classifier and safetensors weights (no engine)."""
    from stargan_export.bundle import build_bundle

    out = tmp_path_factory.mktemp("bundle") / "tiny"
    build_bundle(
        official_checkpoint,
        out,
        attributes=list(TINY_ATTRS),
        image_size=TINY_SIZE,
        classifier=True,
        engine=False,
        min_batch=1,
        opt_batch=2,
        max_batch=4,
    )  # small profile: the export checks parity up to max_batch
    return out


@pytest.fixture(scope="session")
def translator(bundle: Path):
    from stargan_sdk import Translator

    with Translator.load(bundle, backend="onnxruntime") as t:
        yield t


@pytest.fixture
def bundle_copy(bundle: Path, tmp_path: Path) -> Path:
    """A private copy to corrupt or edit."""
    return Path(shutil.copytree(bundle, tmp_path / "copy"))


@pytest.fixture
def face() -> np.ndarray:
    """A seeded uint8 RGB image at the model size."""
    return np.random.default_rng(7).integers(0, 256, (TINY_SIZE, TINY_SIZE, 3), dtype=np.uint8)
