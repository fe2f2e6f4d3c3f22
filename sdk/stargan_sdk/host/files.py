"""Atomic file writes for the SDK: a temp file in the same folder, fsync, then rename over the target.

Usage: atomic_write(Path("out.png"), lambda f: image.save(f, format="PNG"))
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call `write(binary_file)` on a temp file beside `path` and rename it into place; a crash or an
    exception leaves the old file (or nothing) and no temp file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # Not mkstemp: it always makes 0600 files. Creating with 0o666 lets the kernel apply the umask, so
    # images, manifests and reports get the mode any other file the user writes gets.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        keep_mode(path, fd)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def keep_mode(path: Path, fd: int) -> None:
    """Give the temp file the mode of the file it replaces: a 0600 secret stays 0600."""
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return  # a new file: the umask decides
    os.fchmod(fd, mode)
