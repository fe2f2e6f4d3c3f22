"""Staging and commit: a build killed (SIGKILL) at any instant leaves a loadable bundle, and the staging
folders such kills leave are removed by the next build, never those of a build still running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stargan_export import staging as staging_mod
from stargan_export.bundle import build_bundle
from stargan_export.staging import Staging, remove_stale
from stargan_sdk import Translator
from stargan_sdk.bundle.manifest import read_manifest

ATTRS = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
KILLED_BUILD = """
import os, signal, sys
from stargan_export import staging
from stargan_export.bundle import build_bundle

real = staging._exchange
def exchange_then_die(a, b):
    if sys.argv[3] == "after":
        real(a, b)
    os.kill(os.getpid(), signal.SIGKILL)
staging._exchange = exchange_then_die
build_bundle(sys.argv[1], sys.argv[2], attributes={attrs!r}, image_size=32, fp16=False, torch_weights=False,
             engine=False, min_batch=1, opt_batch=1, max_batch=1)
"""


SMALL = dict(
    attributes=ATTRS,
    image_size=32,
    fp16=False,
    torch_weights=False,
    engine=False,
    min_batch=1,
    opt_batch=1,
    max_batch=1,
)


class Killed(BaseException):
    """Stands in for SIGKILL in-process: nothing after it runs (no cleanup, see `_die_at`)."""


def _die_at(monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    real = staging_mod._exchange

    def exchange_then_die(a: Path, b: Path) -> None:
        if when == "after":
            real(a, b)
        raise Killed

    def close_without_cleanup(self: Staging) -> None:  # a killed process removes nothing; the kernel drops its lock
        os.close(self._lock_fd)
        self._lock_fd = None

    monkeypatch.setattr(staging_mod, "_exchange", exchange_then_die)
    monkeypatch.setattr(Staging, "close", close_without_cleanup)


def _old_bundle(checkpoint: Path, out: Path) -> list[str]:
    old = build_bundle(checkpoint, out, **{**SMALL, "fp16": True})  # FP16 too, so old and new differ
    (out / "MODEL_CARD.md").write_text("# card\n")
    return sorted(a.file for a in old.artifacts)


def _check_whole(out: Path, expected: list[str]) -> None:
    manifest = read_manifest(out)
    files = sorted(a.file for a in manifest.artifacts)
    assert files == expected  # the old bundle whole, or the new one whole: never a mix
    Translator.load(out, backend="onnxruntime").close()  # checksums and graphs agree
    assert (out / "MODEL_CARD.md").read_text() == "# card\n"
    assert sorted(p.name for p in out.iterdir()) == sorted(files + ["MODEL_CARD.md", "manifest.json"])


def test_a_build_stopped_around_the_swap_leaves_a_whole_bundle(
    official_checkpoint: Path, bundle_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = bundle_copy  # the session bundle: FP32 + FP16 generators, classifier, torch program
    (out / "MODEL_CARD.md").write_text("# card\n")
    old_files = sorted(a.file for a in read_manifest(out).artifacts)
    for when, expected in (("before", old_files), ("after", ["generator.onnx"])):
        with monkeypatch.context() as patch:
            _die_at(patch, when)
            with pytest.raises(Killed):
                build_bundle(official_checkpoint, out, **SMALL)
        _check_whole(out, expected)
    # the second build removed what the first left; the second's own folder (the old bundle) remains
    assert len(list(out.parent.glob(".bundle.staging-*"))) == 1
    assert len(remove_stale(out)) == 1 and not list(out.parent.glob(".bundle.staging-*"))


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_real_sigkill_around_the_swap_leaves_a_whole_bundle(
    official_checkpoint: Path, tmp_path: Path, when: str
) -> None:
    out = tmp_path / "bundle"
    old_files = _old_bundle(official_checkpoint, out)
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_BUILD.format(attrs=ATTRS), str(official_checkpoint), str(out), when],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    _check_whole(out, old_files if when == "before" else ["generator.onnx"])
    assert list(tmp_path.glob(".bundle.staging-*"))
    build_bundle(official_checkpoint, out, **SMALL)
    assert not list(tmp_path.glob(".bundle.staging-*"))


def test_only_dead_builds_staging_folders_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    out.mkdir()
    live = Staging(out)  # holds its lock, as a build that is still running
    dead = tmp_path / ".bundle.staging-dead"
    dead.mkdir()
    (dead / "generator.onnx").write_bytes(b"x")
    unrelated = tmp_path / ".other.staging-x"
    unrelated.mkdir()
    try:
        assert [p.name for p in remove_stale(out)] == [".bundle.staging-dead"]
        assert live.path.is_dir() and unrelated.is_dir() and not dead.exists()
    finally:
        live.close()
    assert not live.path.exists()


def test_a_new_bundle_folder_gets_the_users_umask_and_an_old_one_keeps_its_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with Staging(tmp_path / "new") as stage:
            stage.commit([], [], lambda d: (d / "manifest.json").write_text("{}"), "manifest.json")
    finally:
        os.umask(old)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o755  # not mkdtemp's 0700
    (tmp_path / "new").chmod(0o750)
    with Staging(tmp_path / "new") as stage:
        stage.commit([], [], lambda d: (d / "manifest.json").write_text("{}"), "manifest.json")
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o750


def test_a_bundle_folder_given_as_a_symlink_is_updated_where_it_points(tmp_path: Path) -> None:
    target = tmp_path / "real"
    target.mkdir()
    (target / "manifest.json").write_text("old")
    link = tmp_path / "current"
    link.symlink_to(target)
    with Staging(link) as stage:
        stage.commit([], [], lambda d: (d / "manifest.json").write_text("new"), "manifest.json")
    assert link.is_symlink() and (link / "manifest.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "real"]
