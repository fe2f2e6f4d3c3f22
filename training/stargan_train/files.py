"""Atomic file writes for training outputs: a temp file beside the target, then rename over it.

Torch-free on purpose: the toyfaces generator writes thousands of images through it without torch.

Usage: atomic_write(Path("run/checkpoints/001000.ckpt"), lambda tmp: torch.save(state, tmp))
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], None], *, sync: bool = True) -> None:
    """Call `write(tmp_path)`, fsync (when `sync`), then rename over `path`; the temp file is removed on
    any error, so a crash leaves the old file (or nothing), never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # Not mkstemp: it always makes 0600 files. Creating with 0o666 lets the kernel apply the umask, so
    # checkpoints, samples and datasets get the mode any other file the user writes gets.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        _keep_mode(path, fd)
        mode = os.fstat(fd).st_mode & 0o7777
    finally:
        os.close(fd)
    try:
        write(tmp)
        # Some writers replace the file they are given with their own 0600 one (safetensors' save_file does):
        # give it back the mode chosen above.
        if os.stat(tmp).st_mode & 0o7777 != mode:
            os.chmod(tmp, mode)
        if sync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _keep_mode(path: Path, fd: int) -> None:
    """Give the temp file the mode of the file it replaces: a 0600 secret stays 0600 (same rule as the SDK's)."""
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return  # a new file: the umask decides
    os.fchmod(fd, mode)


def atomic_write_bytes(path: Path, data: bytes, *, sync: bool = True) -> None:
    atomic_write(path, lambda p: p.write_bytes(data), sync=sync)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
