"""Atomic file writes for bundle artifacts (temp file in the same folder + rename, umask-respecting mode).

Usage: write_bytes(Path("bundle/generator.onnx"), model.SerializeToString())
"""

from __future__ import annotations

from pathlib import Path

from stargan_train.files import atomic_write


def write_bytes(path: Path, data: bytes) -> None:
    atomic_write(Path(path), lambda tmp: tmp.write_bytes(data))

