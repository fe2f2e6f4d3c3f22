"""Atomic file writes for the SDK: a temp file in the same folder, fsync, then rename over the target.

Usage: atomic_write(Path("out.png"), lambda f: image.save(f, format="PNG"))
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call `write(binary_file)` on a temp file beside `path` and rename it into place; a crash or an
    exception leaves the old file (or nothing) and no temp file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
