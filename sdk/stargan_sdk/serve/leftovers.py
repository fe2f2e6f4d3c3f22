"""Folders and shared memory that a killed `stargan serve` left behind, named after their owner so the next start
can remove them.

Usage: tempfile.mkdtemp(prefix=owned_prefix("stargan-serve-")); clean_leftovers(tempfile.gettempdir())

A SIGKILL gives a process no chance to clean up, so every folder the server makes carries its owner in its name:
`stargan-repo-<pid>.<start time>-xxxx` (the start time from /proc tells a reused pid apart). A start removes the
folders (and `/dev/shm/stargan_<pid>_*` segments) of owners that are gone, and nothing else: not another user's,
not a running server's, not an unnamed one.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

KINDS = ("stargan-repo-", "stargan-serve-")
_OWNED = re.compile(r"(stargan-(?:repo|serve)-)(\d+)\.(\d+)-[^/]+")
_SEGMENT = re.compile(r"stargan_(\d+)_[0-9a-f]+_.*")
SHM_DIR = Path("/dev/shm")


def start_time(pid: int) -> int | None:
    """A process's start time in clock ticks since boot, None when it is gone (or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def owned_prefix(kind: str) -> str:
    """A mkdtemp prefix naming this process as the owner, e.g. `stargan-repo-4242.918273-`."""
    if kind not in KINDS:
        raise ValueError(f"unknown leftover kind {kind!r}")
    return f"{kind}{os.getpid()}.{start_time(os.getpid()) or 0}-"


def clean_leftovers(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove this user's serve folders in `folder` whose owner process is gone, and their shared memory;
    returns what was removed."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for path in entries:
        m = _OWNED.fullmatch(path.name)
        if m is None or not _ours(path) or start_time(int(m[2])) == int(m[3]):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    for segment in SHM_DIR.iterdir() if SHM_DIR.is_dir() else ():
        m = _SEGMENT.fullmatch(segment.name)
        if m and _ours(segment) and start_time(int(m[1])) is None:
            segment.unlink(missing_ok=True)
            removed.append(segment)
    return removed


def _ours(path: Path) -> bool:
    try:
        st = path.lstat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not path.is_symlink()
