"""Both atomic writers (training's and the SDK's: one contract, two copies because stargan_train imports nothing of
the SDK): the mode follows the umask like open() would, a failing write keeps the old file and leaves no temp
file, success replaces, parents are created, a writer that makes its own 0600 file gets the umask's mode back."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from stargan_sdk.host import files as sdk_files
from stargan_train import files as train_files


def _writer(module):
    def write_with(path: Path, data: bytes, fail: bool = False) -> None:
        def write(tmp: Path) -> None:
            tmp.write_bytes(data)
            if fail:
                raise RuntimeError("disk full")

        module.atomic_write(path, write)

    return write_with


WRITERS = pytest.mark.parametrize("write", [_writer(train_files), _writer(sdk_files)], ids=["train", "sdk"])
MODULES = pytest.mark.parametrize("module", [train_files, sdk_files], ids=["train", "sdk"])


@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    os.umask(old)
    yield set_mask
    os.umask(old)


@WRITERS
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_mode_follows_the_umask(tmp_path: Path, write: Callable, umask, mask: int) -> None:
    umask(mask)
    path = tmp_path / "out.bin"
    write(path, b"abc")
    assert path.read_bytes() == b"abc"
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~mask)


@WRITERS
def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path: Path, write: Callable) -> None:
    path = tmp_path / "out.bin"
    write(path, b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        write(path, b"new-and-torn", fail=True)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    write(path, b"new")
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


@MODULES
def test_bytes_without_sync_creates_parents(tmp_path: Path, module) -> None:
    path = tmp_path / "a" / "b" / "face.png"
    module.atomic_write_bytes(path, b"\x89PNG", sync=False)
    assert path.read_bytes() == b"\x89PNG"
    module.atomic_write_text(tmp_path / "c" / "n.txt", "né")
    assert (tmp_path / "c" / "n.txt").read_text(encoding="utf-8") == "né"


@MODULES
def test_a_writer_that_makes_its_own_0600_file_gets_the_umask_mode(tmp_path: Path, module, umask) -> None:
    """safetensors' save_file replaces the file it is given with a 0600 one; the result still follows the umask."""
    umask(0o022)

    def private_writer(tmp: Path) -> None:
        tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, b"weights")
        os.close(fd)

    path = tmp_path / "w.safetensors"
    module.atomic_write(path, private_writer)
    assert path.read_bytes() == b"weights" and path.stat().st_mode & 0o777 == 0o644


@WRITERS
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755])
def test_overwriting_keeps_the_files_mode(tmp_path: Path, write: Callable, umask, mode: int) -> None:
    umask(0o022)
    target = tmp_path / "secret.json"
    target.write_bytes(b"old")
    target.chmod(mode)
    write(target, b"new")
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == mode
