"""A build's staging folder beside the bundle, swapped in atomically, and stale ones (SIGKILL) cleaned up safely.

Usage: with Staging(out) as stage: write files into stage.path ...; stage.commit(new_files, manifest_writer)

The new bundle is assembled in `.<name>.staging-<random>` next to `out` (same filesystem): new artifacts, the
new manifest, and hard links to every file of the old folder that is not an artifact (model cards, the
TensorRT timing cache). `commit` then exchanges the two folders in one `renameat2(RENAME_EXCHANGE)` call,
so a process killed at any instant leaves `out` holding either the whole old bundle or the whole new one.
A live build holds an flock on its staging folder; a later build removes only staging folders whose lock
it can take, i.e. those of builds that died.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; stale folders are then left for the user to delete
    fcntl = None  # type: ignore[assignment]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def real_path(out: Path) -> Path:
    """A bundle folder given as a symlink is updated where it points (the link itself stays a link)."""
    out = Path(out)
    return out.resolve() if out.is_symlink() else out


def staging_prefix(out: Path) -> str:
    return f".{out.name}.staging-"


class Staging:
    """The staging folder of one build (see the module docstring).

    Args:
        out: the bundle folder the build will replace or create (its parent must exist).
    """

    def __init__(self, out: Path) -> None:
        self.out = real_path(out)
        self.path = Path(tempfile.mkdtemp(prefix=staging_prefix(self.out), dir=self.out.parent))
        self._lock_fd = _lock(self.path)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def commit(
        self,
        new_files: Iterable[str],
        old_artifacts: Iterable[str],
        write_manifest: Callable[[Path], object],
        manifest_name: str,
    ) -> None:
        """Carry over the old folder's other files, write the manifest into staging, swap the folders."""
        skip = set(new_files) | set(old_artifacts) | {manifest_name}
        if self.out.is_dir():
            _link_tree(self.out, self.path, skip)
            _copy_mode(self.out, self.path)
        else:
            self.path.chmod(0o777 & ~_umask())
        write_manifest(self.path)
        if not self.out.exists():
            os.rename(self.path, self.out)
            return
        _exchange(self.path, self.out)  # self.path now holds the old bundle; close() removes it


def remove_stale(out: Path) -> list[Path]:
    """Delete staging folders of `out` left by builds that were killed (their flock is free)."""
    removed: list[Path] = []
    out = real_path(out)
    if fcntl is None or not out.parent.is_dir():
        return removed
    candidates = [p for p in out.parent.iterdir() if p.name.startswith(staging_prefix(out))]
    for candidate in candidates:
        if candidate.is_symlink() or not candidate.is_dir():
            continue
        try:
            fd = os.open(candidate, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live build holds it
        else:
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
        finally:
            os.close(fd)
    return removed


def _lock(path: Path) -> int | None:
    if fcntl is None:
        return None
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _exchange(a: Path, b: Path) -> None:
    """Swap two folders atomically; where the OS cannot, rename b aside and a into place (a short window)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = getattr(libc, "renameat2", None)
        if renameat2 is not None:
            renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
                return
            code = ctypes.get_errno()
            if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise OSError(code, f"cannot swap {a} into {b}: {os.strerror(code)}")
    aside = a.with_name(a.name + ".old")
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)


def _link_tree(src: Path, dst: Path, skip: set[str]) -> None:
    for entry in src.iterdir():
        if entry.name in skip or _is_temp(entry.name):
            continue
        target = dst / entry.name
        if os.path.lexists(target):
            continue  # the build wrote a newer one (e.g. the TensorRT timing cache)
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, target)


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")  # atomic_write leftovers of a killed writer


def _copy_mode(src: Path, dst: Path) -> None:
    with contextlib.suppress(OSError):
        dst.chmod(src.stat().st_mode & 0o7777)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
