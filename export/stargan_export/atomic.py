"""Atomic, normally-permissioned file writes for bundle artifacts (temp file in the same folder + rename).

Usage: write_bytes(Path("bundle/generator.onnx"), model.SerializeToString())
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from stargan_train.checkpoint import atomic_write


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def readable(path: Path) -> None:
    # mkstemp creates 0600 files; bundles are shared (Triton servers, other users), so apply the umask.
    os.chmod(path, 0o666 & ~_umask())


def write_bytes(path: Path, data: bytes) -> None:
    def write(tmp: Path) -> None:
        tmp.write_bytes(data)
        readable(tmp)

    atomic_write(Path(path), write)


def copy_file(src: Path, dst: Path) -> None:
    def write(tmp: Path) -> None:
        shutil.copyfile(src, tmp)
        readable(tmp)

    atomic_write(Path(dst), write)
