"""What a start removes after a SIGKILLed `stargan serve`: its folders, its shared memory, and the processes
(Triton's Python-backend stubs) still running a program from its workspace; nothing of a live owner's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stargan_sdk.serve.leftovers import clean_leftovers, start_time

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _dead_owner() -> tuple[int, int]:
    """The pid and start time of a process that has exited (a SIGKILLed serve)."""
    proc = subprocess.Popen(["sleep", "30"])
    started = start_time(proc.pid)
    proc.kill()
    proc.wait()
    assert started is not None and start_time(proc.pid) is None
    return proc.pid, started


def _stub_in(workspace: Path) -> subprocess.Popen:
    """A process whose program lies in the workspace, as Triton's stub binary does."""
    stub = workspace / "backends" / "python" / "triton_python_backend_stub"
    stub.parent.mkdir(parents=True)
    shutil.copy2(shutil.which("sleep"), stub)
    return subprocess.Popen([str(stub), "300"])


def test_a_dead_owners_folders_and_their_stubs_go_a_live_owners_stay(tmp_path: Path) -> None:
    pid, started = _dead_owner()
    dead = tmp_path / f"stargan-serve-{pid}.{started}-abc"
    live = tmp_path / f"stargan-serve-{os.getpid()}.{start_time(os.getpid())}-def"
    dead_repo = tmp_path / f"stargan-repo-{pid}.{started}-ghi"
    dead_repo.mkdir()
    orphan, survivor = _stub_in(dead), _stub_in(live)
    try:
        found = clean_leftovers(tmp_path)
        assert orphan.wait(10) == -9  # SIGKILLed
        assert survivor.poll() is None
        assert found.processes == [orphan.pid]
        assert sorted(found.folders) == sorted([dead, dead_repo])
        assert sorted(p.name for p in tmp_path.iterdir()) == [live.name]
        assert found.describe().startswith("removed 2 folder(s) and 0 shared-memory segment(s) and stopped 1 process")
    finally:
        for proc in (orphan, survivor):
            proc.kill()
            proc.wait()


def test_nothing_left_is_falsy_and_a_missing_folder_is_nothing(tmp_path: Path) -> None:
    assert not clean_leftovers(tmp_path / "missing")
    (tmp_path / "stargan-serve-unnamed").mkdir()
    assert not clean_leftovers(tmp_path)
