"""Atomic file writes for the SDK: a temp file in the same folder, fsync, then rename over the target.

Usage: atomic_write(Path("out.png"), lambda tmp: image.save(tmp, format="PNG")); atomic_write_bytes(path, data)

The contract is training's (`stargan_train.files`), which keeps its own copy because stargan_train imports
nothing of the SDK (design.md's dependency direction): the writer gets the temp file's path, so any writer fits,
those that only take a file name (safetensors, ONNX Runtime's quantizer) included.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import re
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

TOKEN_BYTES = 8
_TEMP = re.compile(rf"^\.(?P<name>.+)\.[0-9a-f]{{{2 * TOKEN_BYTES}}}\.tmp$")


def atomic_write(path: Path, write: Callable[[Path], None], *, sync: bool = True) -> Path:
    """Call `write(tmp_path)` on a temp file beside `path`, fsync it (when `sync`) and rename it into place; a
    crash or an exception leaves the old file (or nothing) and no temp file."""
    path = Path(path)
    tmp = write_temp(path, write)
    try:
        if sync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_temp(path: Path, write: Callable[[Path], None]) -> Path:
    """The first half of `atomic_write`: `write(tmp_path)` on a new temp file beside `path`, which keeps `path`'s
    mode (or gets the umask's); returns the temp file, not synced. An exception leaves no temp file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(TOKEN_BYTES)}.tmp")
    # Not mkstemp: it always makes 0600 files. Creating with 0o666 lets the kernel apply the umask, so
    # images, manifests and reports get the mode any other file the user writes gets.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        keep_mode(path, fd)
        mode = os.fstat(fd).st_mode & 0o7777
    finally:
        os.close(fd)
    try:
        write(tmp)
        if os.stat(tmp).st_mode & 0o7777 != mode:  # a writer that replaced the file with its own 0600 one
            os.chmod(tmp, mode)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def sync_files(paths: Sequence[Path]) -> None:
    """Make the data of `paths` durable. On Linux one `syncfs` per file system they lie on (one journal commit
    for a whole group of files, where an fsync each costs one commit each: ~3.6 ms a file on this machine's
    disk); elsewhere an fsync of each file. Raises OSError when the kernel reports a write error."""
    syncfs = _syncfs()
    if syncfs is None:
        for p in paths:
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        return
    done: set[int] = set()
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            dev = os.fstat(fd).st_dev
            if dev not in done and syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs: {os.strerror(err)}", str(p))
            done.add(dev)
        finally:
            os.close(fd)


def sync_folders(folders: Sequence[Path]) -> None:
    """fsync each folder, so the names renamed into it survive a power cut too (POSIX file systems)."""
    for folder in dict.fromkeys(folders):
        try:
            fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            continue  # a platform whose folders cannot be opened (Windows): renames are durable there
        try:
            os.fsync(fd)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EBADF):  # file systems that cannot sync a folder
                raise
        finally:
            os.close(fd)


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """libc's syncfs (Linux 2.6.39+; reports write errors since 5.8), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    return fn


def atomic_write_bytes(path: Path, data: bytes, *, sync: bool = True) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), sync=sync)


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def keep_mode(path: Path, fd: int) -> None:
    """Give the temp file the mode of the file it replaces: a 0600 secret stays 0600."""
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return  # a new file: the umask decides
    os.fchmod(fd, mode)


def overwritten_input(pairs: list[tuple[Path, Path]]) -> Path | None:
    """The first output of (input, output) pairs that is an input (the same file, or a hard or symbolic link to
    one: same device and inode), else None; writing it would replace an input by its own edit."""
    inputs = {(st.st_dev, st.st_ino) for st in (Path(src).stat() for src, _ in pairs)}
    for _, dst in pairs:
        try:
            st = Path(dst).stat()
        except OSError:
            continue  # not there yet (or a dangling link): writing it replaces no input
        if (st.st_dev, st.st_ino) in inputs:
            return Path(dst)
    return None


def remove_leftover_temps(folder: Path, names: set[str]) -> int:
    """Delete atomic_write's temp files for `names` in `folder` (a killed run leaves them: SIGKILL runs no
    cleanup); one listing of the folder, however many names. Returns how many were removed."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m and m["name"] in names and entry.is_file(follow_symlinks=False):
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
    return removed
