"""The pipeline's write stage (`pipeline.durable`): a group's files are synced before any is renamed, results keep
their order, errors stay with their files, and no temp file outlives the stage (early stop included)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from stargan_sdk.host.files import sync_files, sync_folders
from stargan_sdk.pipeline.durable import commit_groups
from stargan_sdk.pipeline.files import FileResult


def _results(out: Path, n: int) -> list[FileResult]:
    return [FileResult(f"src{i}", output=out / f"{i:03d}.png", value=f"image {i}".encode() * 50) for i in range(n)]


def _temps(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_each_group_is_synced_before_its_files_are_renamed(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def spy(tmps: list[Path]) -> None:
        # at sync time the group exists only as temp files beside the outputs-to-be
        assert all(t.exists() and t.parent == tmp_path and t.name.endswith(".tmp") for t in tmps)
        assert not any((tmp_path / f"{int(t.name[1:4]):03d}.png").exists() for t in tmps)
        calls.append(sorted(t.name[1:8] for t in tmps))
        sync_files(tmps)  # the real one too: it must accept them

    results = list(commit_groups(iter(_results(tmp_path, 7)), group=3, workers=2, sync=spy))
    assert [r.source for r in results] == [f"src{i}" for i in range(7)]
    assert all(r.error is None and r.output == tmp_path / f"{i:03d}.png" for i, r in enumerate(results))
    assert [len(c) for c in calls] == [3, 3, 1]
    assert calls[0] == ["000.png", "001.png", "002.png"]
    for i in range(7):
        assert (tmp_path / f"{i:03d}.png").read_bytes() == f"image {i}".encode() * 50
    assert _temps(tmp_path) == []


def test_a_failed_sync_fails_its_group_alone(tmp_path: Path) -> None:
    seen = []

    def failing_second(tmps: list[Path]) -> None:
        seen.append(len(tmps))
        if len(seen) == 2:
            raise OSError(errno.EIO, "Input/output error")

    results = list(commit_groups(iter(_results(tmp_path, 6)), group=2, workers=2, sync=failing_second))
    assert [r.error is None for r in results] == [True, True, False, False, True, True]
    assert "Input/output error" in results[2].error and "\n" not in results[2].error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000.png", "001.png", "004.png", "005.png"]


def test_passed_through_results_and_a_bad_output_fail_alone(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    results = _results(tmp_path, 3)
    results[1] = FileResult("src1", output=tmp_path / "blocker" / "x.png", value=b"x")
    results.insert(0, FileResult("bad", error="ImageInputError: not an image"))
    results.insert(2, FileResult("old", output=tmp_path / "old.png", skipped=True))
    out = list(commit_groups(iter(results), group=2, workers=3))
    assert [r.source for r in out] == ["bad", "src0", "old", "src1", "src2"]
    assert out[0].error == "ImageInputError: not an image" and out[2].skipped
    assert out[1].error is None and out[4].error is None
    assert out[3].error and "\n" not in out[3].error
    assert _temps(tmp_path) == []


def test_stopping_early_leaves_whole_files_and_no_temp_files(tmp_path: Path) -> None:
    stage = commit_groups(iter(_results(tmp_path, 40)), group=4, workers=3)
    got = [next(stage) for _ in range(5)]
    stage.close()
    assert [r.source for r in got] == [f"src{i}" for i in range(5)]
    assert _temps(tmp_path) == []
    for p in tmp_path.iterdir():  # whatever was renamed is whole
        assert p.read_bytes() == f"image {int(p.stem)}".encode() * 50


def test_an_interrupt_in_the_sync_removes_every_temp_file(tmp_path: Path) -> None:
    def interrupted(tmps: list[Path]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        list(commit_groups(iter(_results(tmp_path, 10)), group=3, workers=2, sync=interrupted))
    assert list(tmp_path.iterdir()) == []


def test_sync_helpers_on_real_files(tmp_path: Path) -> None:
    files = []
    for i in range(3):
        (tmp_path / f"{i}").write_bytes(b"x" * i)
        files.append(tmp_path / f"{i}")
    sync_files(files)
    sync_folders([tmp_path, tmp_path])
    with pytest.raises(FileNotFoundError):
        sync_files([tmp_path / "missing"])
    assert sorted(os.listdir(tmp_path)) == ["0", "1", "2"]
