"""Folders and shared memory that a killed `stargan serve` left behind, named after their owner so the next start
can remove them.

Usage: tempfile.mkdtemp(prefix=owned_prefix("stargan-serve-")); clean_leftovers(tempfile.gettempdir())

A SIGKILL gives a process no chance to clean up, so every folder the server makes carries its owner in its name:
`stargan-repo-<pid>.<start time>-xxxx` (the start time from /proc tells a reused pid apart). A start removes the
folders (and `/dev/shm/stargan_<pid>_*` segments) of owners that are gone, and nothing else: not another user's,
not a running server's, not an unnamed one. Triton's Python-backend stubs run from the workspace folder
(`<stargan-serve-...>/backends/python/triton_python_backend_stub`); a tritonserver still loading its models
when its parent was SIGKILLed can outlive it for many seconds and leave stubs that wait forever, so a start
also stops this user's processes that run from or name a folder it removes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from dataclasses import dataclass, field
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


@dataclass
class Leftovers:
    """What a start removed: folders, shared-memory segments, and the pids of processes it stopped."""

    folders: list[Path] = field(default_factory=list)
    segments: list[Path] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.folders or self.segments or self.processes)

    def describe(self) -> str:
        return (
            f"removed {len(self.folders)} folder(s) and {len(self.segments)} shared-memory segment(s) and "
            f"stopped {len(self.processes)} process(es) left by a killed stargan serve"
        )


def clean_leftovers(folder: str | os.PathLike[str]) -> Leftovers:
    """Remove this user's serve folders in `folder` whose owner process is gone, stop this user's processes
    running a program from one of them, and remove the owners' shared memory."""
    found = Leftovers()
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return found
    for path in entries:
        m = _OWNED.fullmatch(path.name)
        if m is None or not _ours(path) or start_time(int(m[2])) == int(m[3]):
            continue
        found.processes += _stop_processes_under(path)  # first: a stub keeps its shared memory mapped
        shutil.rmtree(path, ignore_errors=True)
        found.folders.append(path)
    for segment in SHM_DIR.iterdir() if SHM_DIR.is_dir() else ():
        m = _SEGMENT.fullmatch(segment.name)
        if m and _ours(segment) and start_time(int(m[1])) is None:
            segment.unlink(missing_ok=True)
            found.segments.append(segment)
    return found


def _stop_processes_under(folder: Path) -> list[int]:
    """SIGKILL this user's processes that run from or name `folder` (the stubs' program lies in the workspace;
    tritonserver and the stubs name the repository), until a pass over /proc finds none: a tritonserver still
    starting up can fork a stub while the first pass runs. Returns their pids."""
    names = {str(folder), str(folder.resolve())}
    stopped: list[int] = []
    for _ in range(10):
        found = [pid for pid, argv in _our_processes() if any(name in arg for arg in argv for name in names)]
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            stopped.append(pid)
        if not found:
            break
    return sorted(set(stopped))


def _our_processes():
    """(pid, argv) of this user's processes other than this one."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            argv = os.fsdecode((entry / "cmdline").read_bytes()).split("\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        yield int(entry.name), argv


def _ours(path: Path) -> bool:
    try:
        st = path.lstat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not path.is_symlink()
