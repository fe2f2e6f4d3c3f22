"""The streaming pipeline: files in, files out, equal to Translator.translate image by image, in order.

Usage: pytest -q tests/sdk/test_pipeline.py
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stargan_sdk.pipeline.ordered import ordered_map

CHANGES = {"Blond_Hair": 1}


def _images() -> dict[str, Image.Image]:
    rng = np.random.default_rng(3)
    rgb = lambda h, w: rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # noqa: E731
    return {
        "aligned.png": Image.fromarray(rgb(40, 33)),
        "wide.png": Image.fromarray(rgb(20, 57)),
        "grey.png": Image.fromarray(rgb(36, 36)[..., 0], "L"),
        "alpha.png": Image.fromarray(np.dstack([rgb(30, 30), rng.integers(0, 256, (30, 30), dtype=np.uint8)]), "RGBA"),
        "square.png": Image.fromarray(rgb(32, 32)),
    }


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    for name, im in _images().items():
        im.save(src / name)
    return src


def test_outputs_equal_translate_in_order(translator, folder: Path, tmp_path: Path) -> None:
    paths = sorted(folder.iterdir())
    results = list(translator.translate_files(paths, tmp_path / "out", CHANGES, workers=2, batch_size=3))
    assert [r.source for r in results] == paths
    for r in results:
        assert r.error is None, r.error
        with Image.open(r.source) as im:
            want = np.asarray(translator.translate(im, CHANGES))
        with Image.open(r.output) as got:
            assert got.mode == Image.open(r.source).mode
            assert np.abs(np.asarray(got).astype(int) - want).max() <= 1, r.source.name


def test_bad_file_among_good_ones(translator, folder: Path, tmp_path: Path) -> None:
    (folder / "broken.png").write_bytes(b"not an image")
    results = list(translator.translate_files(sorted(folder.iterdir()), tmp_path / "out", CHANGES, batch_size=2))
    bad = [r for r in results if r.error]
    assert [r.source.name for r in bad] == ["broken.png"] and "\n" not in bad[0].error
    assert all(r.output.is_file() for r in results if not r.error)
    assert not (tmp_path / "out" / "broken.png").exists()


def test_never_overwrites_an_input(translator, folder: Path) -> None:
    before = (folder / "wide.png").read_bytes()
    [r] = translator.translate_files([folder / "wide.png"], folder, CHANGES)
    assert r.error and "input" in r.error
    assert (folder / "wide.png").read_bytes() == before


def test_skip_existing(translator, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = sorted(folder.iterdir())
    list(translator.translate_files(paths[:2], out, CHANGES))
    results = list(translator.translate_files(paths, out, CHANGES, skip_existing=True))
    assert [r.skipped for r in results] == [True, True] + [False] * (len(paths) - 2)
    assert all((out / p.name).is_file() for p in paths)


def test_stream_in_memory(translator) -> None:
    ims = [np.asarray(im.convert("RGB")) for im in _images().values()]
    got = list(translator.translate_stream(iter(ims), CHANGES, batch_size=2))
    for im, out in zip(ims, got):
        assert np.abs(out.astype(int) - translator.translate(im, CHANGES)).max() <= 1


def test_queue_bound_is_a_count() -> None:
    """Memory stays flat: an endless input is read at most `depth` items ahead of the consumer."""
    pulled = itertools.count()
    source = (next(pulled) for _ in itertools.count())
    stream = ordered_map(lambda x: x, source, workers=2, depth=5)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    assert next(pulled) <= 3 + 5
    stream.close()


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Photos in which OpenCV's Haar cascade finds the astronaut's face: one, mirrored, two side by side, grey,
    with alpha, and one with no face."""
    face = pytest.importorskip("skimage.data").astronaut()
    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(face).save(src / "a-one.jpg", quality=92)
    Image.fromarray(np.ascontiguousarray(face[:, ::-1])).save(src / "b-mirrored.png")
    Image.fromarray(np.concatenate([face, face[:, ::-1]], axis=1)).save(src / "c-two.jpg", quality=92)
    Image.fromarray(face).convert("L").save(src / "d-grey.png")
    Image.fromarray(np.dstack([face, np.full(face.shape[:2], 200, np.uint8)]), "RGBA").save(src / "e-alpha.png")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(src / "f-noise.png")
    return src


def test_photo_mode_equals_translate_photo_and_batches_faces_across_photos(
    translator, photos: Path, tmp_path: Path, monkeypatch
) -> None:
    calls: list[int] = []
    edit_rgb = translator.edit_rgb
    monkeypatch.setattr(
        translator, "edit_rgb", lambda rgbs, *a, **k: calls.append(len(rgbs)) or edit_rgb(rgbs, *a, **k)
    )
    paths = sorted(photos.iterdir())
    outs = [tmp_path / "out" / f"{p.stem}.png" for p in paths]  # PNG out: compared exactly (within 1 LSB)
    results = list(translator.translate_files(paths, outs, CHANGES, mode="photo", batch_size=4, workers=2))
    assert [r.source for r in results] == paths
    assert [r.source.name for r in results if r.error] == ["f-noise.png"] and "face" in results[-1].error
    # 6 faces (the two-face photo holds 2) in batches of up to 4 photos: 2 engine calls, not one per face or photo
    assert sum(calls) == 6 and calls[0] > 1 and len(calls) == 2, calls
    monkeypatch.undo()
    for r in results[:-1]:
        with Image.open(r.source) as im:
            source = np.asarray(im)
            want = translator.translate_photo(im, CHANGES)
        with Image.open(r.output) as got:
            assert got.mode == want.mode and got.size == want.size, r.source.name
            got = np.asarray(got)
        assert np.abs(got.astype(int) - np.asarray(want).astype(int)).max() <= 1, r.source.name
        assert np.abs(got.astype(int) - source.astype(int)).max() > 8, f"{r.source.name}: no face was edited"


def test_stream_reuses_one_staging_buffer_and_keeps_order(translator) -> None:
    """Batches of every size go through one float buffer (grown once), and results come back in input order."""
    rng = np.random.default_rng(9)
    ims = [rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for s in (20, 32, 45, 32, 64, 17, 32)]
    seen: list[int] = []
    edit_rgb = translator.edit_rgb

    def spy(rgbs, *a, staging=None, **k):
        seen.append(id(staging))
        return edit_rgb(rgbs, *a, staging=staging, **k)

    translator.edit_rgb = spy
    try:
        got = list(translator.translate_stream(iter(ims), CHANGES, batch_size=3, workers=2))
    finally:
        del translator.edit_rgb
    assert len(set(seen)) == 1 and len(seen) == 3
    for im, out in zip(ims, got, strict=True):
        assert out.shape == im.shape
        assert np.abs(out.astype(int) - translator.translate(im, CHANGES)).max() <= 1


def test_files_read_ahead_is_bounded(translator, tmp_path: Path, monkeypatch) -> None:
    """Memory stays flat on a folder of any size: with the consumer holding at the first result, the pipeline has
    decoded only a bounded number of files (the stage depths), not the folder."""
    from stargan_sdk.pipeline import durable, jobs

    src = tmp_path / "many"
    src.mkdir()
    for i in range(120):
        Image.fromarray(np.full((24, 24, 3), i, np.uint8)).save(src / f"{i:03d}.png")
    opened: list[Path] = []
    open_photo = jobs.open_photo
    monkeypatch.setattr(jobs, "open_photo", lambda p, **k: opened.append(p) or open_photo(p, **k))
    monkeypatch.setattr(durable, "GROUP", 4)  # files per sync (64 by default: the whole folder here)
    results = translator.translate_files(sorted(src.iterdir()), tmp_path / "out", CHANGES, workers=2, batch_size=2)
    first = next(results)
    assert first.error is None and first.output.is_file()
    time.sleep(0.5)  # let the workers run as far ahead as the queues allow
    # depth 4 per stage (2 x batch), batches of 2, 4 writes and 2 sync groups of 4 in flight: far below 120
    assert 4 <= len(opened) <= 40, len(opened)
    results.close()  # stopping early: no thread stays behind
    assert not [t for t in threading.enumerate() if t.name.startswith("stargan-pipeline")]
